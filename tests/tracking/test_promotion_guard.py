"""Promotion never picks a worse model: a candidate with no benchmark in common with the champion,
or with a score that is not a finite percent, leaves the champion where it is and says why.

A real MLflow registry (SQLite store in a temporary folder); versions and their `eval/<benchmark>`
tags are written as a registry writer (MLflow EDIT) could write them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardops.tracking.registry import (
    CANDIDATE,
    CHAMPION,
    InvalidScoreError,
    promote_champion,
    set_version_scores,
    version_benchmarks,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("registry")
    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", registry_uri=f"sqlite:///{folder / 'mlflow.db'}")


def _version(client, name: str, tags: dict[str, str]) -> int:
    mv = client.create_model_version(name, "file:///nowhere/model", tags=tags)
    client.set_registered_model_alias(name, CANDIDATE, mv.version)
    return int(mv.version)


def _champion(client, name: str) -> int:
    return int(client.get_model_version_by_alias(name, CHAMPION).version)


def test_no_common_benchmark_keeps_the_champion(client) -> None:
    name = "rewardops-rm-guard-common"
    client.create_registered_model(name)
    seven = {f"eval/{b}": "70.0" for b in ("rewardbench", "rewardbench2", "ppe-preference", "ppe-correctness",
                                            "rmb", "rm-bench", "judgebench")}
    v1 = _version(client, name, seven)
    assert promote_champion(client, name).promoted and _champion(client, name) == v1

    v2 = _version(client, name, {"eval/world": "99.0"})  # evaluated only on the generated world
    decision = promote_champion(client, name)
    assert not decision.promoted and decision.champion == v1 and _champion(client, name) == v1
    assert "shares no evaluated benchmark" in decision.reason and "world" in decision.reason
    assert client.get_model_version(name, str(v2)).tags["rewardops.promotion"] == "kept"


@pytest.mark.parametrize("bad", ["inf", "-inf", "1e9", "-3", "101", "nan-ish"])
def test_non_finite_or_out_of_range_score_is_refused(client, bad: str) -> None:
    name = f"rewardops-rm-guard-{abs(hash(bad)) % 10**6}"
    client.create_registered_model(name)
    v1 = _version(client, name, {"eval/world": "60.0"})
    assert promote_champion(client, name).promoted
    v2 = _version(client, name, {"eval/world": bad})
    decision = promote_champion(client, name)
    assert not decision.promoted and _champion(client, name) == v1
    assert decision.reason.startswith("refused") and f"version {v2} tag eval/world" in decision.reason
    with pytest.raises(InvalidScoreError, match="eval/world"):
        version_benchmarks(client, name, v2)


def test_scores_are_checked_before_they_are_recorded(client) -> None:
    name = "rewardops-rm-guard-record"
    client.create_registered_model(name)
    v1 = _version(client, name, {})
    for bad in ({"world": float("inf")}, {"world": 250.0}, {"world": -1.0}, {"rmb": 50.0, "judgebench": float("-inf")}):
        with pytest.raises(InvalidScoreError):
            set_version_scores(client, name, v1, bad)
    assert not any(k.startswith("eval/") for k in client.get_model_version(name, str(v1)).tags)


def test_ties_keep_the_champion_and_the_margin_must_be_sane(client) -> None:
    name = "rewardops-rm-guard-tie"
    client.create_registered_model(name)
    v1 = _version(client, name, {"eval/rmb": "60.0", "eval/judgebench": "70.0"})
    assert promote_champion(client, name).promoted
    _version(client, name, {"eval/rmb": "70.0", "eval/judgebench": "60.0"})  # same average: a tie
    tie = promote_champion(client, name)
    assert not tie.promoted and _champion(client, name) == v1 and "<=" in tie.reason
    _version(client, name, {"eval/rmb": "61.0", "eval/judgebench": "70.0"})  # +0.5 points
    assert not promote_champion(client, name, min_delta=0.5).promoted  # must beat by MORE than the margin
    for margin in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="min_delta"):
            promote_champion(client, name, min_delta=margin)
    assert promote_champion(client, name, min_delta=0.25).promoted
