"""Checkpoints that cannot run code and resume only the run they belong to.

Real training runs of the tiny random-init demo model (demo-tiny-qwen3, CPU, 1 thread), real
safetensors/JSON files, a real DeepSpeed engine (CPU accelerator, gloo, in a subprocess) for the
weights-only loader. The crafted pickles below really run code when unpickled: each test first
proves that on a control file, then asserts that resuming never triggers it.
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from rewardops.data.shards import read_pairs, write_pairs
from rewardops.training.checkpoint import (
    MANIFEST,
    CheckpointError,
    LocalStore,
    decode_tree,
    encode_tree,
    harden_deepspeed,
    load_rng,
    save_rng,
    weights_only_load,
)
from rewardops.training.config import load_config
from rewardops.training import run

SIZE = "demo-tiny-qwen3"
BASE = {"epochs": 2, "global_batch": 16, "micro_batch_tokens": 2048, "checkpoint_every": 1, "keep_checkpoints": 3,
        "mlflow": False, "export": False, "num_threads": 1, "seed": 5}


class Payload:
    """Unpickling this writes `path`: the stand-in for an attacker's code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "code ran"))


def _armed(path: Path, sentinel: Path) -> None:
    """Write a pickle that runs code, after proving on a control sentinel that it does."""
    control = sentinel.with_name(sentinel.name + ".control")
    pickle.loads(pickle.dumps(Payload(control)))
    assert control.read_text() == "code ran"
    control.unlink()
    torch.save({"state": Payload(sentinel)}, path)


def _config(data: Path, out: Path, **extra):
    return load_config(SIZE, {**BASE, "data": str(data), "out": str(out), **extra})


@pytest.fixture(scope="module")
def run3(tmp_path_factory, pairs_dir):
    """Three steps, a checkpoint after each (kept: 1, 2, 3)."""
    out = tmp_path_factory.mktemp("ckpt") / "run"
    result = run(_config(pairs_dir, out, max_steps=3), progress=False)
    assert result.steps == 3
    return out


@pytest.fixture
def run_copy(run3, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run3, out)
    return out


def _ckpt(out: Path, step: int) -> Path:
    return out / "checkpoints" / f"step-{step:08d}"


# --- units -----------------------------------------------------------------------------------------

