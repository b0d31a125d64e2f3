"""Processes that start at the same instant on a fresh MLflow store (the parallel per-size steps
of a pipeline run): experiment, experiment tag, suite parent run and registered model are
created once, and no process fails. SQLite (a file) and PostgreSQL (a real server from
tests/support_postgres.py), each with real processes released together by a start file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real processes importing MLflow: ~1 min per case on 2 cores

REPO = Path(__file__).resolve().parents[2]

WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mlflow.tracking import MlflowClient
    from rewardops.tracking.mlflow_tracker import start_tracker
    from rewardops.tracking.rewardmodel import get_or_create_registered_model
    uri, go, ready, size = sys.argv[1:5]
    Path(ready).write_text("ready")          # everything imported: wait for the common start
    while not Path(go).exists():
        time.sleep(0.001)
    with start_tracker("rewardops-training", size, tracking_uri=uri, lineage=False,
                       tags={"rewardops.size": size}) as tracker:
        tracker.log_metrics({"eval/score": 50.0})
        get_or_create_registered_model(MlflowClient(uri, registry_uri=uri), "rewardops-rm-race")
    print("OK", tracker.run_id, flush=True)
""")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "REWARDOPS_PARENT_RUN_ID")}
    env.update(REWARDOPS_SUITE="race-suite", REWARDOPS_MLFLOW_ARTIFACTS=str(tmp_path / "artifacts"),
               MLFLOW_ENABLE_ASYNC_LOGGING="false")
    return env


def start_together(uri: str, tmp_path: Path, sizes: list[str]) -> list[subprocess.CompletedProcess]:
    """One process per size, released at the same instant once all have imported MLflow."""
    go = tmp_path / "go"
    procs, ready = [], []
    for size in sizes:
        flag = tmp_path / f"ready-{size}"
        ready.append(flag)
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, uri, str(go), str(flag), size],
                                      env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 240
    while not all(f.exists() for f in ready):
        assert time.monotonic() < deadline, "workers did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.05)
    go.write_text("go")
    results = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def check_one_of_each(uri: str, results: list[subprocess.CompletedProcess], sizes: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    for r in results:
        assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]
    client = MlflowClient(uri, registry_uri=uri)
    experiments = [e for e in client.search_experiments() if e.name == "rewardops-training"]
    assert len(experiments) == 1
    # model-training mode in MLflow's UI: the runs table, not the GenAI traces page
    assert experiments[0].tags.get("mlflow.experimentKind") == "custom_model_development"
    exp_id = experiments[0].experiment_id
    parents = client.search_runs([exp_id], "tags.`rewardops.suite.parent` = 'true'")
    assert [p.data.tags["rewardops.suite"] for p in parents] == ["race-suite"], "one parent run for the suite"
    children = client.search_runs([exp_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    assert sorted(c.data.tags["rewardops.size"] for c in children) == sorted(sizes)
    assert {c.info.status for c in children} == {"FINISHED"}
    assert [m.name for m in client.search_registered_models()] == ["rewardops-rm-race"]


SIZES = ["size-a", "size-b", "size-c", "size-d"]


@pytest.mark.parametrize("untagged_experiment", [False, True], ids=["fresh", "experiment-without-kind-tag"])
def test_processes_starting_at_once_on_a_fresh_sqlite_store_all_succeed(tmp_path, untagged_experiment):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    client.search_experiments()  # the schema, as `rewardops run` prepares it
    if untagged_experiment:  # as older releases created it: every process then adds the kind tag at once
        client.create_experiment("rewardops-training", artifact_location=(tmp_path / "artifacts").as_uri())
    results = start_together(uri, tmp_path, SIZES)
    check_one_of_each(uri, results, SIZES)



def test_processes_starting_at_once_on_a_fresh_postgres_store_all_succeed(tmp_path):
    from support_postgres import local_postgres

    server = local_postgres()
    try:
        uri = server.create_database("mlflow_race", "mlflow_race", "race-pw-not-a-secret")
        from mlflow.tracking import MlflowClient

        MlflowClient(uri).search_experiments()  # schema migrations once, as the chart's server does
        results = start_together(uri, tmp_path, SIZES)
        check_one_of_each(uri, results, SIZES)
    finally:
        server.cleanup()


def test_two_tracked_trainings_started_at_once_on_a_fresh_store(tmp_path):
    """Two real `rewardops train` runs (two sizes, MLflow on, the same fresh SQLite file, one
    suite) started at the same moment: both train, log and register their model."""
    from mlflow.tracking import MlflowClient

    from rewardops.data.shards import write_pairs
    from rewardops.data.world.generator import generate_world

    write_pairs(list(generate_world(32, noise=0.0, seed=3)), tmp_path / "pairs")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in _env(tmp_path).items() if k != "MLFLOW_ENABLE_ASYNC_LOGGING"}
    procs = {}
    for size in ("demo-tiny-qwen3", "demo-tiny-llama"):
        procs[size] = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "rewardops"), "train", "--size", size, "--data", str(tmp_path / "pairs"),
             "--out", str(tmp_path / size), "--max-steps", "2", "--no-progress", "--set", f"tracking_uri={uri}",
             "--set", "num_threads=1", "--set", "global_batch=8", "--set", "max_length=256"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for size, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{size}:\n{out[-4000:]}"
    client = MlflowClient(uri, registry_uri=uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "rewardops-training"]
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    (parent,) = client.search_runs([exp.experiment_id], "tags.`rewardops.suite.parent` = 'true'")
    runs = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.tags["rewardops.size"] for r in runs) == ["demo-tiny-llama", "demo-tiny-qwen3"]
    for run in runs:
        assert run.info.status == "FINISHED"
        import json

        last = json.loads((tmp_path / run.data.tags["rewardops.size"] / "metrics.jsonl").read_text().splitlines()[-1])
        # metrics.jsonl keeps fractions; MLflow shows every accuracy in percent
        assert run.data.metrics["train/accuracy"] == pytest.approx(100 * last["train/accuracy"])
        assert run.data.metrics["train/lr"] == pytest.approx(last["train/lr"])
        assert run.data.metrics["train/lr_schedule_pct"] == pytest.approx(100 * last["train/lr"] / 1e-3)  # demo lr 1e-3
        assert "train_data/used" in run.data.metrics and "data/used" not in run.data.metrics  # eval/ charts come first
    assert sorted(m.name for m in client.search_registered_models()) == [
        "rewardops-rm-demo-tiny-llama", "rewardops-rm-demo-tiny-qwen3"]
