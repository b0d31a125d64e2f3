"""Lineage both ways: a dataset versioned in a DVC registry (real git + DVC, a local
folder remote) before training -> run tags + MLflow dataset input -> the registered version ->
`rewardops data get --model models:/NAME@ALIAS` brings back exactly the rows trained on, also
after the folder holding registry and remote moved. Embedded MLflow store (SQLite)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardops.data.schema import Message, PreferencePair
from rewardops.data.shards import read_pairs, write_pairs
from rewardops.tracking.data_registry import version_dataset
from rewardops.tracking.mlflow_tracker import start_tracker


def pairs(n: int, tag: str) -> list[PreferencePair]:
    return [PreferencePair(f"{tag}{i}", "unit", [Message("user", f"q{i}")], f"good {tag}{i}", f"bad {i}") for i in range(n)]


def rows(folder: Path) -> list[tuple[str, str, str]]:
    return [(p.id, p.chosen, p.rejected) for p in read_pairs(folder)]


def test_data_get_by_model_returns_the_training_rows(tmp_path: Path, tiny_checkpoint: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    from rewardops.cli import app

    monkeypatch.chdir(tmp_path)
    for var in ("REWARDOPS_DVC_REMOTE", "REWARDOPS_S3_BUCKET", "REWARDOPS_DATA_REGISTRY", "REWARDOPS_SUITE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    base = tmp_path / "demo-out"
    registry, remote = base / "data-registry", base / "dvc-remote"
    name = "rewardops-rm-lineage-tiny"
    trained: dict[int, list] = {}
    versions = []
    for n, tag in ((5, "a"), (7, "b")):  # a rerun with changed settings: a second data version
        src = tmp_path / f"curated-{tag}"
        write_pairs(pairs(n, tag), src)
        version = version_dataset(registry, "curated", src, remote, f"curated {tag}")
        versions.append(version)
        monkeypatch.setenv("REWARDOPS_DATA_PATH", str(registry / "curated"))  # training reads the registry checkout
        with start_tracker("lineage", f"tiny-{tag}", tags={"rewardops.size": "lineage-tiny"}) as tracker:
            number = tracker.register_model(tiny_checkpoint, name)
        trained[number] = rows(src)
    assert versions[0].rev != versions[1].rev and versions[0].md5 != versions[1].md5

    client = MlflowClient(uri)
    mv = client.get_model_version(name, "1")
    assert mv.tags["rewardops.data.md5"] == versions[0].md5 and mv.tags["rewardops.data.rev"] == versions[0].rev
    assert mv.tags["rewardops.data.path"] == "curated" and mv.tags["rewardops.data.rows"] == "5"
    run = client.get_run(mv.run_id)
    assert run.data.tags["rewardops.data.registry"] == str(registry.resolve())
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == versions[0].md5 and dataset_input.dataset.source_type == "dvc"
    assert json.loads(dataset_input.dataset.source)["rev"] == versions[0].rev
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"

    runner = CliRunner()
    for model, number in ((f"models:/{name}/1", 1), (f"models:/{name}@candidate", 2)):
        out = tmp_path / f"got-{number}"
        done = runner.invoke(app, ["data", "get", "--model", model, "-o", str(out)])
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["verified"] is True
        assert rows(out) == trained[number]

    # the registry's remote is relative: moving demo-out keeps every version retrievable
    moved = tmp_path / "elsewhere" / "demo-out"
    moved.parent.mkdir()
    shutil.move(str(base), str(moved))
    shutil.rmtree(moved / "data-registry" / ".dvc" / "cache")  # force the remote to be read
    out = tmp_path / "after-move"
    done = runner.invoke(app, ["data", "get", "--model", f"models:/{name}/1", "--registry", str(moved / "data-registry"),
                               "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert rows(out) == trained[1]

    # data status / pull with the registry's own (local) remote, no S3 settings
    status = runner.invoke(app, ["data", "status", "--repo", str(moved / "data-registry")])
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["not_in_remote"] == []
    shutil.rmtree(moved / "data-registry" / "curated")
    pulled = runner.invoke(app, ["data", "pull", "--repo", str(moved / "data-registry")])
    assert pulled.exit_code == 0, pulled.output
    assert rows(moved / "data-registry" / "curated") == trained[2]

    # what does not exist is named, with what does (rich wraps long lines: compare on words)
    def said(result) -> str:
        return " ".join(result.output.split())

    bad = runner.invoke(app, ["data", "get", "--model", f"models:/{name}@nope", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "alias 'nope'" in said(bad) and "candidate->v2" in said(bad), bad.output
    bad = runner.invoke(app, ["data", "get", "--model", "models:/rewardops-rm-missing@champion", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "no registered model 'rewardops-rm-missing'" in said(bad) and name in said(bad), bad.output
    bad = runner.invoke(app, ["data", "get", "curated", "--registry", str(moved / "data-registry"), "--rev", "deadbeef",
                              "-o", str(tmp_path / "y")])
    assert bad.exit_code == 2 and "deadbeef" in said(bad) and "curated b" in said(bad), bad.output
