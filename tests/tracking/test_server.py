"""MLflow server mode: a real `mlflow server` (SQLite backend, moto S3 artifact store; conftest).

Covers the suite (one parent run, one child per size), lineage tags, the registry (alias
`candidate` at registration, `champion` by the seven-benchmark-average rule) and
`rewardops compare` over two suites.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardops.tracking.compare import benchmark_columns
from rewardops.tracking.mlflow_tracker import start_tracker
from rewardops.tracking.registry import CANDIDATE, CHAMPION, model_name_for_size, promote_champion, set_version_scores

LINEAGE = ("rewardops.data.dvc_hash", "rewardops.data.git_rev", "rewardops.code.commit", "rewardops.pipeline.run_id", "rewardops.image")


pytestmark = pytest.mark.slow  # a real MLflow server


def eval_metrics(average: float) -> dict[str, float]:
    """The keys `rewardops eval` logs (percent): eval/<benchmark> and eval/average_7."""
    names = [name for name, _ in benchmark_columns() if name != "score"]
    values = {f"eval/{name}": average + (i - 3) for i, name in enumerate(names)}
    values["eval/average_7"] = sum(values.values()) / len(names)
    values["eval/score"] = values["eval/average_7"]
    return values


@pytest.fixture
def lineage_env(server_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REWARDOPS_PIPELINE_RUN_ID", "kfp-run-123")
    monkeypatch.setenv("REWARDOPS_IMAGE", "ghcr.io/rewardops/trainer:test")
    monkeypatch.setenv("REWARDOPS_DATA_DVC_HASH", "3f2a9c.dir")
    monkeypatch.setenv("REWARDOPS_DATA_GIT_REV", "abc123")
    monkeypatch.setenv("REWARDOPS_CODE_COMMIT", "def456")
    return server_env


def test_suite_children_lineage_and_registry(lineage_env, monkeypatch: pytest.MonkeyPatch, tiny_checkpoint: Path) -> None:
    from mlflow import MlflowClient

    server = lineage_env
    client = MlflowClient(server.uri)
    experiment = "suite-registry"
    sizes = {"tiny-a": 60.0, "tiny-b": 70.0}

    # suite "base": one process per size, grouped only through REWARDOPS_SUITE
    monkeypatch.setenv("REWARDOPS_SUITE", "base")
    runs = {}
    for size, average in sizes.items():
        with start_tracker(experiment, f"train-{size}", tags={"rewardops.size": size}) as tracker:
            tracker.log_params({"size": size, "optim": {"lr": 3e-6}})
            tracker.log_metrics({"train/loss": 0.5}, step=1)
            version = tracker.register_model(tiny_checkpoint, model_name_for_size(size))
            tracker.log_metrics(eval_metrics(average), step=0)  # what `rewardops eval` adds
            runs[size] = tracker.run_id
        assert version == 1

    parents = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        "tags.`rewardops.suite.parent` = 'true'",
    )
    assert len(parents) == 1
    parent = parents[0]
    for size, run_id in runs.items():
        run = client.get_run(run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["rewardops.suite"] == "base"
        for key in LINEAGE:
            assert run.data.tags[key] not in ("", "unknown"), key
        assert run.data.tags["rewardops.pipeline.run_id"] == "kfp-run-123"
        assert run.data.tags["rewardops.image"] == "ghcr.io/rewardops/trainer:test"
        assert run.data.tags["rewardops.data.dvc_hash"] == "3f2a9c.dir"
        name = model_name_for_size(size)
        assert int(client.get_model_version_by_alias(name, CANDIDATE).version) == 1
        mv = client.get_model_version(name, "1")
        assert mv.run_id == run_id and mv.tags["rewardops.code.commit"] == "def456"

    # the artifacts went through the server into the S3 bucket
    keys = server.s3.keys(server.bucket, "mlflow/")
    assert any(k.endswith("model.safetensors") for k in keys)
    assert any(k.endswith("MLmodel") for k in keys)

    # the first candidate becomes champion; a worse one does not; a better one does
    name = model_name_for_size("tiny-a")
    first = promote_champion(client, name)
    assert first.promoted and int(client.get_model_version_by_alias(name, CHAMPION).version) == 1
    source = client.get_model_version(name, "1").source
    for suite, average, expect in (("worse", 55.0, False), ("better", 64.0, True)):
        monkeypatch.setenv("REWARDOPS_SUITE", suite)
        with start_tracker(experiment, "train-tiny-a", tags={"rewardops.size": "tiny-a"}) as tracker:
            tracker.log_metrics(eval_metrics(average), step=0)
        # new versions of the same weights (one full log_model above is enough); their scores are
        # recorded on the version, as the KFP `register` step does
        assert source.startswith("runs:/")  # the serving pyfunc logged under the training run
        version = int(client.create_model_version(name, source, run_id=runs["tiny-a"]).version)
        set_version_scores(client, name, version, {k.removeprefix("eval/"): v for k, v in eval_metrics(average).items()})
        client.set_registered_model_alias(name, CANDIDATE, str(version))
        decision = promote_champion(client, name, min_delta=0.5)
        assert decision.candidate == version and decision.promoted is expect, decision
        assert client.get_model_version(name, str(version)).tags["rewardops.promotion"] == ("promoted" if expect else "kept")
    assert int(client.get_model_version_by_alias(name, CHAMPION).version) == 3
    assert int(client.get_model_version_by_alias(name, CANDIDATE).version) == 3
    from rewardops.cli import app

    cli = CliRunner().invoke(app, ["registry", "promote", name, "--tracking-uri", server.uri])
    assert cli.exit_code == 0 and "already the champion" in cli.output, cli.output
    cli = CliRunner().invoke(app, ["registry", "promote", "rewardops-rm-nope", "--tracking-uri", server.uri])
    assert cli.exit_code == 2 and "no registered model 'rewardops-rm-nope'" in cli.output, cli.output
    assert name in cli.output  # ... and which ones exist

    # the registered model is a reward pyfunc: conversations in, one raw reward per row out
    import mlflow

    served = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    import pandas as pd

    rewards = served.predict(pd.DataFrame({"messages": [[{"role": "user", "content": "hello"}, {"role": "assistant", "content": "world"}]]}))
    assert list(rewards.columns) == ["reward"] and isinstance(float(rewards["reward"][0]), float)
    card = client.get_model_version(name, "1").description
    assert "## Intended use and limits" in card and "tiny" in card


def test_compare_two_suites(server_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from rewardops.cli import app

    monkeypatch.chdir(tmp_path)
    experiment = "suite-compare"
    averages = {"v1": {"qwen3-0.6b": 60.0, "llama-3.2-1b": 62.0}, "v2": {"qwen3-0.6b": 63.0, "llama-3.2-1b": 61.0}}
    for suite, sizes in averages.items():
        monkeypatch.setenv("REWARDOPS_SUITE", suite)
        for size, average in sizes.items():
            with start_tracker(experiment, f"train-{size}", tags={"rewardops.size": size}, lineage=False) as tracker:
                tracker.log_metrics(eval_metrics(average), step=0)
    monkeypatch.delenv("REWARDOPS_SUITE")

    runner = CliRunner()
    one = runner.invoke(app, ["compare", "v1", "--experiment", experiment, "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    assert "qwen3-0.6b" in one.output and "Suite v1" in one.output
    md = (tmp_path / "one" / "compare.md").read_text()
    assert "| Size | RB v1 | RB v2 | PPE Pref | PPE Corr | RMB | RM-Bench | JudgeBench | Avg. |" in md
    assert "| qwen3-0.6b |" in md and "60.0" in md
    rows = list(csv.DictReader((tmp_path / "one" / "compare.csv").open()))
    by_size = {r["size"]: r for r in rows}
    assert float(by_size["llama-3.2-1b"]["score"]) == pytest.approx(62.0)
    assert (tmp_path / "one" / "compare.png").stat().st_size > 5000

    two = runner.invoke(app, ["compare", "v1", "v2", "--experiment", experiment, "--out", str(tmp_path / "two")])
    assert two.exit_code == 0, two.output
    rows = list(csv.DictReader((tmp_path / "two" / "compare-v1-vs-v2.csv").open()))
    deltas = {r["size"]: float(r["score:delta"]) for r in rows}
    assert deltas == pytest.approx({"qwen3-0.6b": 3.0, "llama-3.2-1b": -1.0})
    assert "60.0 -> 63.0 (+3.0)" in (tmp_path / "two" / "compare-v1-vs-v2.md").read_text()
    assert (tmp_path / "two" / "compare-v1-vs-v2.png").is_file()

    missing = runner.invoke(app, ["compare", "nope", "--experiment", experiment, "--out", str(tmp_path / "x")])
    assert missing.exit_code == 2 and "no suite 'nope'" in missing.output
    assert "v1" in " ".join(missing.output.split())  # ... and which suites exist

    # without a name: the newest suite
    newest = runner.invoke(app, ["compare", "--experiment", experiment, "--out", str(tmp_path / "newest")])
    assert newest.exit_code == 0 and "Suite v2" in newest.output, newest.output
