"""The model registry: one registered model per size, aliases `candidate` and `champion`.

* Registration (`log_and_register_checkpoint`) logs a saved transformers checkpoint with the
  MLflow transformers flavor (from the folder, so the weights are never loaded into memory),
  creates a new version of the registered model and points the alias `candidate` at it.
* Promotion (`promote_champion`) is a rule on the seven-benchmark average (`eval/average_7` by
  default): the candidate becomes `champion` when there is no champion yet, or when its average
  beats the champion's by more than `min_delta`. The decision, with both scores, is written on
  the version as tags so the registry shows why it was (not) promoted.

A version's score is read from the metric on the run that produced it, or, when evaluation ran
as a separate run, from a model-version tag of the same name (`set_version_score`).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "PromotionDecision",
    "log_and_register_checkpoint",
    "model_name_for_size",
    "promote_champion",
    "register_checkpoint",
    "set_version_score",
    "version_score",
]

CANDIDATE = "candidate"
CHAMPION = "champion"
DEFAULT_METRIC = "eval/average_7"  # written by rewardops.evaluation.report (percent)
TASK = "text-classification"  # a Bradley-Terry head is AutoModelForSequenceClassification, num_labels=1


def model_name_for_size(size: str, prefix: str = "rewardops-rm") -> str:
    """Registered model name for one catalog size, e.g. `rewardops-rm-qwen3-0.6b`."""
    return f"{prefix}-{size}"


def _check_checkpoint(model_dir: Path) -> None:
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model checkpoint folder not found: {model_dir}")
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a transformers checkpoint (no config.json)")
    has_tokenizer = any((model_dir / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
    if not has_tokenizer:
        raise FileNotFoundError(
            f"{model_dir} has no tokenizer files; save the tokenizer next to the model "
            "(tokenizer.save_pretrained) so the registered model can be served"
        )


def serving_requirements() -> list[str]:
    """Pinned requirements for serving a registered reward model.

    Given explicitly: MLflow's default list adds torchvision, which a text model never needs.
    """
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("transformers", "torch", "accelerate", "safetensors", "tokenizers"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


@contextmanager
def _pipeline_impl_as_class() -> Iterator[None]:
    """transformers 5 lists a task's pipeline class as a dotted string; MLflow's checkpoint
    logging (3.17) reads `impl.__name__`. Resolve the string for the duration of the call."""
    from transformers import pipelines

    original = pipelines.check_task

    def check_task(task: str) -> Any:
        normalized, meta, options = original(task)
        impl = meta.get("impl")
        if isinstance(impl, str):
            module, _, cls = impl.rpartition(".")
            meta = {**meta, "impl": getattr(importlib.import_module(module), cls)}
        return normalized, meta, options

    pipelines.check_task = check_task
    try:
        yield
    finally:
        pipelines.check_task = original


def log_and_register_checkpoint(
    client: Any,
    run_id: str,
    model_dir: str | os.PathLike[str],
    name: str,
    *,
    alias: str | None = CANDIDATE,
    tracking_uri: str | None = None,
    artifact_name: str = "model",
) -> int:
    """Log `model_dir` under run `run_id` with the transformers flavor and register it as `name`.

    Returns the new version number; `alias` (default `candidate`) points at it.
    """
    import mlflow

    folder = Path(model_dir)
    _check_checkpoint(folder)
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    run = client.get_run(run_id)
    # The fluent API places the logged model in the current experiment: make it the run's.
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    with _pipeline_impl_as_class():
        info = mlflow.transformers.log_model(
            transformers_model=str(folder),
            name=artifact_name,
            task=TASK,
            run_id=run_id,
            registered_model_name=name,
            pip_requirements=serving_requirements(),
            tags={"rewardops.checkpoint": str(folder.resolve())},
        )
    version = info.registered_model_version
    if version is None:  # older servers: find the version this run created
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
        version = max(int(v.version) for v in found)
    version = int(version)
    for key, value in run.data.tags.items():
        if key.startswith("rewardops."):
            client.set_model_version_tag(name, str(version), key, value)
    if alias:
        client.set_registered_model_alias(name, alias, str(version))
    return version


def register_checkpoint(
    model_dir: str | os.PathLike[str],
    name: str,
    *,
    run_id: str,
    tracking_uri: str | None = None,
    alias: str | None = CANDIDATE,
) -> int:
    """Register a checkpoint after the fact (e.g. one the tracker could not register in an outage)."""
    from mlflow.tracking import MlflowClient

    from rewardops.tracking.mlflow_tracker import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)
    return log_and_register_checkpoint(client, run_id, model_dir, name, alias=alias, tracking_uri=uri)


def set_version_score(client: Any, name: str, version: int | str, value: float, metric: str = DEFAULT_METRIC) -> None:
    """Record an evaluation score on a model version (when evaluation ran as its own run)."""
    client.set_model_version_tag(name, str(version), metric, repr(float(value)))


def version_score(client: Any, name: str, version: int | str, metric: str = DEFAULT_METRIC) -> float | None:
    """The version's `metric`: its model-version tag if set, else the metric on its source run."""
    mv = client.get_model_version(name, str(version))
    tagged = (mv.tags or {}).get(metric)
    if tagged is not None:
        try:
            return float(tagged)
        except ValueError:
            pass
    if mv.run_id:
        value = client.get_run(mv.run_id).data.metrics.get(metric)
        if value is not None and not math.isnan(value):
            return float(value)
    return None


