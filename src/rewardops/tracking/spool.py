"""The on-disk spool: what MLflow's own async logging lacks.

MLflow queues `log_batch(..., synchronous=False)` calls and retries each HTTP request
(`MLFLOW_HTTP_REQUEST_MAX_RETRIES`, `..._BACKOFF_FACTOR`, `..._TIMEOUT`); when a request fails
for good, or a run is closed while requests are still pending, the data would only be in a log
line. The tracker writes it here instead: one JSONL file per run under
`REWARDOPS_TRACKING_SPOOL` (default `./mlruns-unsent/`), one line per operation (`batch` with
metrics/params/tags, `artifact` with the file kept next to it, `terminate`, `input`).
`replay(path, client)` sends a spool file once the server is back.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

__all__ = ["replay", "spool_dir", "write"]

_LOCK = threading.Lock()


def spool_dir() -> Path:
    return Path(os.environ.get("REWARDOPS_TRACKING_SPOOL", "mlruns-unsent"))


def write(run_id: str, ops: list[dict[str, Any]]) -> Path:
    """Append `ops` to `<spool>/<run_id>.jsonl`; artifact files are copied beside it."""
    folder = spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run_id}.jsonl"
    with _LOCK, path.open("a", encoding="utf-8") as fh:
        for op in ops:
            if op.get("kind") == "artifact" and Path(op["path"]).exists():
                keep = folder / f"{run_id}-artifacts" / Path(op["path"]).name
                keep.parent.mkdir(parents=True, exist_ok=True)
                if Path(op["path"]).is_dir():
                    shutil.copytree(op["path"], keep, dirs_exist_ok=True)
                else:
                    shutil.copy2(op["path"], keep)
                op = {**op, "path": str(keep.resolve())}
            fh.write(json.dumps(op, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def replay(path: str | os.PathLike[str], client: Any) -> int:
    """Send a spool file's operations to `client`'s server, in order; returns how many were sent."""
    from mlflow.entities import Metric, Param, RunTag

    run_id = Path(path).stem
    sent = 0
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        op = json.loads(line)
        if op["kind"] == "batch":
            client.log_batch(
                run_id,
                metrics=[Metric(m["key"], m["value"], m["timestamp"], m["step"]) for m in op.get("metrics", [])],
                params=[Param(k, v) for k, v in op.get("params", {}).items()],
                tags=[RunTag(k, v) for k, v in op.get("tags", {}).items()],
            )
        elif op["kind"] == "artifact":
            if Path(op["path"]).is_dir():
                client.log_artifacts(run_id, op["path"], op.get("artifact_path"))
            else:
                client.log_artifact(run_id, op["path"], op.get("artifact_path"))
        elif op["kind"] == "terminate":
            client.set_terminated(run_id, op.get("status", "FINISHED"))
        sent += 1
    return sent
