"""The model registry: one registered model per size, aliases `candidate` and `champion`.

* Registration (`register_checkpoint`, or the tracker's `register_model`) logs an exported
  reward model as a serving pyfunc (`rewardops.tracking.rewardmodel`), creates a new version of
  `rewardops-rm-<size>` (`rewardops.naming`) and points the alias `candidate` at it.
* Promotion (`promote_champion`) is one rule, whichever route calls it (the KFP `register` step,
  `rewardops registry promote`, the DVC `eval` stage). Both scores are
  `rewardops.evaluation.report.registry_score` (percent) over the benchmarks the two versions
  have in common (the seven when both have them, the paper benchmarks present otherwise, the
  generated world when no paper benchmark ran; paper §4 reports the seven's average). In order:

  1. a score that is not a finite number in [0, 100] (on either version) is refused: nothing
     moves, and the reason names the version and the tag;
  2. the candidate already is the champion: nothing moves;
  3. the candidate has no scores: nothing moves ("evaluate it first");
  4. there is no champion: the candidate becomes champion;
  5. the two share no evaluated benchmark: the champion stays, and the reason lists what each
     has (a score on other benchmarks is no evidence the candidate is better);
  6. the candidate becomes champion only when its score beats the champion's by MORE than
     `min_delta` points (finite, >= 0); a tie keeps the champion.

  The decision, with both scores and their basis, is written on the candidate as tags.

A version's per-benchmark scores (`eval/<benchmark>`, percent) are its model-version tags when
evaluation recorded them there (`set_version_scores`), else the metrics of its source run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from rewardops.evaluation.benchmarks import ALL_NAMES
from rewardops.evaluation.report import BENCHMARK_METRIC, SCORE_METRIC, registry_score
from rewardops.naming import registered_model_name
from rewardops.errors import DataError, RewardOpsError

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "InvalidScoreError",
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


SCORE_RANGE = (0.0, 100.0)  # percent


class InvalidScoreError(DataError):
    """A benchmark score that is not a finite percent in [0, 100]."""


def _score_problems(values: dict[str, Any], where: str) -> tuple[dict[str, float], list[str]]:
    """(`{benchmark: percent}`, problems) of the `eval/<benchmark>` entries of `values`; NaN or
    absent means not evaluated; anything else that is not a finite percent is a problem."""
    lo, hi = SCORE_RANGE
    scores: dict[str, float] = {}
    problems: list[str] = []
    for bench in ALL_NAMES:
        key = BENCHMARK_METRIC.format(bench)
        if key not in values or values[key] is None:
            continue
        raw = values[key]
        try:
            number = float(raw)
        except (TypeError, ValueError):
            problems.append(f"{where} {key}={str(raw)[:40]!r} is not a number")
            continue
        if math.isnan(number):
            continue
        if not math.isfinite(number) or not lo <= number <= hi:
            problems.append(f"{where} {key}={str(raw)[:40]!r} is not a finite percent in [{lo:g}, {hi:g}]")
            continue
        scores[bench] = number
    return scores, problems


def set_version_scores(client: Any, name: str, version: int | str, scores: dict[str, float]) -> float | None:
    """Record per-benchmark scores (percent) and the registry score on a model version; returns it.
    A score that is not a finite percent in [0, 100] is refused (`InvalidScoreError`) before any tag is set."""
    _, problems = _score_problems({BENCHMARK_METRIC.format(b): v for b, v in scores.items()}, f"{name} v{version}")
    if problems:  # other keys (averages an evaluation also reports) are recorded, never counted
        raise InvalidScoreError("; ".join(problems))
    for bench, value in scores.items():
        client.set_model_version_tag(name, str(version), f"eval/{bench}", repr(float(value)))
    score = registry_score(scores)
    if score is not None:
        client.set_model_version_tag(name, str(version), SCORE_METRIC, repr(score.value))
        client.set_model_version_tag(name, str(version), BASIS_TAG, ",".join(score.basis))
    return score.value if score else None


def _version_scores(client: Any, name: str, version: int | str) -> tuple[dict[str, float], list[str]]:
    """(`{benchmark: percent}`, problems) of a version: its `eval/<benchmark>` tags when it has
    any, else its source run's metrics."""
    mv = resolve_version(client, name, version)
    keys = {BENCHMARK_METRIC.format(b) for b in ALL_NAMES}
    tags = {k: v for k, v in (mv.tags or {}).items() if k in keys}
    if tags:
        return _score_problems(tags, f"version {mv.version} tag")
    if mv.run_id:
        return _score_problems(dict(client.get_run(mv.run_id).data.metrics), f"version {mv.version} run metric")
    return {}, []


def version_benchmarks(client: Any, name: str, version: int | str) -> dict[str, float]:
    """`{benchmark: percent}` of a version: its `eval/<benchmark>` tags, else its source run's
    metrics; `InvalidScoreError` when one is not a finite percent in [0, 100]."""
    scores, problems = _version_scores(client, name, version)
    if problems:
        raise InvalidScoreError("; ".join(problems))
    return scores


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
    if not (math.isfinite(min_delta) and min_delta >= 0):
        raise ValueError(f"min_delta={min_delta!r}: the margin must be a finite number of points >= 0")
    candidate = int(resolve_version(client, name, version).version)
    current = _alias_version(client, name, CHAMPION)
    mine, problems = _version_scores(client, name, candidate)
    theirs: dict[str, float] | None = None
    if current is not None and current != candidate:
        theirs, their_problems = _version_scores(client, name, current)
        problems += their_problems
    common = set(mine) & set(theirs) if theirs is not None else set(mine)
    score = registry_score(mine, among=common)
    current_score = registry_score(theirs, among=common) if theirs is not None else None
    basis = score.describe() if score else "registry score"

    if problems:
        promoted, reason = False, f"refused: {'; '.join(problems)}; fix the scores (re-run evaluation) before promotion"
    elif current == candidate:
        promoted, reason = False, f"version {candidate} is already the champion"
    elif not mine:
        promoted, reason = False, f"version {candidate} has no eval/<benchmark> scores; evaluate it before promotion"
    elif current is None:
        promoted, reason = True, f"no champion yet; {basis} = {score.value:.2f}"  # type: ignore[union-attr]
    elif score is None or current_score is None:
        promoted, reason = False, (
            f"champion v{current} kept: it shares no evaluated benchmark with v{candidate} "
            f"(v{candidate}: {', '.join(sorted(mine))}; v{current}: {', '.join(sorted(theirs or {})) or 'none'}); "
            f"evaluate v{candidate} on the champion's benchmarks"
        )
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
