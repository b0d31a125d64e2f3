"""Lineage tags: environment first (what a KFP step sets), then git and DVC in the working tree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from rewardops.tracking.lineage import code_commit, data_dvc_hash, run_tags

ENV_KEYS = (
    "REWARDOPS_DATA_DVC_HASH", "REWARDOPS_DATA_GIT_REV", "REWARDOPS_CODE_COMMIT", "GIT_COMMIT",
    "REWARDOPS_PIPELINE_RUN_ID", "KFP_RUN_ID", "REWARDOPS_IMAGE", "REWARDOPS_DATA_PATH",
)  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)


def git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_tags_from_git_and_dvc_lock(tmp_path: Path, clean_env: None) -> None:
    lock = {"schema": "2.0", "stages": {"subsets": {"cmd": "x", "outs": [{"path": "data/curated", "md5": "abc.dir", "size": 1}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "raw.dvc").write_text(yaml.safe_dump({"outs": [{"path": "raw", "md5": "def.dir"}]}))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "x")
    head = git(tmp_path, "rev-parse", "HEAD")

    assert data_dvc_hash("data/curated", tmp_path) == "abc.dir"
    assert data_dvc_hash(tmp_path / "data/curated/", tmp_path) == "abc.dir"
    assert data_dvc_hash("raw", tmp_path) == "def.dir"
    assert data_dvc_hash("elsewhere", tmp_path) is None

    tags = run_tags("data/curated", repo=tmp_path)
    assert tags["rewardops.data.dvc_hash"] == "abc.dir"
    assert tags["rewardops.data.git_rev"] == head
    assert tags["rewardops.code.commit"] == head
    assert tags["mlflow.source.git.commit"] == head
    assert tags["rewardops.pipeline.run_id"] == "local" and tags["rewardops.image"] == "local"

    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"stages": {}}))  # a tracked file changed
    assert code_commit(tmp_path) == f"{head}-dirty"


def test_environment_wins(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARDOPS_DATA_DVC_HASH", "dvc:3f2a9c0d.dir")
    monkeypatch.setenv("REWARDOPS_DATA_GIT_REV", "envrev")
    monkeypatch.setenv("GIT_COMMIT", "c0ffee")
    monkeypatch.setenv("KFP_RUN_ID", "kfp-1")
    monkeypatch.setenv("REWARDOPS_IMAGE", "img:1")
    tags = run_tags(None, repo=tmp_path, extra={"rewardops.size": "0.6b"})
    assert tags["rewardops.data.dvc_hash"] == "3f2a9c0d.dir" and "rewardops.data.version" not in tags
    assert tags["rewardops.data.git_rev"] == "envrev"
    assert tags["rewardops.code.commit"] == "c0ffee"
    assert tags["rewardops.pipeline.run_id"] == "kfp-1"
    assert tags["rewardops.image"] == "img:1"
    assert tags["rewardops.size"] == "0.6b"
    # a pipeline's data_version that is not a DVC hash is tagged as a data version, not as one
    monkeypatch.setenv("REWARDOPS_DATA_DVC_HASH", "world:n=1000,noise=0.1,seed=0")
    tags = run_tags(None, repo=tmp_path)
    assert tags["rewardops.data.dvc_hash"] == "unknown" and tags["rewardops.data.version"] == "world:n=1000,noise=0.1,seed=0"


def test_outside_git_is_unknown_not_an_error(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    tags = run_tags("data", repo=tmp_path)
    assert tags["rewardops.code.commit"] == "unknown"
    assert tags["rewardops.data.dvc_hash"] == "unknown"
    assert "mlflow.source.git.commit" not in tags


def test_a_plain_dataset_folder_is_the_runs_dataset_input(tmp_path: Path, clean_env: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """No DVC registry versions the folder: the run still records what it read (path + manifest
    digest); the same bytes written again give the same digest, other bytes another one."""
    import json

    from mlflow import MlflowClient

    from rewardops.data.schema import Message, PreferencePair
    from rewardops.data.shards import write_pairs
    from rewardops.tracking.lineage import folder_version
    from rewardops.tracking.mlflow_tracker import start_tracker

    monkeypatch.chdir(tmp_path)
    for var in ("REWARDOPS_DATA_REGISTRY", "REWARDOPS_SUITE", "REWARDOPS_PARENT_RUN_ID", "RANK"):
        monkeypatch.delenv(var, raising=False)
    pairs = [PreferencePair(f"p{i}", "unit", [Message("user", f"q{i}")], f"good {i}", f"bad {i}") for i in range(4)]
    write_pairs(pairs, tmp_path / "plain")
    write_pairs(pairs, tmp_path / "again")
    write_pairs(pairs[:3], tmp_path / "other")
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "part-00000.parquet").write_bytes((tmp_path / "plain" / "part-00000.parquet").read_bytes())
    assert folder_version(tmp_path / "plain").digest == folder_version(tmp_path / "again").digest
    assert folder_version(tmp_path / "plain").digest != folder_version(tmp_path / "other").digest
    assert folder_version(tmp_path / "loose") is None  # no manifest: not a dataset we can name

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = {}
    for name in ("plain", "loose"):
        with start_tracker("lineage", name, tracking_uri=uri, tags={"rewardops.data.path": str(tmp_path / name)}) as tracker:
            runs[name] = tracker.run_id
    client = MlflowClient(uri)
    run = client.get_run(runs["plain"])
    (dataset_input,) = run.inputs.dataset_inputs
    source = json.loads(dataset_input.dataset.source)
    assert dataset_input.dataset.source_type == "rewardops-folder" and dataset_input.dataset.name == "plain"
    assert source["path"] == str((tmp_path / "plain").resolve()) and source["rows"] == 4
    assert source["manifest_digest"] == folder_version(tmp_path / "plain").digest == run.data.tags["rewardops.data.manifest_digest"]
    assert run.data.tags["rewardops.data.path"] == str((tmp_path / "plain").resolve())
    assert "rewardops.data.get" not in run.data.tags  # no DVC registry: no `dvc get` line to offer
    assert client.get_run(runs["loose"]).inputs.dataset_inputs == []
