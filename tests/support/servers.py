"""Waiting for a server process the tests started (MLflow, `mlflow models serve`, ...) to answer."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_http_ready(url: str, proc: subprocess.Popen | None, log: Path, what: str, timeout: float = 180.0,
                    interval: float = 0.25) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s:\n{log.read_text()[-3000:]}")
