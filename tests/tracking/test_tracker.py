"""The tracker in embedded mode (SQLite + local artifact folder) and the no-op tracker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardops.tracking.mlflow_tracker import (
    MlflowTracker,
    NullTracker,
    Tracker,
    default_tracking_uri,
    flatten_params,
    start_tracker,
)


def _embedded_env(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("REWARDOPS_MLFLOW_ARTIFACTS", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    return folder


@pytest.fixture
def empty_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return _embedded_env(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture
def embedded(shared_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One embedded store for the module: creating a SQLite store runs migrations (~5 s)."""
    return _embedded_env(shared_dir, monkeypatch)


def test_flatten_params_nested_lists_and_long_values() -> None:
    flat = flatten_params({"optim": {"lr": 1e-5, "betas": [0.9, 0.95]}, "size": "0.6b", "note": "x" * 7000})
    assert flat["optim.lr"] == "1e-05"
    assert json.loads(flat["optim.betas"]) == [0.9, 0.95]
    assert flat["size"] == "0.6b"
    assert len(flat["note"]) == 6000 and flat["note"].endswith("...")


@pytest.mark.parametrize("rank", ["1", "3"])
def test_non_zero_rank_gets_null_tracker(empty_dir: Path, monkeypatch: pytest.MonkeyPatch, rank: str) -> None:
    monkeypatch.setenv("RANK", rank)
    with start_tracker("exp", "run") as tracker:
        assert isinstance(tracker, NullTracker)
        assert isinstance(tracker, Tracker)
        tracker.log_metrics({"loss": 1.0}, step=1)
        assert tracker.run_id is None
        assert tracker.register_model(empty_dir, "m") is None
    assert not (empty_dir / "mlruns.db").exists()


def test_params_hold_relative_paths(empty_dir: Path) -> None:
    import tempfile

    flat = flatten_params({"out": str(empty_dir / "runs" / "tiny"), "tmp": f"{tempfile.gettempdir()}/kfp-x/task/model",
                           "uri": "s3://bucket/x", "rel": "data/curated"})
    assert flat == {"out": "runs/tiny", "tmp": "<tmp>/…/task/model", "uri": "s3://bucket/x", "rel": "data/curated"}


def test_disabled_gets_null_tracker(empty_dir: Path) -> None:
    tracker = start_tracker("exp", "run", enabled=False)
    assert isinstance(tracker, NullTracker)
    assert not (empty_dir / "mlruns.db").exists()


def test_embedded_default_logs_everything(embedded: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow import MlflowClient

    (embedded / "report.json").write_text('{"kept": 3}')
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    with start_tracker("rewardops-test", "embedded", tags={"rewardops.size": "tiny"}) as tracker:
        assert isinstance(tracker, MlflowTracker)
        assert tracker.tracking_uri == default_tracking_uri(embedded)
        tracker.log_params({"optim": {"lr": 2e-5}, "batch": 8})
        for step in range(50):
            tracker.log_metrics({"train/loss": 1.0 / (step + 1), "train/acc": step / 50}, step=step)
        tracker.log_artifact(embedded / "report.json", "reports")
        tracker.log_figure(fig, "curve")
        tracker.set_tags({"stage": "unit"})
        run_id = tracker.run_id
    plt.close(fig)

    client = MlflowClient(default_tracking_uri(embedded))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"optim.lr": "2e-05", "batch": "8"}
    assert run.data.tags["rewardops.size"] == "tiny" and run.data.tags["stage"] == "unit"
    history = client.get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(50))
    assert {a.path for a in client.list_artifacts(run_id)} == {"reports", "figures"}
    assert [a.path for a in client.list_artifacts(run_id, "figures")] == ["figures/curve.png"]
    # artifacts live in ./mlartifacts next to ./mlruns.db
    assert list((embedded / "mlartifacts").rglob("report.json"))
    assert list((embedded / "mlartifacts").rglob("curve.png"))


def test_exception_marks_run_failed_and_child_links_parent(embedded: Path) -> None:
    from mlflow import MlflowClient

    with start_tracker("rewardops-test", "suite") as parent:
        with pytest.raises(RuntimeError):
            with start_tracker("rewardops-test", "child", parent_run_id=parent.run_id) as child:
                raise RuntimeError("training blew up")
    client = MlflowClient(default_tracking_uri(embedded))
    child_run = client.get_run(child.run_id)
    assert child_run.info.status == "FAILED"
    assert child_run.data.tags["mlflow.parentRunId"] == parent.run_id
    assert client.get_run(parent.run_id).info.status == "FINISHED"


def test_rejected_param_change_is_dropped_not_retried(embedded: Path) -> None:
    from rewardops.tracking.mlflow_tracker import TrackingWarning

    with start_tracker("rewardops-test", "params") as tracker:
        tracker.log_params({"lr": 1})
        assert tracker.flush(30)
        with pytest.warns(TrackingWarning, match="rejected"):
            tracker.log_params({"lr": 2})  # MLflow params are immutable
            assert tracker.flush(30)
        tracker.log_metrics({"after": 1.0}, step=0)
    assert tracker.dropped and tracker.dropped[0]["params"] == {"lr": "2"}
    from mlflow import MlflowClient

    assert MlflowClient(default_tracking_uri(embedded)).get_run(tracker.run_id).data.metrics == {"after": 1.0}


