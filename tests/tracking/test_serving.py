"""The registered reward model served by MLflow: `mlflow models serve --env-manager local` on
loopback scores conversations over REST with the same numbers as `rewardops eval` (fp32).

Real parts: the shared `mlflow server` (conftest), the real `rewardops eval` CLI on the registered
`models:/` URI, and a real `mlflow models serve` process. The model is a tiny random-init Qwen3
with a chat template (conftest `tiny_checkpoint`), so loading and scoring take seconds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from rewardops.tracking.mlflow_tracker import start_tracker

VENV_BIN = Path(sys.executable).parent


pytestmark = pytest.mark.slow  # a real MLflow model server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(model_uri: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [str(VENV_BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
           "-h", "127.0.0.1", "-p", str(port), "--workers", "1"]
    with log.open("w") as fh:
        return subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(proc: subprocess.Popen, port: int, log: Path, timeout: float = 240.0) -> None:
    from support.servers import wait_http_ready

    wait_http_ready(f"http://127.0.0.1:{port}/ping", proc, log, "mlflow models serve", timeout, interval=0.5)


def test_served_rewards_equal_rewardops_eval(server_env, tiny_checkpoint: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from rewardops.cli import app
    from rewardops.evaluation.benchmarks import load_world

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REWARDOPS_CACHE", str(tmp_path / "cache"))
    name = "rewardops-rm-serve-tiny"
    with start_tracker("serving", "serve-tiny", tags={"rewardops.size": "serve-tiny"}, lineage=False) as tracker:
        version = tracker.register_model(tiny_checkpoint, name)
    assert version == 1
    uri = f"models:/{name}@candidate"

    # 1) rewardops eval on the registered model: per-item rewards in world/scores.jsonl
    done = CliRunner().invoke(app, ["eval", "--model", uri, "--out", str(tmp_path / "eval"), "--benchmarks", "world",
                                    "--world-n", "6", "--no-cache", "--no-mlflow", "--dtype", "float32"])
    assert done.exit_code == 0, done.output
    expected = {row["id"]: row["scores"] for row in map(json.loads, (tmp_path / "eval/world/scores.jsonl").read_text().splitlines())}
    items = load_world(None, n=6).items
    assert sorted(expected) == sorted(item.id for item in items)
    conversations, wanted = [], []
    for item in items:
        for index in range(len(item.responses)):
            conversations.append(item.messages(index))
            wanted.append(expected[item.id][index])
    assert len(set(round(w, 6) for w in wanted)) > 1, "the tiny model must not give every conversation one reward"

    # 2) the same conversations through `mlflow models serve` over REST
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**server_env.env(), "MLFLOW_TRACKING_URI": server_env.uri, "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}"}
    proc = _serve(uri, port, env, log)  # the venv first on PATH: MLflow execs its uvicorn
    try:
        _wait_ready(proc, port, log)
        url = f"http://127.0.0.1:{port}/invocations"
        answer = httpx.post(url, json={"dataframe_records": [{"messages": c} for c in conversations]}, timeout=60)
        assert answer.status_code == 200, answer.text
        served = [row["reward"] for row in answer.json()["predictions"]]
        assert served == pytest.approx(wanted, abs=1e-5)

        # prompt + response columns give the same reward as the two-turn conversation
        first = items[0]
        if len(first.prompt) == 1 and first.prompt[0]["role"] == "user":
            pair = httpx.post(url, json={"dataframe_records": [{"prompt": first.prompt[0]["content"], "response": first.responses[0]}]}, timeout=60)
            assert pair.status_code == 200, pair.text
            assert pair.json()["predictions"][0]["reward"] == pytest.approx(wanted[0], abs=1e-5)

        # a row that is not a conversation is refused with a message that says what is expected
        bad = httpx.post(url, json={"dataframe_records": [{"text": "hello"}]}, timeout=60)
        assert bad.status_code >= 400 and "messages" in bad.text, bad.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    # the export carries its model card; the version has it as its description
    assert "## Intended use and limits" in (tiny_checkpoint / "README.md").read_text()
