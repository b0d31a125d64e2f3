"""The model registry: one registered model per size, aliases `candidate` and `champion`.

* Registration (`register_checkpoint`, or the tracker's `register_model`) logs an exported
  reward model as a serving pyfunc (`rewardops.tracking.rewardmodel`), creates a new version of
  `rewardops-rm-<size>` (`rewardops.naming`) and points the alias `candidate` at it.
* Promotion (`promote_champion`) is one rule, whichever route calls it (the KFP `register` step,
  `rewardops registry promote`, the DVC `eval` stage): the candidate becomes `champion` when
  there is no champion yet, or when its registry score beats the champion's by more than
  `min_delta` points. Both scores are `rewardops.evaluation.report.registry_score` (percent)
  over the benchmarks the two versions have in common (the seven when both have them, the
  paper benchmarks present otherwise, the generated world when no paper benchmark ran). The
  decision, with both scores and their basis, is written on the version as tags.

A version's per-benchmark scores (`eval/<benchmark>`, percent) are its model-version tags when
evaluation recorded them there (`set_version_scores`), else the metrics of its source run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from rewardops.evaluation.report import SCORE_METRIC, benchmark_metrics, registry_score
from rewardops.naming import registered_model_name
from rewardops.errors import RewardOpsError

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "PromotionDecision",
    "RegistryLookupError",
    "model_name_for_size",
    "promote_champion",
    "register_checkpoint",
    "resolve_version",
    "set_version_scores",
    "version_benchmarks",
]

CANDIDATE = "candidate"
CHAMPION = "champion"
BASIS_TAG = "rewardops.score.basis"
model_name_for_size = registered_model_name  # declared once, in rewardops.naming


class RegistryLookupError(RewardOpsError, LookupError):
    """A registered model, version or alias that does not exist (the message says what does)."""


def _missing(exc: BaseException) -> bool:
    text = f"{getattr(exc, 'error_code', '')} {exc}".lower()
    return "resource_does_not_exist" in text or "not found" in text or "does not exist" in text


def _known_models(client: Any) -> list[str]:
    try:
        return sorted(m.name for m in client.search_registered_models(max_results=200))
    except Exception:  # noqa: BLE001 - only used to word an error
        return []


def _describe_model(client: Any, name: str) -> str:
    try:
        model = client.get_registered_model(name)
    except Exception as exc:  # noqa: BLE001
        if not _missing(exc):
            raise
        known = _known_models(client)
        return f"no registered model {name!r}; registered models: {', '.join(known) or 'none'}"
    aliases = ", ".join(f"{a}->v{v}" for a, v in sorted((model.aliases or {}).items())) or "none"
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    return f"registered model {name!r} has versions {versions or 'none'} and aliases {aliases}"


def resolve_version(client: Any, name: str, version: int | str | None = None, alias: str | None = None) -> Any:
    """The `ModelVersion` of `name` at `version` or `alias`; `RegistryLookupError` naming what exists."""
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, str(version))
    except Exception as exc:  # noqa: BLE001 - MLflow raises RESOURCE_DOES_NOT_EXIST
        if not _missing(exc):
            raise
        wanted = f"alias {alias!r}" if alias is not None else f"version {version}"
        raise RegistryLookupError(f"{wanted} of {name!r} not found: {_describe_model(client, name)}") from None


def _alias_version(client: Any, name: str, alias: str) -> int | None:
    """The version `alias` points at, None when unset; `RegistryLookupError` when `name` is unknown."""
    try:
        return int(client.get_model_version_by_alias(name, alias).version)
    except Exception as exc:  # noqa: BLE001
        if not _missing(exc):
            raise
    try:
        client.get_registered_model(name)
    except Exception as exc:  # noqa: BLE001
        if _missing(exc):
            raise RegistryLookupError(_describe_model(client, name)) from None
        raise
    return None


def register_checkpoint(
    model_dir: str | os.PathLike[str],
    name: str,
    *,
    run_id: str,
    tracking_uri: str | None = None,
    alias: str | None = CANDIDATE,
) -> int:
    """Register an exported model after the fact (e.g. one an outage kept from being registered)."""
    from rewardops.tracking.rewardmodel import log_reward_model
    from rewardops.tracking.uri import client as make_client

    return log_reward_model(make_client(tracking_uri), run_id, model_dir, name, alias=alias)


def set_version_scores(client: Any, name: str, version: int | str, scores: dict[str, float]) -> float | None:
    """Record per-benchmark scores (percent) and the registry score on a model version; returns it."""
    for bench, value in scores.items():
        client.set_model_version_tag(name, str(version), f"eval/{bench}", repr(float(value)))
    score = registry_score(scores)
    if score is not None:
        client.set_model_version_tag(name, str(version), SCORE_METRIC, repr(score.value))
        client.set_model_version_tag(name, str(version), BASIS_TAG, ",".join(score.basis))
    return score.value if score else None


def version_benchmarks(client: Any, name: str, version: int | str) -> dict[str, float]:
    """`{benchmark: percent}` of a version: its `eval/<benchmark>` tags, else its source run's metrics."""
    mv = resolve_version(client, name, version)
    found = benchmark_metrics(mv.tags or {})
    if not found and mv.run_id:
        found = benchmark_metrics(client.get_run(mv.run_id).data.metrics)
    return {k: v for k, v in found.items() if not math.isnan(v)}