@dataclass(frozen=True)
class PromotionDecision:
    name: str
    candidate: int
    candidate_score: float | None
    previous_champion: int | None
    previous_score: float | None
    promoted: bool
    reason: str

    @property
    def champion(self) -> int | None:
        return self.candidate if self.promoted else self.previous_champion


def _alias_version(client: Any, name: str, alias: str) -> int | None:
    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except Exception as exc:  # noqa: BLE001 - MLflow raises RESOURCE_DOES_NOT_EXIST when unset
        if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower() or "does not exist" in str(exc).lower():
            return None
        raise


PAPER_BENCHMARKS = ("rewardbench", "rewardbench2", "ppe-preference", "ppe-correctness", "rmb", "rm-bench", "judgebench")


def benchmark_scores(client: Any, name: str, version: int | str) -> dict[str, float]:
    """The version's per-benchmark `eval/<benchmark>` metrics (of the seven) from its source run."""
    mv = client.get_model_version(name, str(version))
    if not mv.run_id:
        return {}
    metrics = client.get_run(mv.run_id).data.metrics
    return {b: float(metrics[f"eval/{b}"]) for b in PAPER_BENCHMARKS if f"eval/{b}" in metrics and not math.isnan(metrics[f"eval/{b}"])}


def _scores(
    client: Any, name: str, candidate: int, current: int | None, metric: str, allow_partial: bool
) -> tuple[float | None, float | None, str]:
    """(candidate score, champion score, what they are) under the rule's metric."""
    score = version_score(client, name, candidate, metric)
    current_score = version_score(client, name, current, metric) if current is not None else None
    complete = score is not None and (current is None or current_score is not None)
    if complete or not allow_partial:
        return score, current_score, metric
    # Some of the seven benchmarks are missing: compare on the ones both versions have.
    mine = benchmark_scores(client, name, candidate)
    theirs = benchmark_scores(client, name, current) if current is not None else None
    common = sorted(set(mine) & set(theirs)) if theirs is not None else sorted(mine)
    if not common:
        return None, None, f"{metric} (no benchmark in common)"
    basis = f"partial average over {len(common)}/7 benchmarks ({', '.join(common)})"
    score = sum(mine[b] for b in common) / len(common)
    current_score = sum(theirs[b] for b in common) / len(common) if theirs is not None else None
    return score, current_score, basis


def promote_champion(
    client: Any,
    name: str,
    *,
    version: int | str | None = None,
    metric: str = DEFAULT_METRIC,
    min_delta: float = 0.0,
    allow_partial: bool = False,
) -> PromotionDecision:
    """Apply the promotion rule to `version` (default: the `candidate` alias).

    Promote when there is no champion, or when candidate score > champion score + min_delta.
    A candidate without a score is never promoted (evaluate it first). With `allow_partial`,
    when the seven-benchmark average is missing (benchmarks not available offline) the two
    versions are compared on the mean of the benchmarks both have; the reason says so.
    """
    if version is None:
        version = _alias_version(client, name, CANDIDATE)
        if version is None:
            raise LookupError(f"registered model {name!r} has no {CANDIDATE!r} alias to promote")
    candidate = int(version)
    current = _alias_version(client, name, CHAMPION)
    score, current_score, basis = _scores(client, name, candidate, current, metric, allow_partial)

    if score is None:
        promoted, reason = False, f"version {candidate} has no {basis}; evaluate it before promotion"
    elif current is None:
        promoted, reason = True, f"no champion yet; {basis}={score:.4f}"
    elif current == candidate:
        promoted, reason = False, f"version {candidate} is already the champion"
    elif current_score is None:
        promoted, reason = True, f"champion v{current} has no {basis}; candidate {score:.4f}"
    elif score > current_score + min_delta:
        promoted, reason = True, f"{basis}: {score:.4f} > champion v{current} {current_score:.4f} + {min_delta}"
    else:
        promoted, reason = False, f"{basis}: {score:.4f} <= champion v{current} {current_score:.4f} + {min_delta}"

    if promoted:
        client.set_registered_model_alias(name, CHAMPION, str(candidate))
    client.set_model_version_tag(name, str(candidate), "rewardops.promotion", "promoted" if promoted else "kept")
    client.set_model_version_tag(name, str(candidate), "rewardops.promotion.reason", reason)
    return PromotionDecision(name, candidate, score, current, current_score, promoted, reason)
