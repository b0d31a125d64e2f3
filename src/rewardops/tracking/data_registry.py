"""A DVC data registry: each dataset subset versioned in its own git + DVC repository.

The local demo (and anyone without a cluster) gets what a team gets from an S3-backed DVC
registry: every run's subsets committed as `.dvc` files in git, their content in a DVC remote
(a local folder here; `rewardops data push` for S3), and any older version back with
`dvc get <registry> <name> --rev <commit>`. A run whose data did not change adds no commit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

GIT_IDENTITY = ["-c", "user.name=rewardops", "-c", "user.email=rewardops@localhost"]


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _dvc(repo: Path, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} in {repo} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout.strip()


def init_registry(registry: Path, remote: Path) -> None:
    """A git repository with DVC initialised and `remote` (a folder) as its default remote."""
    registry.mkdir(parents=True, exist_ok=True)
    if not (registry / ".git").exists():
        _git(registry, "init", "-q")
    if not (registry / ".dvc").exists():
        _dvc(registry, "init", "-q")
        _dvc(registry, "config", "core.analytics", "false")
        remote.mkdir(parents=True, exist_ok=True)
        _dvc(registry, "remote", "add", "-d", "local", str(remote.resolve()))
        _git(registry, "add", "-A")
        _git(registry, "commit", "-q", "-m", "DVC data registry")


def version_datasets(registry: Path, datasets: dict[str, Path], remote: Path, message: str) -> dict[str, str]:
    """Copy each dataset folder into `registry/<name>`, `dvc add` it, commit, push to `remote`.

    Returns {name: DVC md5 of the folder}; the git commit is under the key "rev".
    """
    registry, remote = Path(registry), Path(remote)
    init_registry(registry, remote)
    for name, src in datasets.items():
        if not Path(src).is_dir():
            raise FileNotFoundError(f"dataset {name}: {src} is not a folder")
        dst = registry / name
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
    _dvc(registry, "add", "-q", *datasets)
    _git(registry, "add", "-A")
    if _git(registry, "status", "--porcelain"):
        _git(registry, "commit", "-q", "-m", message)
    _dvc(registry, "push", "-q")
    hashes = {
        name: yaml.safe_load((registry / f"{name}.dvc").read_text())["outs"][0]["md5"] for name in datasets
    }
    hashes["rev"] = _git(registry, "rev-parse", "HEAD")
    return hashes
