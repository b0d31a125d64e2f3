"""Checkpoints at an s3:// URI: written, marked latest, rotated, fetched and resumed from.

S3 itself cannot run here, so moto's in-process S3 (mock_aws) stands in for it; boto3 is real.
"""

from __future__ import annotations

import boto3
import pytest
import torch

moto = pytest.importorskip("moto")


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="ckpt")
        yield boto3.client("s3")


def test_s3_store_round_trip(s3, tmp_path):
    from rewardops.training.checkpoint import S3Store

    store = S3Store("s3://ckpt/runs/a", tmp_path / "staging")
    assert store.latest() is None
    for step in (1, 2, 3):
        d = store.write_dir(f"step-{step:08d}")
        (d / "state.json").write_text(str(step))
        (d / "sub").mkdir()
        (d / "sub" / "x.bin").write_bytes(b"\0" * step)
        store.commit(f"step-{step:08d}")
        store.mark_latest(f"step-{step:08d}")
    assert store.latest() == "step-00000003"
    assert store.tags() == ["step-00000001", "step-00000002", "step-00000003"]
    store.delete("step-00000001")
    assert store.tags() == ["step-00000002", "step-00000003"]
    got = store.fetch("step-00000002")
    assert (got / "state.json").read_text() == "2" and (got / "sub" / "x.bin").read_bytes() == b"\0\0"
    with pytest.raises(FileNotFoundError, match="checkpoint has no files"):
        store.fetch("step-00000009")


def test_training_checkpoints_to_s3_and_resumes(s3, tmp_path, pairs_dir):
    from rewardops.training.config import resolve_config
    from rewardops.training.trainer import train

    base = {"data": str(pairs_dir), "out": str(tmp_path / "run"), "global_batch": 16, "micro_batch_tokens": 2048,
            "checkpoint_dir": "s3://ckpt/runs/tiny", "checkpoint_every": 1, "keep_checkpoints": 2,
            "mlflow": False, "export": False, "num_threads": 1, "seed": 3}
    first = train(resolve_config("demo-tiny-qwen3", {**base, "max_steps": 2}), progress=False)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="ckpt", Prefix="runs/tiny/")["Contents"]}
    assert "runs/tiny/latest" in keys and "runs/tiny/step-00000002/model.pt" in keys
    second = train(resolve_config("demo-tiny-qwen3", {**base, "max_steps": 3}), progress=False)
    assert first.steps == 2 and second.steps == 3
    assert [h["step"] for h in second.history] == [3]  # resumed from s3, did only the last step
    body = s3.get_object(Bucket="ckpt", Key="runs/tiny/latest")["Body"].read().decode()
    assert body == "step-00000003"
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="ckpt", Prefix="runs/tiny/")["Contents"]}
    assert {k.split("/")[2] for k in keys if "/step-" in k} == {"step-00000002", "step-00000003"}  # rotated
    state = torch.load((tmp_path / "run" / ".checkpoint-staging" / "rank0" / "fetched-step-00000002" / "model.pt"))
    assert "score.weight" in state
