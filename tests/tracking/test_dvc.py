"""DVC: the pipeline file, experiments, and the S3 remote.

The S3 endpoint is moto's server mode on 127.0.0.1 (conftest `moto_s3`): no MinIO binary can be
installed here, and moto speaks the same S3 HTTP API that dvc-s3 / boto3 use against MinIO.
Everything else is real: git, `dvc`, and the `rewardops` CLI run as subprocesses in a temporary
git repository holding this checkout's dvc.yaml and params.yaml.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rewardops.data.shards import count_pairs
from rewardops.tracking.commands import source_settings

BIN = Path(sys.executable).parent


pytestmark = pytest.mark.slow  # real DVC against a real (moto) S3 server


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def remote(moto_s3, aws_env: dict[str, str]) -> dict[str, str]:
    bucket = moto_s3.create_bucket("rewardops-dvc")
    return {
        **os.environ,
        **aws_env,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "REWARDOPS_DVC_REMOTE": f"s3://{bucket}/store",
        "REWARDOPS_S3_ENDPOINT": moto_s3.endpoint,
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    }  # fmt: skip


@pytest.fixture(scope="module")
def pipeline_repo(tmp_path_factory: pytest.TempPathFactory, repo_root: Path, remote: dict[str, str],
                  shared_data: Path) -> dict[str, object]:
    """A git+DVC repo with the project's dvc.yaml/params.yaml; two data versions, both pushed."""
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(repo_root / name, repo / name)
    run(["git", "init", "-q"], repo, remote)
    run(["dvc", "init", "-q"], repo, remote)
    run(["git", "add", "-A"], repo, remote)
    run(["git", "commit", "-qm", "pipeline"], repo, remote)

    revs = {}
    for n in (30, 45):
        # preprocess decontaminates against the eval benchmarks' prompts, read from the fixtures
        run(["dvc", "exp", "run", "-S", f"data.generate.n={n}", "-S", f"eval.data_dir={shared_data}", "preprocess"],
            repo, remote)
        run(["git", "add", "-A"], repo, remote)
        run(["git", "commit", "-qm", f"data n={n}"], repo, remote)
        revs[n] = run(["git", "rev-parse", "HEAD"], repo, remote).stdout.strip()
    push = run(["rewardops", "data", "push", "--all-commits"], repo, remote)  # both data versions
    assert int(push.stdout.split(" files pushed")[0].split()[-1]) > 0
    return {"path": repo, "revs": revs}


def test_dvc_yaml_stages_and_matrix(repo_root: Path, remote: dict[str, str]) -> None:
    stages = run(["dvc", "stage", "list"], repo_root, remote).stdout  # the checkout's own dvc.yaml
    for name in ("source", "preprocess", "seed", "stage1", "final-rms", "stage2", "subsets"):
        assert f"\n{name} " in f"\n{stages}" or stages.startswith(name), stages
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    for size in params["train"]["sizes"]:
        assert f"train@{size}" in stages and f"eval@{size}" in stages
    assert "data/curated" in stages and "data/discarded" in stages and "data/flipped" in stages


def test_source_settings_follow_params(tmp_path: Path) -> None:
    section = {"source": "generate", "generate": {"n": 7, "noise": 0.2, "seed": 3}, "shard_size": 5}
    assert source_settings(section) == ("generate", {"n": 7, "noise": 0.2, "seed": 3, "shard_size": 5})
    ingest = {"source": "ingest", "ingest": {"paths": ["a.jsonl"], "format": "ultrafeedback"}, "shard_size": 5}
    assert source_settings(ingest) == ("ingest", {"paths": ["a.jsonl"], "format": "ultrafeedback", "shard_size": 5})
    with pytest.raises(ValueError, match="paths is empty"):
        source_settings({"source": "ingest"})
    with pytest.raises(ValueError, match="'generate' or 'ingest'"):
        source_settings({"source": "scrape"})
    # `rewardops data source` calls the library in-process (no subprocess of our own CLI)
    from typer.testing import CliRunner

    from rewardops.cli import app

    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": section}))
    done = CliRunner().invoke(app, ["data", "source", "--out", str(tmp_path / "raw"), "--params", str(tmp_path / "params.yaml")])
    assert done.exit_code == 0, done.output
    assert count_pairs(tmp_path / "raw") == 7


def test_exp_run_set_param_changes_the_data(pipeline_repo: dict[str, object], remote: dict[str, str]) -> None:
    repo = pipeline_repo["path"]
    assert count_pairs(repo / "data/preprocessed") == 45  # the last `dvc exp run -S data.generate.n=45`
    shown = json.loads(run(["dvc", "exp", "show", "--json", "-A"], repo, remote).stdout)
    assert isinstance(shown, list) and shown
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["source"]["params"]["params.yaml"]["data"]["generate"]["n"] == 45


