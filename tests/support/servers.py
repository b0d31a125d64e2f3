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


def stop_process_group(proc: subprocess.Popen, sig: int, grace: float = 15.0) -> None:
    """Send `sig` to a server's process group (started with start_new_session); SIGKILL it if it
    has not exited after `grace` seconds."""
    import os
    import signal

    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=grace)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:  # graceful shutdown hung: stop it hard
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def wait_port_closed(port: int, timeout: float = 15.0) -> None:
    """Wait until nothing listens on 127.0.0.1:`port` (a killed server's socket is gone)."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.1)
