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


from support.demo_secrets import DEMO_SECRETS  # noqa: E402 - the markers the session's one demo runs with


@pytest.fixture(scope="session")
def checkout(tmp_path_factory) -> tuple[Path, str]:
    """A folder laid out like the repository after `make demo` (a small one), and the demo's output.
    The demo runs with DEMO_SECRETS in its environment (none of them is needed offline: the store is
    sqlite, the judges and annotators simulated, the DVC remote a folder)."""
    import shutil
    import subprocess

    from test_readme import SMALL_DEMO, plain_env  # tests/ is on the path (pytest pythonpath)

    home = tmp_path_factory.mktemp("readme")
    (home / ".venv").symlink_to(REPO / ".venv")
    shutil.copy(REPO / "params.yaml", home / "params.yaml")
    (home / "runs").mkdir()
    done = subprocess.run([".venv/bin/rewardops", "run", "demo", "--local", "--workdir", "demo-out", *SMALL_DEMO],
                          cwd=home, env={**plain_env(), **DEMO_SECRETS}, capture_output=True, text=True,
                          timeout=1800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return home, output
