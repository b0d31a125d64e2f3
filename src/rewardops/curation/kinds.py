"""The kinds of parts curation can build, by name: people, judges, attribute writers, reward models.

A registry entry names its factory as "module:function" (built by `curation.builders`), so this
module imports nothing and both `settings` (to check specs) and `builders` (to build them) use it.
A new kind is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    factory: str  # "module:function", called as function(arg, settings)
    arg: str  # "none" | "optional" | "required" | "rate" (an optional probability, e.g. an error rate)
    help: str


ANNOTATORS: dict[str, Kind] = {
    "terminal": Kind("rewardops.curation.builders:terminal_annotator", "none",
                     "a person answering in this terminal (interactive runs)"),
    "labelstudio": Kind("rewardops.curation.labelstudio:make_annotator", "optional",
                        "people labelling in a Label Studio project"),
    "simulated": Kind("rewardops.curation.builders:simulated_annotator", "rate",
                      "a SIMULATION answering from the generated world's truth, wrong with rate ERR (default 0.05)"),
}
JUDGES: dict[str, Kind] = {
    "openai": Kind("rewardops.curation.builders:openai_judge", "optional",
                   "an OpenAI-compatible server (REWARDOPS_LLM_BASE_URL; model REWARDOPS_LLM_MODEL or :MODEL)"),
    "local": Kind("rewardops.curation.builders:local_judge", "optional",
                  "an in-process Hugging Face LM voting by verdict likelihood (default smollm2-135m)"),
    "simulated": Kind("rewardops.curation.builders:simulated_judge", "rate",
                      "a SIMULATION answering from the generated world's truth, wrong with rate ERR (default 0.2)"),
}
ATTRIBUTE_GENERATORS: dict[str, Kind] = {
    "openai": Kind("rewardops.curation.builders:openai_attributes", "optional",
                   "an OpenAI-compatible server fills the five attributes (validated JSON schema)"),
    "local": Kind("rewardops.curation.builders:local_attributes", "optional",
                  "an in-process Hugging Face LM fills them (default smollm2-135m)"),
    "heuristic": Kind("rewardops.curation.builders:heuristic_attributes", "none",
                      "OFFLINE rules over the prompt's words (tests and the demo; no LLM)"),
}
RMS: dict[str, Kind] = {
    "hashed-bt": Kind("rewardops.curation.builders:hashed_rm", "none", "bag-of-words BT model (seconds)"),
    "embedding-bt": Kind("rewardops.curation.builders:embedding_rm", "none", "MLP on sentence embeddings"),
    "transformer": Kind("rewardops.curation.builders:transformer_rm", "required",
                        "a rewardops.training catalog size, e.g. transformer:demo-smollm2-135m"),
}


def describe(registry: dict[str, Kind]) -> str:
    return "; ".join(f"{k}{'[:ARG]' if v.arg in ('optional', 'rate') else ':ARG' if v.arg == 'required' else ''}: {v.help}"
                     for k, v in registry.items())


def spec_problems(what: str, registry: dict[str, Kind], spec: Any) -> list[str]:
    """Why `spec` is not a valid `kind[:ARG]` of `registry` (empty when it is)."""
    if not isinstance(spec, str) or not spec:
        return [f"{what}: expected a spec like {next(iter(registry))}, got {spec!r}"]
    kind, sep, arg = spec.partition(":")
    if kind not in registry:
        return [f"{what} {spec!r}: use one of {', '.join(registry)}"]
    rule = registry[kind].arg
    if rule == "none" and sep:
        return [f"{what} {spec!r}: {kind} takes no argument"]
    if rule == "required" and not arg:
        return [f"{what} {spec!r}: {kind} needs an argument ({registry[kind].help})"]
    if rule == "rate" and arg:
        try:
            rate = float(arg)
        except ValueError:
            return [f"{what} {spec!r}: {arg!r} is not a number"]
        if not 0.0 <= rate <= 1.0:
            return [f"{what} {spec!r}: the rate must be between 0 and 1"]
    return []