def test_missing_artifact_is_a_clear_error(embedded: Path) -> None:
    with start_tracker("rewardops-test", "missing") as tracker:
        with pytest.raises(FileNotFoundError, match="nope.txt"):
            tracker.log_artifact(embedded / "nope.txt")
        with pytest.raises(FileNotFoundError, match="config.json"):
            tracker.register_model(embedded, "m")


def test_one_promotion_rule_percent_and_partial_suites(embedded: Path) -> None:
    """The champion rule on the registry of the embedded store (versions created directly)."""
    from mlflow import MlflowClient

    from rewardops.evaluation.report import registry_score
    from rewardops.tracking.registry import CANDIDATE, CHAMPION, RegistryLookupError, promote_champion, set_version_scores

    # the score: the paper benchmarks present, else the world; percent in, percent out
    assert registry_score({"rmb": 60.0, "judgebench": 70.0, "world": 99.0}).value == pytest.approx(65.0)
    assert registry_score({"world": 71.5}).basis == ("world",)
    assert registry_score({}) is None

    client = MlflowClient(default_tracking_uri(embedded))
    name = "rewardops-rm-rule"
    client.create_registered_model(name)

    def version_with(metrics: dict[str, float]) -> int:
        with start_tracker("rewardops-test", "eval", lineage=False) as tracker:
            tracker.log_metrics(metrics, step=0)
        mv = client.create_model_version(name, (embedded / "weights").as_uri(), run_id=tracker.run_id)
        client.set_registered_model_alias(name, CANDIDATE, mv.version)
        return int(mv.version)

    v1 = version_with({"eval/rm-bench": 50.0, "eval/judgebench": 50.0, "eval/rmb": 50.0, "eval/world": 90.0})
    first = promote_champion(client, name)
    assert first.promoted and "3/7" in first.reason and first.candidate_score == pytest.approx(50.0)
    assert first.basis == ("rmb", "rm-bench", "judgebench")  # the world does not count beside paper benchmarks

    # v2 is better on the two benchmarks both have; its rmb is missing and so left out
    v2 = version_with({"eval/rm-bench": 54.0, "eval/judgebench": 50.0})
    second = promote_champion(client, name, min_delta=1.0)
    assert second.promoted and "2/7" in second.reason
    assert second.candidate_score == pytest.approx(52.0) and second.previous_score == pytest.approx(50.0)
    assert int(client.get_model_version_by_alias(name, CHAMPION).version) == v2

    version_with({"eval/rm-bench": 54.5, "eval/judgebench": 50.0})  # +0.25 on average: below min_delta
    third = promote_champion(client, name, min_delta=1.0)
    assert not third.promoted and third.previous_champion == v2
    assert int(client.get_model_version_by_alias(name, CHAMPION).version) == v2

    # scores recorded on the version (the KFP route) win over the run's metrics
    v4 = version_with({})
    assert set_version_scores(client, name, v4, {"rm-bench": 60.0, "judgebench": 60.0}) == pytest.approx(60.0)
    assert client.get_model_version(name, str(v4)).tags["eval/score"] == "60.0"
    assert promote_champion(client, name).promoted
    assert v1 == 1

    # what does not exist is named, with what does
    with pytest.raises(RegistryLookupError, match="no registered model 'rewardops-rm-nope'.*rewardops-rm-rule"):
        promote_champion(client, "rewardops-rm-nope")
    with pytest.raises(RegistryLookupError, match=r"version 99 of 'rewardops-rm-rule' not found.*versions \[1, 2, 3, 4\]"):
        promote_champion(client, name, version=99)


def test_explicit_sqlite_uri_keeps_artifacts_next_to_the_db(tmp_path: Path, empty_dir: Path) -> None:
    db = tmp_path / "store" / "runs.db"
    with start_tracker("rewardops-test", "elsewhere", tracking_uri=f"sqlite:///{db}", lineage=False) as tracker:
        (empty_dir / "note.txt").write_text("x")
        tracker.log_artifact(empty_dir / "note.txt")
        assert tracker.flush(30)
    assert list((db.parent / "mlartifacts").rglob("note.txt"))
    assert not (empty_dir / "mlartifacts").exists()


def test_compare_on_a_world_only_suite_names_rows_by_size(embedded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's case: no paper benchmark offline, only the generated world; one parent, a child per size."""
    import csv

    from typer.testing import CliRunner

    from rewardops.cli import app

    monkeypatch.setenv("REWARDOPS_SUITE", "demo-suite")
    for size, world in (("demo-tiny-qwen3", 61.0), ("demo-smollm2-135m", 70.7)):
        with start_tracker("rewardops-demo-compare", size, tags={"rewardops.size": size}, lineage=False) as tracker:
            tracker.log_metrics({"eval/world": world, "eval/score": world, "eval/world/arith": 50.0}, step=0)
    monkeypatch.delenv("REWARDOPS_SUITE")
    out = embedded / "compare-demo"
    done = CliRunner().invoke(app, ["compare", "demo-suite", "--experiment", "rewardops-demo-compare", "--out", str(out)])
    assert done.exit_code == 0, done.output
    md = (out / "compare.md").read_text()
    assert "| Size | World | Avg. |" in md
    assert "| demo-smollm2-135m | 70.7 | 70.7 |" in md and "| demo-tiny-qwen3 | 61.0 | 61.0 |" in md
    rows = {r["size"]: r for r in csv.DictReader((out / "compare.csv").open())}
    assert float(rows["demo-tiny-qwen3"]["world"]) == pytest.approx(61.0)
