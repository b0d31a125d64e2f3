"""The world's code verifier runs response code in a sandbox: no network, no credentials in its
environment, CPU/memory limits, a temporary working folder, no processes. Each test plants code
that an attacker would put in a data row and checks it cannot act."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from rewardops.data.world.code_tasks import run_tests

PASSES = "assert True"


def test_ordinary_code_still_passes_and_fails() -> None:
    assert run_tests("def f(x):\n    return x + 1", "assert f(1) == 2")
    assert not run_tests("def f(x):\n    return x", "assert f(1) == 2")
    assert run_tests("import re, json, math, collections, itertools\ndef f(s):\n    return re.sub('a', 'b', s)",
                     "assert f('aa') == 'bb'")


def test_no_network() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    got: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            got.append(conn.recv(100) or b"<connected>")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        leak = (f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                "s.sendall(b'stolen')\n")
        assert not run_tests(leak, PASSES)
        via_import = f"import urllib.request\nurllib.request.urlopen('http://127.0.0.1:{port}/x', timeout=2)\n"
        assert not run_tests(via_import, PASSES)
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(5)
        server.close()
    assert got == []


def test_no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "planted-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "planted-secret")
    assert run_tests("import os", "assert not any('planted-secret' in v for v in os.environ.values())")


def test_memory_and_cpu_are_limited() -> None:
    assert not run_tests("x = bytearray(1 << 30)", "assert len(x) == 1 << 30")  # 1 GiB > the 512 MiB cap
    t0 = time.perf_counter()
    assert not run_tests("while True:\n    pass", PASSES, timeout=60, cpu_seconds=1)  # RLIMIT_CPU, not the wall clock
    assert time.perf_counter() - t0 < 30


def test_temporary_folder_and_no_processes(tmp_path: Path) -> None:
    outside = tmp_path / "written-by-data"
    assert run_tests("open('scratch.txt', 'w').write('ok')", "assert open('scratch.txt').read() == 'ok'")
    assert not run_tests(f"open({str(outside)!r}, 'w').write('x')", PASSES)
    assert not run_tests(f"import os\nos.system('touch {outside}')", PASSES)
    assert not run_tests(f"import subprocess\nsubprocess.run(['touch', {str(outside)!r}])", PASSES)
    assert not run_tests("import ctypes\nctypes.CDLL(None)", PASSES)
    assert not run_tests("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))", PASSES)
    assert not outside.exists()
    assert run_tests("import os, tempfile\nhere = os.getcwd()",
                     "assert os.path.basename(here).startswith('rewardops-verify-')")