@dataclass(frozen=True)
class PromotionDecision:
    name: str
    candidate: int
    candidate_score: float | None
    previous_champion: int | None
    previous_score: float | None
    promoted: bool
    reason: str
    basis: tuple[str, ...] = ()

    @property
    def champion(self) -> int | None:
        return self.candidate if self.promoted else self.previous_champion


def promote_champion(
    client: Any,
    name: str,
    *,
    version: int | str | None = None,
    min_delta: float = 0.0,
) -> PromotionDecision:
    """Apply the promotion rule (module docstring) to `version` (default: the `candidate` alias)."""
    if version is None:
        version = _alias_version(client, name, CANDIDATE)
        if version is None:
            raise RegistryLookupError(f"{_describe_model(client, name)}; no {CANDIDATE!r} alias to promote")
    candidate = int(resolve_version(client, name, version).version)
    current = _alias_version(client, name, CHAMPION)
    mine = version_benchmarks(client, name, candidate)
    theirs = version_benchmarks(client, name, current) if current is not None and current != candidate else None
    common = set(mine) & set(theirs) if theirs is not None else set(mine)
    score = registry_score(mine, among=common)
    current_score = registry_score(theirs, among=common) if theirs is not None else None
    basis = score.describe() if score else "registry score"

    if current == candidate:
        promoted, reason = False, f"version {candidate} is already the champion"
    elif not mine:
        promoted, reason = False, f"version {candidate} has no eval/<benchmark> scores; evaluate it before promotion"
    elif current is None:
        promoted, reason = True, f"no champion yet; {basis} = {score.value:.2f}"  # type: ignore[union-attr]
    elif score is None or current_score is None:
        promoted, reason = True, f"champion v{current} shares no evaluated benchmark with v{candidate}; the newer evaluation wins"
    elif score.value > current_score.value + min_delta:
        promoted, reason = True, f"{basis}: {score.value:.2f} > champion v{current} {current_score.value:.2f} + {min_delta}"
    else:
        promoted, reason = False, f"{basis}: {score.value:.2f} <= champion v{current} {current_score.value:.2f} + {min_delta}"

    if promoted:
        client.set_registered_model_alias(name, CHAMPION, str(candidate))
    client.set_model_version_tag(name, str(candidate), "rewardops.promotion", "promoted" if promoted else "kept")
    client.set_model_version_tag(name, str(candidate), "rewardops.promotion.reason", reason)
    return PromotionDecision(
        name, candidate, score.value if score else None, current, current_score.value if current_score else None,
        promoted, reason, score.basis if score else (),
    )  # fmt: skip
