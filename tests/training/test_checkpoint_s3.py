"""Checkpoints at an s3:// URI: written, completed, marked latest, rotated, fetched and resumed from.

No S3 or MinIO can run here, so moto's server mode (ThreadedMotoServer on 127.0.0.1) stands in for
it; boto3 talks real HTTP to it through AWS_ENDPOINT_URL, as a pod would.
"""

from __future__ import annotations

import json
import socket

import boto3
import pytest
from safetensors.torch import load_file

from rewardops.training.checkpoint import MANIFEST, CheckpointError, S3Store


pytestmark = pytest.mark.slow  # a real (moto) S3 server and training runs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint, monkeypatch, request):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    client = boto3.client("s3")
    bucket = f"ckpt-{request.node.name.replace('_', '-')[:40].lower()}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


def test_s3_store_round_trip(s3, tmp_path):
    client, bucket = s3
    store = S3Store(f"s3://{bucket}/runs/a", tmp_path / "staging")
    assert store.latest() is None
    for step in (1, 2, 3):
        d = store.write_dir(f"step-{step:08d}")
        (d / "state.json").write_text(str(step))
        (d / "sub").mkdir()
        (d / "sub" / "x.bin").write_bytes(b"\0" * step)
        store.commit(f"step-{step:08d}")
        store.finalize(f"step-{step:08d}", {"step": step})
        store.mark_latest(f"step-{step:08d}")
    assert store.latest() == "step-00000003"
    assert store.tags() == ["step-00000001", "step-00000002", "step-00000003"]
    assert store.read_record("step-00000002")["files"] == {"state.json": {"bytes": 1}, "sub/x.bin": {"bytes": 2}}
    store.delete("step-00000001")
    assert store.tags() == ["step-00000002", "step-00000003"]
    got = store.fetch("step-00000002")
    assert (got / "state.json").read_text() == "2" and (got / "sub" / "x.bin").read_bytes() == b"\0\0"
    with pytest.raises(FileNotFoundError, match="checkpoint has no files"):
        store.fetch("step-00000009")


def test_training_checkpoints_to_s3_and_resumes(s3, tmp_path, pairs_dir, capfd):
    from rewardops.training.config import load_config
    from rewardops.training import run

    client, bucket = s3
    base = {"data": str(pairs_dir), "out": str(tmp_path / "run"), "global_batch": 16, "micro_batch_tokens": 2048,
            "checkpoint_dir": f"s3://{bucket}/runs/tiny", "checkpoint_every": 1, "keep_checkpoints": 2,
            "mlflow": False, "export": False, "num_threads": 1, "seed": 3, "epochs": 2}
    first = run(load_config("demo-tiny-qwen3", {**base, "max_steps": 2}), progress=False)

    def keys() -> set[str]:
        return {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="runs/tiny/")["Contents"]}

    assert {"runs/tiny/latest", "runs/tiny/step-00000002/model.safetensors", f"runs/tiny/step-00000002/{MANIFEST}"} <= keys()
    assert not [k for k in keys() if k.endswith(".pt")]  # no pickle in S3 either
    second = run(load_config("demo-tiny-qwen3", {**base, "max_steps": 3}), progress=False)
    assert first.steps == 2 and second.steps == 3
    assert [h["step"] for h in second.history] == [3]  # resumed from s3, did only the last step
    assert client.get_object(Bucket=bucket, Key="runs/tiny/latest")["Body"].read().decode() == "step-00000003"
    assert {k.split("/")[2] for k in keys() if "/step-" in k} == {"step-00000002", "step-00000003"}  # rotated
    fetched = tmp_path / "run" / ".checkpoint-staging" / "rank0" / "fetched-step-00000002" / "model.safetensors"
    assert "score.weight" in load_file(fetched)

    # a save killed half-way through its upload (no completion record) and a truncated file in the
    # latest one: resume falls back to step 2 and says so
    client.put_object(Bucket=bucket, Key="runs/tiny/step-00000004/model.safetensors", Body=b"partial")
    client.put_object(Bucket=bucket, Key="runs/tiny/latest", Body=b"step-00000004")
    body = client.get_object(Bucket=bucket, Key="runs/tiny/step-00000003/model.safetensors")["Body"].read()
    client.put_object(Bucket=bucket, Key="runs/tiny/step-00000003/model.safetensors", Body=body[: len(body) // 2])
    capfd.readouterr()
    third = run(load_config("demo-tiny-qwen3", {**base, "max_steps": 4}), progress=False)
    err = capfd.readouterr().err
    assert [h["step"] for h in third.history] == [3, 4]
    assert "step-00000004: no valid checkpoint.json (the save did not finish)" in err
    assert "model.safetensors has" in err and "step-00000002, the newest complete checkpoint" in err
    record = json.loads(client.get_object(Bucket=bucket, Key=f"runs/tiny/step-00000004/{MANIFEST}")["Body"].read())
    assert record["step"] == 4 and "model.safetensors" in record["files"]

    with pytest.raises(CheckpointError, match="belongs to another run"):
        run(load_config("demo-tiny-qwen3", {**base, "max_steps": 5, "seed": 4}), progress=False)
