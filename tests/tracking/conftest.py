"""Real servers on loopback for the tracking tests.

* S3: no MinIO binary can be installed here, so moto's server mode (`ThreadedMotoServer`, a real
  HTTP S3 API in a thread of this process) listens on 127.0.0.1 and stands in for MinIO/S3.
* MLflow: a real `mlflow server` subprocess with a SQLite database backend and the moto bucket
  as its artifact store (`--artifacts-destination s3://...`, proxied artifacts).

Starting `mlflow server` takes ~10-30 s on this machine, so one server (and one moto) is shared
by the whole tests/tracking session; the fault test kills and restarts it in place. Every
process started here is stopped by its own pid/process group at teardown.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "rewardops-test",
    "AWS_SECRET_ACCESS_KEY": "rewardops-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MotoS3:
    endpoint: str
    server: object

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **_boto_kwargs())

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _boto_kwargs() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


@dataclass
class MlflowServer:
    """A real `mlflow server` on loopback; `kill()` + `start()` simulate an outage."""

    workdir: Path
    port: int
    s3: MotoS3
    bucket: str
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "mlflow-server.log"

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, **AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint}

    def start(self, timeout: float = 120.0) -> None:
        cmd = [
            str(VENV_BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
            "--artifacts-destination", f"s3://{self.bucket}/mlflow",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        with self.log.open("a") as fh:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=self.env(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        from support.servers import wait_http_ready

        try:
            wait_http_ready(f"{self.uri}/health", self.proc, self.log, "mlflow server", timeout)
        except TimeoutError:
            self.kill()
            raise

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server and its uvicorn worker (own process group), as a crash would."""
        if self.proc is None:
            return
        from support.servers import stop_process_group

        stop_process_group(self.proc, sig, grace=10)
        self.proc = None
        from support.servers import wait_port_closed

        wait_port_closed(self.port)


@pytest.fixture(scope="session")
def aws_env() -> dict[str, str]:
    """The (fake) credentials the moto S3 endpoint is used with."""
    return dict(AWS_ENV)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    """moto's S3 server mode on 127.0.0.1 (stand-in for MinIO, which cannot be installed here)."""
    from moto.server import ThreadedMotoServer

    for key, value in AWS_ENV.items():
        os.environ.setdefault(key, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoS3(endpoint=f"http://{host}:{port}", server=server)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(moto_s3: MotoS3, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    workdir = tmp_path_factory.mktemp("mlflow-server")
    bucket = moto_s3.create_bucket("rewardops-mlflow")
    server = MlflowServer(workdir=workdir, port=free_port(), s3=moto_s3, bucket=bucket)
    server.start()
    try:
        yield server
    finally:
        server.kill()  # SIGKILL: uvicorn's graceful shutdown takes >10 s here, and the DB is a temp file


@pytest.fixture
def server_env(mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> MlflowServer:
    """Point this test's MLflow client (and its S3 artifact access) at the shared server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.uri)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", mlflow_server.s3.endpoint)
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    return mlflow_server


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~100 kB Bradley-Terry checkpoint (2-layer Qwen3, 1 label) with a real word-level tokenizer.

    Built here rather than with `resolve_backbone("tiny-qwen3")`, whose SmolLM2 vocabulary makes
    a 13 MB model and needs the one-off SmolLM2 conversion.
    """
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast

    from rewardops.backbones import tiny_config

    out = tmp_path_factory.mktemp("tiny-rm")
    words = "<pad> <unk> hello world the answer is yes no good bad user assistant".split()
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>")
    # a chat template, so serving and evaluation both go through apply_chat_template
    tokenizer.chat_template = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
    config = tiny_config("qwen3", vocab_size=len(words), hidden_size=32, intermediate_size=32)
    config.pad_token_id = 0
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
