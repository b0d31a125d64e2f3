"""Building curation parts from short command-line specs (shared by the CLI and bench scripts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewardops.curation.judges import ChatJudge, JudgeEnsemble, LikelihoodJudge, SimulatedJudge
from rewardops.curation.protocols import Embedder, RMTrainer

JUDGE_HELP = ("judge model spec, repeatable: 'openai:MODEL' (server from REWARDOPS_LLM_BASE_URL), "
              "'local[:BACKBONE]' (in-process HF LM, verdict likelihood; default smollm2-135m), "
              "'simulated[:ERR]' (a SIMULATION answering from the generated world's truth)")
RM_HELP = "reward model to train: 'embedding-bt' (MLP on sentence embeddings), 'hashed-bt' (bag of words), 'transformer:SIZE' (rewardops.training catalog size)"


def build_judge(spec: str, index: int = 0) -> Any:
    kind, _, arg = spec.partition(":")
    if kind == "openai":
        from rewardops.curation.llm.openai_client import OpenAIChatClient

        return ChatJudge(OpenAIChatClient.from_env(**({"model": arg} if arg else {})))
    if kind == "local":
        from rewardops.curation.llm.local_hf import LocalHFChat

        return LikelihoodJudge(LocalHFChat(arg or "smollm2-135m"))
    if kind == "simulated":
        return SimulatedJudge(error_rate=float(arg or 0.2), seed=index, name=f"simulated-judge-{index}(err={float(arg or 0.2):g})")
    raise ValueError(f"unknown judge spec {spec!r}; " + JUDGE_HELP)


def build_ensemble(specs: Sequence[str], n_samples: int, merge: str, seed: int = 0) -> JudgeEnsemble:
    return JudgeEnsemble([build_judge(s, i) for i, s in enumerate(specs)], n_samples=n_samples, merge=merge, seed=seed)


def build_trainer(spec: str, embedder: Embedder | None, seed: int = 0) -> RMTrainer:
    kind, _, arg = spec.partition(":")
    if kind == "embedding-bt":
        from rewardops.curation.cheap_rm import EmbeddingBTTrainer

        if embedder is None:
            raise ValueError("embedding-bt needs an embedder")
        return EmbeddingBTTrainer(embedder, seed=seed)
    if kind == "hashed-bt":
        from rewardops.curation.cheap_rm import HashedBTTrainer

        return HashedBTTrainer(seed=seed)
    if kind == "transformer":
        from rewardops.curation.adapters import TransformerRMTrainer

        if not arg:
            raise ValueError("transformer:SIZE needs a catalog size, e.g. transformer:demo-tiny-qwen3")
        return TransformerRMTrainer(arg)
    raise ValueError(f"unknown RM spec {spec!r}; " + RM_HELP)
