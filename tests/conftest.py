"""Shared test fixtures. Real data fixtures live in ../shared/data (read-only); never copy them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REWARDOPS_SHARED", REPO.parent / "shared"))
SHARED_DATA = SHARED / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        raise FileNotFoundError(f"test fixtures not found at {SHARED_DATA} (set REWARDOPS_SHARED)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


from support.demo_secrets import DEMO_DVC_REMOTE, DEMO_GIT_REMOTE, DEMO_SECRETS  # noqa: E402 - the demo's markers


@pytest.fixture(scope="session")
def checkout(tmp_path_factory) -> tuple[Path, str]:
    """A folder laid out like the repository after `make demo` (a small one), and the demo's output.
    The demo runs with DEMO_SECRETS in its environment (none of them is needed offline: the store is
    sqlite, the judges and annotators simulated, the DVC remote a folder). Its data registry is made
    first, as a team's would be: a git `origin` and a second DVC remote (`--local`, not the default)
    whose URLs carry a token (DEMO_GIT_REMOTE, DEMO_DVC_REMOTE); nothing fetches from or pushes to
    them offline."""
    import shutil
    import subprocess
    import sys

    from test_readme import SMALL_DEMO, plain_env  # tests/ is on the path (pytest pythonpath)

    home = tmp_path_factory.mktemp("readme")
    (home / ".venv").symlink_to(REPO / ".venv")
    shutil.copy(REPO / "params.yaml", home / "params.yaml")
    (home / "runs").mkdir()
    from rewardops.tracking.data_registry import init_registry

    registry = home / "demo-out" / "data-registry"
    init_registry(registry, home / "demo-out" / "dvc-remote")
    for argv in (["git", "remote", "add", "origin", DEMO_GIT_REMOTE],
                 [sys.executable, "-m", "dvc", "remote", "add", "--local", "hosted", DEMO_DVC_REMOTE]):
        subprocess.run(argv, cwd=registry, check=True, capture_output=True)
    done = subprocess.run([".venv/bin/rewardops", "run", "demo", "--local", "--workdir", "demo-out", *SMALL_DEMO],
                          cwd=home, env={**plain_env(), **DEMO_SECRETS}, capture_output=True, text=True,
                          timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return home, output
