"""A real pipeline run with kfp.local (SubprocessRunner) and content-aware caching.

KFP's own cache key covers parameters and artifact names, not file contents; the data version
input is what makes a changed file re-run the pipeline. Here: unchanged data -> every task is a
cache hit; one changed row -> a new data version -> the tasks run again.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.tracking.dataversion import content_hash, data_version
from rewardops.pipelines.commands import build_pipeline, prepare_params, run_local


pytestmark = pytest.mark.slow  # kfp.local: every step a real subprocess


def _rows(shared_data: Path, n: int) -> list[str]:
    lines = (shared_data / "ultrafeedback-sample" / "train_clean.jsonl").read_text().splitlines()
    return lines[:n]


def test_data_version_follows_content_and_prefers_dvc(tmp_path, isolated_cache):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_text('{"x": 1}\n')
    first = data_version(folder)
    assert first.startswith("sha256:") and data_version(folder) == first  # second call served from the digest cache
    (folder / "a.jsonl").write_text('{"x": 2}\n')
    assert data_version(folder) != first
    (folder / "b.jsonl").write_text("")
    assert content_hash(folder) != content_hash(folder / "a.jsonl")
    # a DVC-tracked folder is versioned by its DVC hash (what MLflow runs are tagged with)
    (tmp_path / "data.dvc").write_text("outs:\n- md5: 3f2a9c0d.dir\n  path: data\n")
    assert data_version(folder, repo=tmp_path) == "dvc:3f2a9c0d.dir"
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        data_version(tmp_path / "missing")


def test_data_pipeline_runs_locally_and_reuses_its_cache_until_the_data_changes(tmp_path, isolated_cache, shared_data):
    source = tmp_path / "pairs.jsonl"
    source.write_text("\n".join(_rows(shared_data, 12)) + "\n")
    func = build_pipeline("data")
    workdir = tmp_path / "run"

    params = prepare_params("data", func, {}, [str(source)], [], local=True)
    assert params["sources"] == [str(source.resolve())] and params["data_version"].startswith("sha256:")
    first = run_local("data", params, workdir)
    assert first["cached_tasks"] == []
    suite = first["suite"]  # the run is one MLflow suite, closed FINISHED
    assert suite.client.get_run(suite.run_id).info.status == "FINISHED"
    dataset = next((workdir / "kfp").glob("rewardops-data-*/preprocess/dataset"))
    assert sum(pq.read_metadata(p).num_rows for p in dataset.glob("part-*.parquet")) == 12
    assert json.loads(next((workdir / "kfp").glob("rewardops-data-*/ingest/metrics")).read_text())["kept"] == 12.0

    again = run_local("data", prepare_params("data", func, {}, [str(source)], [], local=True), workdir)
    assert again["cached_tasks"] == ["ingest", "preprocess"]

    source.write_text("\n".join(_rows(shared_data, 13)) + "\n")  # same path, one more row
    changed = prepare_params("data", func, {}, [str(source)], [], local=True)
    assert changed["data_version"] != params["data_version"]
    rerun = run_local("data", changed, workdir)
    assert rerun["cached_tasks"] == []


def test_run_command_refuses_bad_parameters_before_running(tmp_path, isolated_cache):
    runner = CliRunner()
    result = runner.invoke(app, ["run", "data", "--local", "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "data_version is missing" in result.output and "sources is missing" in result.output
    result = runner.invoke(app, ["run", "data", "--local", "--data", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "no such file or folder" in result.output
    result = runner.invoke(app, ["run", "data", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "add --local" in result.output
    assert not (tmp_path / "kfp").exists()


def test_local_runs_share_one_prepared_mlflow_store(tmp_path):
    from mlflow.tracking import MlflowClient

    from rewardops.pipelines.commands import prepare_tracking_store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prepare_tracking_store(uri, artifact_root=tmp_path / "mlartifacts")
    prepare_tracking_store(uri, artifact_root=tmp_path / "mlartifacts")  # idempotent
    experiment = MlflowClient(tracking_uri=uri).get_experiment_by_name("rewardops-training")
    assert experiment.artifact_location == (tmp_path / "mlartifacts" / "rewardops-training").resolve().as_uri()
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"  # the UI's runs table