def test_state_dict_codec_round_trips_and_refuses_objects():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    for sd in (opt.state_dict(), sched.state_dict()):
        tensors: dict = {}
        tree = json.loads(json.dumps(encode_tree(sd, tensors)))  # really JSON
        back = decode_tree(tree, tensors)
        assert back.keys() == sd.keys()
    back_opt = decode_tree(json.loads(json.dumps(encode_tree(opt.state_dict(), tensors := {}))), tensors)
    assert set(back_opt["state"]) == {0, 1}  # int keys survive JSON
    assert back_opt["param_groups"][0]["betas"] == (0.9, 0.95)
    torch.testing.assert_close(back_opt["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(TypeError, match="plain data only"):
        encode_tree({"x": Payload(Path("/nonexistent"))}, {})


def test_rng_state_round_trips_without_pickle(tmp_path):
    import random

    torch.manual_seed(1), random.seed(1), np.random.seed(1)
    save_rng(tmp_path, 0)
    expected = (torch.rand(3), random.random(), np.random.rand(2))
    torch.manual_seed(9), random.seed(9), np.random.seed(9)
    assert load_rng(tmp_path, 0)
    got = (torch.rand(3), random.random(), np.random.rand(2))
    torch.testing.assert_close(got[0], expected[0])
    assert got[1] == expected[1] and np.array_equal(got[2], expected[2])
    assert json.loads((tmp_path / "rng-rank0.json").read_text())["python"][0] == 3
    assert load_file(tmp_path / "rng-rank0.safetensors")["torch"].dtype == torch.uint8


def test_a_save_killed_before_completion_is_not_a_checkpoint(tmp_path):
    store = LocalStore(tmp_path)
    d = store.write_dir("step-00000001")
    (d / "state.json").write_text("{}")
    assert store.tags() == [] and store.latest() is None  # never renamed into place, never latest
    store.clean_partial()
    assert list(tmp_path.iterdir()) == []


# --- runs ------------------------------------------------------------------------------------------

def test_checkpoints_hold_no_pickle(run3):
    for step in (1, 2, 3):
        folder = _ckpt(run3, step)
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted([MANIFEST, "config.json", "model.safetensors", "optimizer.json", "optimizer.safetensors",
                                "rng-rank0.json", "rng-rank0.safetensors", "scheduler.json", "state.json"])
        for p in folder.iterdir():
            head = p.read_bytes()[:4]
            assert not head.startswith(b"\x80") and head != b"PK\x03\x04", p  # no pickle, no torch.save zip
            if p.suffix == ".json":
                json.loads(p.read_text())
        record = json.loads((folder / MANIFEST).read_text())
        assert record["step"] == step and record["fingerprint"]["lr"] == _config(Path("x"), Path("y")).lr
        assert set(record["files"]) == set(names) - {MANIFEST}
    assert (run3 / "checkpoints" / "latest").read_text() == "step-00000003"
    assert not list((run3 / "checkpoints").glob(".partial-*"))


def test_crafted_pickles_are_never_unpickled(run_copy, pairs_dir, tmp_path, capfd):
    sentinel = tmp_path / "sentinel"
    ckpts = run_copy / "checkpoints"
    # 1. an old-format (torch.save) checkpoint, named latest, with code in every file
    legacy = ckpts / "step-00000009"
    legacy.mkdir()
    for name in ("model.pt", "optimizer.pt", "scheduler.pt", "rng-rank0.pt"):
        _armed(legacy / name, sentinel)
    (legacy / "state.json").write_text(json.dumps({"step": 9}))
    (ckpts / "latest").write_text("step-00000009")
    # 2. a crafted rng-rank0.pt dropped into the newest real checkpoint
    _armed(_ckpt(run_copy, 3) / "rng-rank0.pt", sentinel)
    # 3. a pickle posing as safetensors, with its record rewritten to match (S3 is writable by every pod)
    fake = _ckpt(run_copy, 2) / "rng-rank0.safetensors"
    _armed(fake, sentinel)
    record = json.loads((_ckpt(run_copy, 2) / MANIFEST).read_text())
    record["files"]["rng-rank0.safetensors"] = {"bytes": fake.stat().st_size}
    (_ckpt(run_copy, 2) / MANIFEST).write_text(json.dumps(record))

    result = run(_config(pairs_dir, run_copy, max_steps=3), progress=False)
    err = capfd.readouterr().err
    assert not sentinel.exists()
    assert [h["step"] for h in result.history] == [2, 3]  # resumed from step 1, the only whole one
    assert "pickle files (model.pt, optimizer.pt, rng-rank0.pt) from an older format, never loaded" in err
    assert "rng-rank0.pt not in its checkpoint.json" in err
    assert "rng-rank0.safetensors: not a safetensors file" in err
    assert "resumed from" in err and "step-00000001, the newest complete checkpoint ('latest' named step-00000009)" in err


def test_deepspeed_checkpoints_load_weights_only(tmp_path):
    """DeepSpeed's own loader, hardened: a real ZeRO-1 checkpoint (with DeepSpeed's allowlisted
    data classes) loads; a crafted file in its place is refused, and its code never runs."""
    sentinel = tmp_path / "sentinel"
    bad = tmp_path / "crafted.pt"
    _armed(bad, sentinel)
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    engine = types.SimpleNamespace(checkpoint_engine=TorchCheckpointEngine(None), load_universal_checkpoint=lambda: False)
    harden_deepspeed(engine)
    with pytest.raises(pickle.UnpicklingError):
        engine.checkpoint_engine.load(str(bad), map_location="cpu")
    with pytest.raises(pickle.UnpicklingError):
        weights_only_load(bad)
    assert not sentinel.exists()

    script = textwrap.dedent(f"""
        import os, sys, shutil, torch
        os.environ.update(DS_ACCELERATOR="cpu", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(20000 + os.getpid() % 20000),
                          RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
        import deepspeed
        from rewardops.training.checkpoint import harden_deepspeed
        deepspeed.init_distributed(dist_backend="gloo")
        def make():
            torch.manual_seed(0)
            m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
            opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
            cfg = {{"train_micro_batch_size_per_gpu": 1, "train_batch_size": 1, "zero_optimization": {{"stage": 1}},
                   "zero_allow_untested_optimizer": True}}
            return deepspeed.initialize(model=m, optimizer=opt, config=cfg)[0]
        e = make()
        e.backward(e(torch.randn(3, 4)).sum()); e.step()
        e.save_checkpoint({str(tmp_path / 'ds')!r}, tag="ds")
        e2 = make(); harden_deepspeed(e2)
        path, _ = e2.load_checkpoint({str(tmp_path / 'ds')!r}, tag="ds")
        assert path is not None
        for a, b in zip(e.module.parameters(), e2.module.parameters()):
            assert torch.equal(a, b)
        print("LOADED-OK", flush=True)
        optim = [p for p in os.listdir({str(tmp_path / 'ds' / 'ds')!r}) if "optim_states" in p][0]
        shutil.copyfile({str(bad)!r}, os.path.join({str(tmp_path / 'ds' / 'ds')!r}, optim))
        e3 = make(); harden_deepspeed(e3)
        try:
            e3.load_checkpoint({str(tmp_path / 'ds')!r}, tag="ds")
        except Exception as exc:
            print("REFUSED", type(exc).__name__, flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "LOADED-OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "REFUSED UnpicklingError" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert not sentinel.exists()


def test_resume_refuses_another_runs_checkpoint_unless_forced(run_copy, pairs_dir, eval_dir):
    from rewardops.cli import app

    runner = CliRunner()
    args = ["train", "--size", SIZE, "--data", str(pairs_dir), "--out", str(run_copy), "--no-progress",
            "--max-steps", "4", *[a for k, v in BASE.items() for a in ("--set", f"{k}={v}")]]
    res = runner.invoke(app, [*args, "--set", "lr=0.5"])
    assert res.exit_code == 2, res.output
    assert "belongs to another run" in res.output and "lr: checkpoint" in res.output and "this run 0.5" in res.output
    assert "--set resume=force" in res.output and "Traceback" not in res.output
    assert (run_copy / "checkpoints" / "latest").read_text() == "step-00000003"  # nothing touched

    with pytest.raises(CheckpointError, match=r"(?s)differs in:.*data: checkpoint"):
        run(_config(eval_dir, run_copy, max_steps=4), progress=False)

    forced = run(_config(pairs_dir, run_copy, max_steps=4, lr=0.5, resume="force"), progress=False)
    assert [h["step"] for h in forced.history] == [4]
    assert forced.history[0]["train/lr"] == pytest.approx(0.5)


def test_corrupt_or_missing_latest_falls_back_to_the_newest_valid(run3, run_copy, pairs_dir, capfd):
    ckpts = run_copy / "checkpoints"
    model = _ckpt(run_copy, 3) / "model.safetensors"
    with open(model, "r+b") as f:
        f.truncate(model.stat().st_size // 2)
    (ckpts / "latest").write_text("step-00000007")  # names a step that does not exist
    result = run(_config(pairs_dir, run_copy, max_steps=3), progress=False)
    err = capfd.readouterr().err
    assert "'latest' names step-00000007, which is not in" in err
    assert "model.safetensors has" in err and "(truncated or changed)" in err
    assert "step-00000002, the newest complete checkpoint" in err
    assert [h["step"] for h in result.history] == [3]
    # redone from step 2, step 3 equals the uninterrupted run's step 3 exactly
    redone, original = load_file(model), load_file(_ckpt(run3, 3) / "model.safetensors")
    assert redone.keys() == original.keys() and all(torch.equal(redone[k], original[k]) for k in original)
    assert (ckpts / "latest").read_text() == "step-00000003"

    for step in (1, 2, 3):  # nothing usable left, but the store says there was progress: stop, don't restart
        (_ckpt(run_copy, step) / "state.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"(?s)none is usable.*resume=false to start over"):
        run(_config(pairs_dir, run_copy, max_steps=3), progress=False)


@pytest.mark.parametrize("kind", ["empty", "all-filtered"])
def test_empty_or_all_filtered_data_fails_before_step_1(kind, tmp_path, eval_dir):
    from rewardops.cli import app

    data = tmp_path / "data"
    if kind == "empty":
        write_pairs([], data)
    else:  # every pair has identical responses: drop_identical filters them all
        pairs = list(read_pairs(eval_dir))[:8]
        for p in pairs:
            p.rejected = p.chosen
        write_pairs(pairs, data)
    out = tmp_path / "run"
    db = tmp_path / "mlflow.db"
    res = CliRunner().invoke(app, ["train", "--size", SIZE, "--data", str(data), "--out", str(out), "--no-progress",
                                   "--set", f"tracking_uri=sqlite:///{db}", "--set", "num_threads=1"])
    assert res.exit_code == 2, res.output
    expected = "the dataset has no pairs" if kind == "empty" else "all 8 pairs are filtered out before training (dropped_identical 8)"
    assert expected in res.output and "nothing is registered" in res.output and "Traceback" not in res.output
    assert not db.exists()  # the tracking store was never opened: no run, no registered model
    assert not (out / "checkpoints").exists() and not (out / "metrics.jsonl").exists() and not (out / "model").exists()
