"""Fault: the MLflow tracking server goes away mid-run.

A real `mlflow server` (conftest: SQLite backend, moto S3 as artifact store) is SIGKILLed while
two "training loops" log; logging must neither raise nor block, a warning must say what is
happening, and after the server restarts every buffered point must arrive. A run closed while
the server is still down spools its unsent data to a JSONL file named in a warning.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import pytest

from rewardops.tracking.mlflow_tracker import MlflowTracker, TrackingWarning, start_tracker


pytestmark = pytest.mark.slow  # a real MLflow server, stopped and restarted


def test_server_outage_buffers_retries_and_spools(server_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REWARDOPS_TRACKING_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("REWARDOPS_TRACKING_RETRY_MAX", "1")
    server = server_env

    survivor = start_tracker("outage", "survivor", flush_timeout=120)
    quitter = start_tracker("outage", "quitter", flush_timeout=2)
    assert isinstance(survivor, MlflowTracker) and isinstance(quitter, MlflowTracker)
    survivor.log_params({"lr": 1e-5})
    for step in range(5):
        survivor.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    assert survivor.flush(60)

    server.kill()  # SIGKILL to the whole server process group: a crash, not a clean shutdown
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        slowest = 0.0
        for step in range(5, 40):
            started = time.perf_counter()
            survivor.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
            quitter.log_metrics({"train/loss": float(step)}, step=step)
            slowest = max(slowest, time.perf_counter() - started)
        survivor.set_tags({"phase": "during-outage"})
        assert not survivor.flush(3), "nothing can be sent while the server is down"
        assert not survivor.server_reachable
        assert survivor.backlog > 0
        quitter.close()  # gives up after flush_timeout=2 s and spools
    assert slowest < 0.5, f"logging blocked the training loop for {slowest:.2f}s"
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackingWarning)]
    assert any("unreachable" in m and "buffering" in m for m in messages), messages
    spool = tmp_path / "spool" / f"{quitter.run_id}.jsonl"
    assert any(str(spool) in m for m in messages), messages
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    spooled_steps = sorted(m["step"] for op in spooled if op["kind"] == "batch" for m in op["metrics"])
    assert spooled_steps == list(range(5, 40))
    assert any(op["kind"] == "terminate" for op in spooled)

    server.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert survivor.flush(90), "buffered data was not sent after the server came back"
    assert any("reachable again" in str(w.message) for w in caught)
    survivor.log_metrics({"train/loss": 0.01}, step=40)
    survivor.close()

    client = MlflowClient(server.uri)
    run = client.get_run(survivor.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["phase"] == "during-outage"
    steps = sorted(m.step for m in client.get_metric_history(survivor.run_id, "train/loss"))
    assert steps == list(range(41))
