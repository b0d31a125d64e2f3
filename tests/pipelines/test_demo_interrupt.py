"""The demo pipeline interrupted mid-run, then rerun to success (`rewardops run demo --local`).

A small demo (240 pairs, simulated judges, two demo sizes, 2 training steps) in a fresh workdir:
1. Ctrl-C (SIGINT to the process group, as a terminal sends it) as soon as the training steps
   print their first line: the command exits 130 with a message and no traceback, and its MLflow
   suite is KILLED, not FINISHED.
2. SIGKILL of the whole process group when the evaluation starts (no handler runs): the suite
   stays RUNNING until
3. the rerun of the same command, which marks it KILLED, reuses the finished steps from the
   cache, and ends with a FINISHED suite holding every size; `rewardops compare` picks that suite.
The interrupts are sent on the pipeline's own progress lines, never on a clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
from test_readme import SMALL_DEMO, plain_env  # tests/ is on the path (pytest pythonpath)

pytestmark = pytest.mark.slow  # three small demo runs: a few minutes on 2 cores
SIZES = ("demo-tiny-qwen3", "demo-tiny-llama")


def _command(workdir: Path) -> list[str]:
    return [str(REPO / ".venv" / "bin" / "rewardops"), "run", "demo", "--local", "--workdir", str(workdir), *SMALL_DEMO]


def run_until(workdir: Path, marker: str, sig: int) -> tuple[int, str]:
    """Start the demo, send `sig` to its process group on the first output line containing `marker`."""
    proc = subprocess.Popen(_command(workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=plain_env(), start_new_session=True)
    seen = []
    sent = False
    for line in proc.stdout:
        seen.append(line)
        if not sent and marker in line:
            os.killpg(proc.pid, sig)
            sent = True
    rc = proc.wait(timeout=300)
    try:  # nothing of the run may outlive it (a SIGKILL reaches every process of the group)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    assert sent, f"never saw {marker!r}:\n{''.join(seen)[-4000:]}"
    return rc, "".join(seen)


def suites(workdir: Path) -> list[tuple[str, str]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("rewardops-training")
    runs = client.search_runs([exp.experiment_id], "tags.`rewardops.suite.parent` = 'true'",
                              order_by=["attributes.start_time ASC"])
    return [(r.data.tags["rewardops.suite"], r.info.status) for r in runs]


def test_an_interrupted_demo_reruns_to_success_and_mlflow_keeps_the_complete_suite(tmp_path):
    workdir = tmp_path / "demo-out"
    rc, out = run_until(workdir, "[train-demo-tiny", signal.SIGINT)
    assert rc == 130, out[-4000:]
    assert "interrupted: the suite is marked KILLED in MLflow" in out and "Traceback" not in out, out[-4000:]
    assert [status for _, status in suites(workdir)] == ["KILLED"]

    rc, out = run_until(workdir, "[evaluate]", signal.SIGKILL)
    assert rc == -signal.SIGKILL, out[-4000:]
    assert [status for _, status in suites(workdir)] == ["KILLED", "RUNNING"]  # no handler ran

    done = subprocess.run(_command(workdir), capture_output=True, text=True, env=plain_env(), timeout=1800)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-6000:]
    assert "reused from cache: " in out and "generate" in out.split("reused from cache: ")[1].splitlines()[0]
    found = suites(workdir)
    assert [status for _, status in found] == ["KILLED", "KILLED", "FINISHED"]

    from mlflow.tracking import MlflowClient

    from rewardops.tracking.compare import latest_suite, load_suite

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    newest = latest_suite(client)
    assert newest == found[-1][0]
    table = load_suite(client, newest)
    from rewardops.evaluation.report import ABLATION_ARMS, arm_name

    arms = [arm_name(arm) for arm in ABLATION_ARMS]  # the demo's data ablation: one row per arm
    assert [r for r in table.rows if r in SIZES] == sorted(SIZES), table.rows  # every size, trained now or reused
    assert sorted(r for r in table.rows if r not in SIZES) == sorted(arms), table.rows
    assert all(table.value(size, "score") is not None for size in SIZES)
    parent = client.get_run(table.parent_run_id)
    # the parent carries the suite's summary and its dataset
    assert {f"eval/score/{size}" for size in SIZES} <= set(parent.data.metrics)
    assert parent.data.metrics["curation/curated"] > 0
    assert parent.data.tags["rewardops.data.get"].startswith("dvc get ")
    assert [d.dataset.digest for d in parent.inputs.dataset_inputs] == [parent.data.tags["rewardops.data.md5"]]