def test_round_trip_and_pull_of_an_older_version(pipeline_repo: dict[str, object], remote: dict[str, str], tmp_path: Path) -> None:
    repo: Path = pipeline_repo["path"]  # type: ignore[assignment]
    revs: dict[int, str] = pipeline_repo["revs"]  # type: ignore[assignment]
    before = sorted(p.read_bytes() for p in (repo / "data/preprocessed").glob("*.parquet"))
    shutil.rmtree(repo / ".dvc" / "cache")
    shutil.rmtree(repo / "data" / "preprocessed")
    shutil.rmtree(repo / "data" / "raw")
    pulled = json.loads(run(["rewardops", "data", "pull"], repo, remote).stdout)
    assert pulled["fetched"] > 0 and "data/preprocessed/" in pulled["added"], pulled
    assert sorted(p.read_bytes() for p in (repo / "data/preprocessed").glob("*.parquet")) == before
    status = json.loads(run(["rewardops", "data", "status"], repo, remote).stdout)
    assert status["not_in_remote"] == []

    # the first data version, by git revision, without touching the workspace
    old = tmp_path / "raw-v1"
    run(["rewardops", "data", "pull", "data/raw", "--rev", revs[30], "--out", str(old)], repo, remote)
    assert count_pairs(old) == 30
    assert count_pairs(repo / "data/raw") == 45

    # plain `dvc get` / `dvc import` from another checkout (remote settings passed explicitly,
    # since the pipeline repo keeps them in its uncommitted config.local)
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    run(["git", "init", "-q"], consumer, remote)
    run(["dvc", "init", "-q"], consumer, remote)
    rc = [
        "--remote-config", f"url={remote['REWARDOPS_DVC_REMOTE']}",
        "--remote-config", f"endpointurl={remote['REWARDOPS_S3_ENDPOINT']}",
    ]  # fmt: skip
    run(["dvc", "get", str(repo), "data/preprocessed", "--rev", revs[30], "-o", "got", *rc], consumer, remote)
    assert count_pairs(consumer / "got") == 30
    run(["dvc", "import", str(repo), "data/raw", "--rev", revs[30], "-o", "imported", *rc], consumer, remote)
    assert count_pairs(consumer / "imported") == 30
    imported = yaml.safe_load((consumer / "imported.dvc").read_text())
    assert imported["deps"][0]["repo"]["rev_lock"] == revs[30]


def test_interrupted_push_resumes(tmp_path: Path, remote: dict[str, str], moto_s3) -> None:
    bucket = moto_s3.create_bucket("rewardops-dvc-resume")
    env = {**remote, "REWARDOPS_DVC_REMOTE": f"s3://{bucket}/store"}
    repo = tmp_path / "repo"
    (repo / "blobs").mkdir(parents=True)
    for i in range(300):
        (repo / "blobs" / f"{i:04d}.bin").write_bytes(os.urandom(2048))
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "add", "blobs"], repo, env)

    proc = subprocess.Popen(
        [str(BIN / "rewardops"), "data", "push", "--jobs", "1"], cwd=repo, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(moto_s3.keys(bucket)) < 20:
        time.sleep(0.05)
    assert proc.poll() is None, f"push ended before it could be interrupted:\n{proc.stdout.read().decode()[-2000:]}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    uploaded_before = len(moto_s3.keys(bucket))
    assert 0 < uploaded_before < 301

    resumed = run(["rewardops", "data", "push", "--jobs", "4"], repo, env)
    total = len(moto_s3.keys(bucket))
    assert total == 301  # 300 files + the directory manifest (.dir)
    pushed = int(resumed.stdout.split(" files pushed")[0].split()[-1])
    assert pushed == total - uploaded_before, resumed.stdout  # only what was missing was sent


def test_wrong_credentials_fail_clearly(pipeline_repo: dict[str, object], remote: dict[str, str], moto_s3) -> None:
    """moto checks signatures only with auth switched on (its /moto-api/reset-auth); with it on,
    any access key that moto's IAM has not issued is rejected like a wrong MinIO/AWS key."""
    import httpx

    repo = pipeline_repo["path"]
    bad = {**remote, "AWS_ACCESS_KEY_ID": "WRONGKEY123", "AWS_SECRET_ACCESS_KEY": "wrong"}
    httpx.post(f"{moto_s3.endpoint}/moto-api/reset-auth", content=b"0").raise_for_status()
    try:
        ours = run(["rewardops", "data", "push"], repo, bad, check=False)
        plain = run(["dvc", "push", "-r", "rewardops"], repo, bad, check=False)
    finally:
        httpx.post(f"{moto_s3.endpoint}/moto-api/reset-auth", content=b"inf").raise_for_status()
    assert ours.returncode == 2
    message = ours.stdout + ours.stderr
    assert "rejected the credentials" in message and "AWS_ACCESS_KEY_ID=WRON" in message, message
    # plain DVC fails too, but only says "Forbidden: ... (403) when calling the HeadObject operation"
    assert plain.returncode != 0 and "403" in plain.stdout + plain.stderr
