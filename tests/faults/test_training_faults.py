"""Fault injection for `rewardops train`: SIGKILL at random points, then resume.

Each case runs the real CLI in a subprocess (tiny random-init demo model, CPU, 1 thread) and kills
it with SIGKILL at a point drawn from its seed: inside a checkpoint save (the failpoints of
rewardops.training.checkpoint: after this rank's files, after the completion record, after the
`latest` marker) at a random step, or at a random moment after the first step. Afterwards:
- `latest`, if any, names a complete checkpoint, and no unfinished save is taken for one;
- resuming (in this process) finishes the run with exactly the weights and losses of an
  uninterrupted run, and metrics.jsonl logs every step once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rewardops.training.checkpoint import FAILPOINT_ENV, LocalStore, checkpoint_problems
from rewardops.training.config import load_config
from rewardops.training import run

STEPS = 4
SETTINGS = {"global_batch": 16, "micro_batch_tokens": 2048, "epochs": 2, "checkpoint_every": 1, "keep_checkpoints": 2,
            "mlflow": False, "export": False, "num_threads": 1, "seed": 11, "max_steps": STEPS}
CLI = Path(sys.executable).parent / "rewardops"
CASES = [("save:written", 101), ("save:finalized", 202), ("save:latest", 303), ("time", 404)]


pytestmark = pytest.mark.slow  # training subprocesses killed and resumed


def _config(data: Path, out: Path):
    return load_config("demo-tiny-qwen3", {**SETTINGS, "data": str(data), "out": str(out)})


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["train/loss"] for r in rows}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, pairs_dir):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("faults-ref") / "run"
    result = run(_config(pairs_dir, out), progress=False)
    assert result.steps == STEPS
    return out


@pytest.mark.parametrize("point,seed", CASES, ids=[f"{p}-seed{s}" for p, s in CASES])
def test_sigkill_anywhere_then_resume_equals_uninterrupted(point, seed, reference, pairs_dir, tmp_path):
    rng = random.Random(seed)
    step = rng.randint(1, STEPS - 1)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if point != "time":
        env[FAILPOINT_ENV] = f"{point}@{step}"
    cmd = [str(CLI), "train", "--size", "demo-tiny-qwen3", "--data", str(pairs_dir), "--out", str(out), "--no-progress",
           *[a for k, v in SETTINGS.items() for a in ("--set", f"{k}={v}")]]
    log = open(tmp_path / "train.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if point == "time":  # a random moment after step `step` was logged: mid-step, mid-save or between
        # Triggered by progress, not by the clock alone: a tiny model's remaining steps can take
        # less time than any fixed delay, and a kill after the run ended tests nothing.
        metrics, deadline = out / "metrics.jsonl", time.time() + 240
        while proc.poll() is None and time.time() < deadline and (
                not metrics.exists() or len(metrics.read_text().splitlines()) < step):
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.02))
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=240)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "train.log").read_text()[-3000:]

    store = LocalStore(out / "checkpoints")
    latest = store.latest()
    if latest is not None:  # the marker never runs ahead of a complete checkpoint
        assert latest in store.tags() and checkpoint_problems(store.fetch(latest), store.read_record(latest)) == []
    tag = f"step-{step:08d}"
    if point == "save:written":
        assert tag not in store.tags() and (out / "checkpoints" / f".partial-{tag}").is_dir()
        assert latest == (f"step-{step - 1:08d}" if step > 1 else None)
    elif point == "save:finalized":
        assert tag in store.tags() and latest == (f"step-{step - 1:08d}" if step > 1 else None)
    elif point == "save:latest":
        assert latest == tag

    result = run(_config(pairs_dir, out), progress=False)
    assert result.steps == STEPS
    ref_losses = _losses(reference)
    assert result.history, "the killed run had already finished: nothing was tested"
    for h in result.history:
        assert h["train/loss"] == pytest.approx(ref_losses[h["step"]], rel=1e-6, abs=1e-7)
    final = f"step-{STEPS:08d}"
    got, want = load_file(out / "checkpoints" / final / "model.safetensors"), load_file(reference / "checkpoints" / final / "model.safetensors")
    assert got.keys() == want.keys()
    worst = max(float((got[k] - want[k]).abs().max()) for k in want)
    assert worst <= 1e-6, worst
    assert not list((out / "checkpoints").glob(".partial-*"))
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # the killed run's steps past its checkpoint are not logged twice
    assert _losses(out) == pytest.approx(ref_losses, rel=1e-6, abs=1e-7)
