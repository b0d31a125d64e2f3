"""Endpoints come from the cluster, never from parameters or settings: pipeline `overrides` that
name a host, a registry name or a checkpoint destination, and curation settings that name a
Label Studio or LLM server, are refused before any request, with a message naming the setting.

A real TCP listener on loopback plays the attacker's host: it must see no connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from rewardops.curation.settings import CurationSettings, SettingsError
from rewardops.pipelines import checks
from rewardops.training.config import ConfigError, load_config, refuse_cluster_settings


@pytest.fixture
def trap() -> Iterator[SimpleNamespace]:
    """A listening socket that records every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.1)
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                seen.append(conn.recv(4096) or b"<connected>")
            except OSError:
                seen.append(b"<connected>")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.getsockname()[1]}", seen=seen)
    stop.set()
    thread.join(5)
    server.close()


@pytest.mark.parametrize("key", ["tracking_uri", "checkpoint_dir", "register_name", "experiment"])
def test_overrides_naming_an_endpoint_are_refused_at_submit(key: str, trap: SimpleNamespace) -> None:
    value = trap.url if key in ("tracking_uri", "checkpoint_dir") else "someone-elses-model"
    params = {"data_version": "sha256:abc", "dataset_uri": "s3://b/d", "output_root": "s3://b/runs",
              "plan": [{"size": "demo-tiny-qwen3", "nodes": 1, "gpus_per_node": 0}], "overrides": {key: value}}
    problems = checks.check("training-suite", params)
    assert len(problems) == 1 and f"overrides.{key}" in problems[0] and "refused" in problems[0]
    assert trap.seen == []


def test_any_override_holding_a_url_is_refused_and_ordinary_ones_pass(trap: SimpleNamespace) -> None:
    refuse_cluster_settings({"lr": 1e-5, "zero_stage": 3, "run_tags": {"team": "rm"}})
    with pytest.raises(ConfigError, match=r"overrides\.run_tags\.sink: names a host"):
        refuse_cluster_settings({"run_tags": {"sink": trap.url}})
    # the local CLI's --set (a person's own machine) still takes them: only parameters are refused
    assert load_config("demo-tiny-qwen3", {"tracking_uri": "sqlite:///x.db"}).tracking_uri == "sqlite:///x.db"


def test_the_training_steps_refuse_before_any_request(trap: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipeline can be submitted without the CLI's checks: the pod's step refuses too."""
    from rewardops.pipelines.components.train import train
    from rewardops.pipelines.components.train_launcher import train_launcher

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.rewardops:5000")
    artifact = SimpleNamespace(path="/nonexistent", uri="s3://b/d", metadata={})
    with pytest.raises(ConfigError, match=r"overrides\.tracking_uri"):
        train.python_func(dataset=artifact, size="demo-tiny-qwen3", data_version="sha256:abc", model=artifact,
                          metrics=artifact, overrides={"tracking_uri": trap.url})
    with pytest.raises(ConfigError, match=r"overrides\.checkpoint_dir"):
        train_launcher.python_func(dataset=artifact, size="demo-tiny-qwen3", data_version="sha256:abc",
                                   output_root="s3://b/runs", model=artifact, metrics=artifact,
                                   overrides={"checkpoint_dir": f"s3://elsewhere/{trap.url}"})
    assert trap.seen == []


def test_curation_settings_naming_a_server_are_refused(trap: SimpleNamespace) -> None:
    with pytest.raises(SettingsError, match=r"annotator 'labelstudio:http://127\.0\.0\.1:\d+'.*LABEL_STUDIO_URL"):
        CurationSettings.parse({"annotator": f"labelstudio:{trap.url}"})
    with pytest.raises(SettingsError, match=r"judges 'openai:http.*names a host.*REWARDOPS_LLM_BASE_URL"):
        CurationSettings.parse({"judges": [f"openai:{trap.url}/v1"]})
    with pytest.raises(SettingsError, match=r"attributes 'openai:http"):
        CurationSettings.parse({"attributes": f"openai:{trap.url}"})
    assert CurationSettings.parse({"annotator": "labelstudio", "judges": ["openai:Qwen/Qwen3-8B"]}).annotator == "labelstudio"
    problems = checks.check("curation", {"data_version": "sha256:abc", "dataset_uri": "s3://b/d",
                                         "settings": f'{{"annotator": "labelstudio:{trap.url}"}}'})
    assert len(problems) == 1 and "annotator" in problems[0] and "LABEL_STUDIO_URL" in problems[0]

    from rewardops.cli import app

    result = CliRunner().invoke(app, ["curate", "stage1", "--state", "/nonexistent", "--out", "/nonexistent-out",
                                      "--annotator", f"labelstudio:{trap.url}"])
    assert result.exit_code != 0 and "LABEL_STUDIO_URL" in result.output, result.output
    assert trap.seen == []
