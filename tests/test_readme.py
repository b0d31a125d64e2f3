"""README.md's shell blocks run as written, from a plain shell (no `.venv/bin` on PATH, nothing
activated), in a folder laid out like a checkout after `make demo`: `.venv` (a link to this
checkout's), `params.yaml`, and `demo-out/` from a small demo run (the same pipeline and
summary as `make demo`, on 240 pairs with simulated judges so that it takes minutes). The demo
run is the session fixture `checkout` in conftest.py, shared with test_no_secrets_in_outputs.py.

A block is skipped only when the line before it says `<!-- readme-test: skip (why) -->`; the
test checks that only the blocks that need something a shell cannot give are skipped (the setup
commands themselves, a Label Studio server with people, a foreground server, a second full demo).
The demo's own output is checked too: at most 300 lines, and its closing summary.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a small demo plus every README block: several minutes on 2 cores

REPO = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"<!-- readme-test: skip \((.+)\) -->")
SMALL_SETTINGS = ('{"profile": "demo", "judges": ["simulated:0.2", "simulated:0.3"], "judge_samples": 1, '
                  '"judge_budget": 0, "embedder": "hashed", "gold_n": 24, "silver_n": 60, "pool_shards": 2, '
                  '"human_per_iteration": 4, "iterations": 1, "noise_gold_n": 16, "stage2_judges": true, '
                  '"band": 0.2, "recycle_confidence": 0.6, "keep_all_if_rms_untrusted": false}')
SMALL_DEMO = ["--iterations", "1", "-p", "world_n=240", "-p", f"settings={SMALL_SETTINGS}", "-p", "max_steps=2",
              "-p", "benchmarks=world", "-p", "eval_world_n=32", "-p",
              'overrides={"num_threads": 1, "global_batch": 8, "max_length": 256, "micro_batch_tokens": 1024}']


def readme_blocks(text: str) -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason or None) of every ```bash block."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            start = i
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            before = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
            found = SKIP.search(before)
            blocks.append((start + 1, "\n".join(lines[start + 1 : j]), found.group(1) if found else None))
            i = j
        i += 1
    return blocks


def plain_env() -> dict[str, str]:
    """A plain shell's environment: no virtualenv on PATH or activated, no MLflow URI set."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "MLFLOW_TRACKING_URI", "REWARDOPS_SUITE", "REWARDOPS_PARENT_RUN_ID",
                        "REWARDOPS_PIPELINE_RUN_ID")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if ".venv" not in p)
    return env  # PYTHONPATH stays when set (a worktree testing its own sources); CI has none


def test_the_demo_tells_its_story_in_its_last_lines(checkout):
    _, output = checkout
    lines = output.splitlines()
    assert len(lines) <= 300, f"{len(lines)} lines"
    assert "executor_input" not in output and "Looking for component" not in output  # kfp.local's dumps: --verbose
    tail = "\n".join(lines[-30:])
    for size in ("demo-tiny-qwen3", "demo-tiny-llama"):
        assert re.search(rf"{size}: score \d+\.\d \(world \d+\.\d\)", tail), tail
        assert re.search(rf"registry: rewardops-rm-{size} v\d+ (now champion|stays candidate|is the champion) \(", tail), tail
        assert re.search(rf"report \({size}\): demo-out/kfp/\S+/summary\.md", tail), tail
    assert re.search(r"stage 2 \(paper §3\.3\): kept \d+, discarded \d+, recycled \(label flipped\) \d+, no verdict \d+", tail)
    assert "true label noise (known on the generated world): pool " in tail
    assert "MLflow:  .venv/bin/rewardops ui --tracking-uri sqlite:///$PWD/demo-out/mlflow.db" in tail
    assert re.search(r"DVC:     git -C demo-out/data-registry log --oneline", tail)


def test_every_readme_shell_block_runs_as_written_from_a_plain_shell(checkout):
    home, _ = checkout
    blocks = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))
    skipped = {line: why for line, _, why in blocks if why}
    # only what needs more than a shell: the setup commands, Label Studio and people, a foreground
    # server (started below), a second full demo
    assert len(skipped) == 4, skipped
    ran = []
    for line, code, why in blocks:
        if why:
            continue
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", code], cwd=home, env=plain_env(),
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"README.md line {line}:\n{code}\n--- output:\n{(done.stdout + done.stderr)[-5000:]}"
        ran.append(done.stdout + done.stderr)
    joined = "\n".join(ran)
    assert '"predictions"' in joined and '"reward"' in joined  # the champion served a reward
    assert '"verified": true' in joined  # data get --model brought back the rows with the recorded md5
    assert (home / "runs" / "trained-on").is_dir() and (home / "runs" / "curated").is_dir()
    assert (home / "demo-out" / "compare" / "compare.png").is_file()
    assert (home / "runs" / "sets").is_dir() and (home / "runs" / "mine").is_dir()


def test_rewardops_ui_serves_mlflow_from_a_plain_shell(checkout):
    """The skipped `rewardops ui` block, started in the background: MLflow answers (uvicorn found
    without an activated venv) and lists the demo's experiment."""
    import json
    import socket
    import time
    import urllib.request

    home, _ = checkout
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([".venv/bin/rewardops", "ui", "--tracking-uri", f"sqlite:///{home}/demo-out/mlflow.db",
                             "--port", str(port)], cwd=home, env=plain_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=10"
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    found = json.load(response)
                break
            except OSError:
                assert time.monotonic() < deadline, "rewardops ui did not answer"
                time.sleep(2)
        kinds = {e["name"]: {t["key"]: t["value"] for t in e.get("tags", [])}.get("mlflow.experimentKind")
                 for e in found["experiments"]}
        assert kinds.get("rewardops-training") == "custom_model_development", kinds
        exp_id = next(e["experiment_id"] for e in found["experiments"] if e["name"] == "rewardops-training")
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    # the link it prints opens the experiment in model-training mode, on its runs
    link = f"http://127.0.0.1:{port}/#/experiments/{exp_id}/runs?workflowType=machine_learning"
    assert f"MLflow UI: {link}" in proc.stdout.read()


def test_data_get_model_works_after_demo_out_moves(checkout):
    """MLflow recorded the registry's absolute folder; after `mv demo-out elsewhere` the model's
    training rows still come back (the registry is found next to the moved MLflow store)."""
    home, _ = checkout
    moved = home / "moved" / "demo-out"
    moved.parent.mkdir(exist_ok=True)
    (home / "demo-out").rename(moved)
    try:
        done = subprocess.run(
            [".venv/bin/rewardops", "data", "get", "--model", "models:/rewardops-rm-demo-tiny-qwen3@champion",
             "--tracking-uri", f"sqlite:///{moved / 'mlflow.db'}", "-o", "runs/after-move"],
            cwd=home, env=plain_env(), capture_output=True, text=True, timeout=600)
    finally:
        moved.rename(home / "demo-out")
    said = (done.stdout + done.stderr).replace("\n", "")
    assert done.returncode == 0, said[-3000:]
    assert '"verified": true' in said and "has moved" in said
    assert (home / "runs" / "after-move").is_dir()
