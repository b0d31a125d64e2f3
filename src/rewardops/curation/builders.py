"""Curation parts by name: the registries of annotators, judges, attribute generators, RMs, embedders.

A part is named by a spec `kind[:ARG]` (`simulated:0.05`, `openai:MODEL`, `transformer:SIZE`).
Each registry maps a kind to a `Kind`: the factory as "module:function" (imported only when a
part of that kind is built, so the settings can name a kind whose heavy dependencies are not
loaded) and what its ARG is. A new kind is one entry here plus its factory, which takes
`(arg, settings)` (`settings` is a `CurationSettings`) and returns the part:

    ANNOTATORS["labelstudio"] = Kind("rewardops.curation.labelstudio:make_annotator", "optional", "...")

Simulations (`simulated`) answer from a generated world's known truth: they are chosen only by
name, never a default, and refuse a pair without `truth_chosen_better`.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from rewardops.curation.judges import JudgeEnsemble
    from rewardops.curation.protocols import Annotator, Embedder, RMTrainer
    from rewardops.curation.settings import CurationSettings


from rewardops.curation.kinds import (  # noqa: E402,F401 - the registries, re-exported with their builders
    ANNOTATORS, ATTRIBUTE_GENERATORS, JUDGES, RMS, Kind, describe, spec_problems)
from rewardops.errors import ConfigError  # noqa: E402


class PartError(ConfigError):
    """A part cannot be built (missing configuration, no terminal, unknown kind); says what to set."""


DEFAULT_LOCAL_LM = "smollm2-135m"


def _build(registry: dict[str, Kind], what: str, spec: str, settings: CurationSettings, *extra: Any, **context: Any) -> Any:
    problems = spec_problems(what, registry, spec)
    if problems:
        raise PartError("; ".join(problems))
    kind, _, arg = spec.partition(":")
    module, _, func = registry[kind].factory.partition(":")
    try:
        factory = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise PartError(f"{what} {spec!r}: its implementation {registry[kind].factory} is not available ({exc})") from None
    return factory(arg, settings, *extra, **context)


def _settings(settings: CurationSettings | None) -> CurationSettings:
    from rewardops.curation.settings import CurationSettings

    return settings if settings is not None else CurationSettings()


# -- annotators (people) -------------------------------------------------------------------------
def build_annotator(settings: CurationSettings, **context: Any) -> Annotator:
    """The settings' annotator. `context` tells a factory where it works (`output`: the folder the
    step is producing, e.g. for a Label Studio annotator's ledger beside it); factories ignore what
    they do not need."""
    return _build(ANNOTATORS, "annotator", settings.annotator, settings, **context)


def terminal_annotator(arg: str, settings: CurationSettings, **context: Any) -> Annotator:
    from rewardops.curation.human import TerminalAnnotator

    if not sys.stdin.isatty():
        raise PartError("annotator terminal needs an interactive terminal (stdin is not a TTY); in a pipeline or a "
                        "batch job use annotator labelstudio, or simulated:ERR on generated data with known truth")
    return TerminalAnnotator(seed=settings.seed)


def simulated_annotator(arg: str, settings: CurationSettings, **context: Any) -> Annotator:
    from rewardops.curation.human import SimulatedAnnotator

    return SimulatedAnnotator(error_rate=float(arg or 0.05), seed=settings.seed)


# -- judges --------------------------------------------------------------------------------------
def build_judge(spec: str, index: int = 0, settings: CurationSettings | None = None) -> Any:
    return _build(JUDGES, "judge", spec, _settings(settings), index)


def build_judges(settings: CurationSettings) -> JudgeEnsemble:
    from rewardops.curation.judges import JudgeEnsemble

    models = [build_judge(spec, i, settings) for i, spec in enumerate(settings.judges)]
    return JudgeEnsemble(models, n_samples=settings.judge_samples, merge=settings.judge_merge, seed=settings.seed)


def _openai_client(arg: str, what: str) -> Any:
    from rewardops.curation.llm.openai_client import LLMConfigError, OpenAIChatClient

    try:
        return OpenAIChatClient.from_env(**({"model": arg} if arg else {}))
    except LLMConfigError as exc:
        raise PartError(f"{what} openai{':' + arg if arg else ''}: {exc}. The {what} default is an OpenAI-compatible "
                        f"server; set REWARDOPS_LLM_BASE_URL and REWARDOPS_LLM_MODEL (or write openai:MODEL), or "
                        f"choose another {what} in the settings ({', '.join(JUDGES if what == 'judge' else ATTRIBUTE_GENERATORS)})") from None


def openai_judge(arg: str, settings: CurationSettings, index: int = 0) -> Any:
    from rewardops.curation.judges import ChatJudge

    client = _openai_client(arg, "judge")
    return ChatJudge(client, name=f"{client.name}#{index}" if index else None)


def local_judge(arg: str, settings: CurationSettings, index: int = 0) -> Any:
    from rewardops.curation.judges import LikelihoodJudge
    from rewardops.curation.llm.local_hf import LocalHFChat

    judge = LikelihoodJudge(LocalHFChat(arg or DEFAULT_LOCAL_LM), seed=settings.seed,
                            max_examples=settings.local_judge_examples)
    if index:
        judge.name = f"{judge.name}#{index}"
    return judge


def simulated_judge(arg: str, settings: CurationSettings, index: int = 0) -> Any:
    from rewardops.curation.judges import SimulatedJudge

    rate = float(arg or 0.2)
    return SimulatedJudge(error_rate=rate, seed=settings.seed + index, name=f"simulated-judge-{index}(err={rate:g})")


# -- attribute generators ------------------------------------------------------------------------
def build_attributes(settings: CurationSettings) -> Any:
    """Something with `.annotate(pairs)` and `.report` that fills the five attributes."""
    return _build(ATTRIBUTE_GENERATORS, "attributes", settings.attributes, settings)


def openai_attributes(arg: str, settings: CurationSettings) -> Any:
    from rewardops.curation.attributes import AttributeAnnotator

    return AttributeAnnotator(_openai_client(arg, "attributes"))


def local_attributes(arg: str, settings: CurationSettings) -> Any:
    from rewardops.curation.attributes import AttributeAnnotator
    from rewardops.curation.llm.local_hf import LocalHFChat

    return AttributeAnnotator(LocalHFChat(arg or DEFAULT_LOCAL_LM))


def heuristic_attributes(arg: str, settings: CurationSettings) -> Any:
    from rewardops.curation.attributes import HeuristicAttributes

    return HeuristicAttributes()


# -- reward models and embedders -----------------------------------------------------------------
def build_embedder(settings: CurationSettings) -> Embedder:
    from rewardops.curation.retrieval import HashedEmbedder, SentenceTransformerEmbedder

    if settings.embedder == "hashed":
        return HashedEmbedder()
    return SentenceTransformerEmbedder(settings.embedder)


def build_rm_trainer(settings: CurationSettings, embedder: Embedder | None = None) -> RMTrainer:
    return _build(RMS, "rm", settings.rm, settings, embedder)


def hashed_rm(arg: str, settings: CurationSettings, embedder: Embedder | None = None) -> RMTrainer:
    from rewardops.curation.cheap_rm import HashedBTTrainer

    return HashedBTTrainer(seed=settings.seed)


def embedding_rm(arg: str, settings: CurationSettings, embedder: Embedder | None = None) -> RMTrainer:
    from rewardops.curation.cheap_rm import EmbeddingBTTrainer

    return EmbeddingBTTrainer(embedder if embedder is not None else build_embedder(settings), seed=settings.seed)


def transformer_rm(arg: str, settings: CurationSettings, embedder: Embedder | None = None) -> RMTrainer:
    from rewardops.curation.adapters import TransformerRMTrainer

    overrides: dict[str, Any] = {"seed": settings.seed}
    if settings.rm_max_steps:
        overrides["max_steps"] = settings.rm_max_steps
    return TransformerRMTrainer(arg, overrides=overrides, select_epochs=settings.rm_select_epochs)

