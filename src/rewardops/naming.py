"""Names every layer agrees on: the registered reward model of one catalog size.

Declared once here (the lowest layer) so training, evaluation, the registry, the KFP components
and `dvc.yaml` (`models:/rewardops-rm-${item.size}`) all mean the same model.
"""

from __future__ import annotations

MODEL_PREFIX = "rewardops-rm"
ABLATION_PREFIX = "rewardops-ablation"  # the data ablation's arms: experiments, never a size's candidate


def registered_model_name(size: str) -> str:
    """`rewardops-rm-<size>`, e.g. `rewardops-rm-qwen3-0.6b`."""
    return f"{MODEL_PREFIX}-{size}"


def size_of(name: str) -> str | None:
    """The size in a registered model name (`rewardops-rm-qwen3-0.6b` -> `qwen3-0.6b`), else None."""
    return name.removeprefix(f"{MODEL_PREFIX}-") if name.startswith(f"{MODEL_PREFIX}-") else None


def ablation_model_name(size: str) -> str:
    """`rewardops-ablation-<size>`: where the data ablation's arm models register (one version per
    arm), so that an arm never becomes a version, or the `candidate`, of the size's own model."""
    return f"{ABLATION_PREFIX}-{size}"
