"""Fixtures for the pipeline tests: compiled IR of every pipeline (read by tests/support/pipeline_ir.py), isolated caches."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def compiled(tmp_path_factory) -> dict[str, dict]:
    """Every pipeline compiled once to IR YAML and parsed."""
    from support.pipeline_ir import load_ir

    from rewardops.pipelines.commands import compile_all

    out = tmp_path_factory.mktemp("ir")
    return {path.stem: load_ir(path) for path in compile_all(out)}


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Per-test digest cache and MLflow store, so tests never share state through ~/.cache."""
    monkeypatch.setenv("REWARDOPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path
