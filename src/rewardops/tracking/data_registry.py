"""A DVC data registry: each dataset subset versioned in its own git + DVC repository.

The local demo (and anyone without a cluster) gets what a team gets from an S3-backed DVC
registry: every run's subsets committed as `.dvc` files in git, their content in a DVC remote
(a local folder here; `rewardops data push` for S3), and any older version back with
`dvc get <registry> <name> --rev <commit>`. A run whose data did not change adds no commit.

The remote is recorded as a path relative to the registry (`../dvc-remote` style), so moving the
folder that holds both (the demo's `demo-out/`) keeps every version retrievable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from rewardops.outputs import reproducible_manifests

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


def _relative_remote(registry: Path, remote: Path) -> str:
    # given relative to the registry (the command's cwd); DVC stores it relative to .dvc/config
    return os.path.relpath(remote.resolve(), registry.resolve())


def init_registry(registry: Path, remote: Path) -> None:
    """A git repository with DVC initialised and `remote` (a folder, stored relative) as its default remote."""
    registry.mkdir(parents=True, exist_ok=True)
    remote.mkdir(parents=True, exist_ok=True)
    if not (registry / ".git").exists():
        _git(registry, "init", "-q")
    if not (registry / ".dvc").exists():
        _dvc(registry, "init", "-q")
        _dvc(registry, "config", "core.analytics", "false")
        _dvc(registry, "config", "core.autostage", "false")
        _dvc(registry, "remote", "add", "-d", "local", "placeholder")
    # written with `--local`-free `config` so it is committed; relative so the folder can move
    _dvc(registry, "remote", "modify", "local", "url", _relative_remote(registry, remote))
    _git(registry, "add", "-A")
    if _git(registry, "status", "--porcelain"):
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
        reproducible_manifests(dst)  # identical data -> identical md5, whenever and however it was written
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


def version_dataset(registry: Path, name: str, src: Path, remote: Path, message: str) -> "DataVersion":
    """Version one dataset folder as `registry/<name>` and say where it is (`DataVersion`)."""
    from rewardops.tracking.lineage import DataVersion, _rows

    found = version_datasets(registry, {name: src}, remote, message)
    return DataVersion(str(Path(registry).resolve()), found["rev"], name, found[name], _rows(Path(src)))
