"""Lineage tags for every tracked run: data version, code commit, pipeline run and image.

`run_tags()` reads, in order, an explicit environment variable (what a KFP component or a
Kubernetes pod sets), then git and DVC in the working tree, then a plain "unknown". Tag keys:

| tag                         | env override                  | fallback                         |
|-----------------------------|-------------------------------|----------------------------------|
| rewardops.data.dvc_hash     | REWARDOPS_DATA_DVC_HASH       | md5 of the data out in dvc.lock / `<data>.dvc` |
| rewardops.data.path         | REWARDOPS_DATA_PATH           | the `data` argument              |
| rewardops.data.git_rev      | REWARDOPS_DATA_GIT_REV        | git HEAD of the data's repo      |
| rewardops.code.commit       | REWARDOPS_CODE_COMMIT, GIT_COMMIT | git HEAD (+ "-dirty")        |
| rewardops.pipeline.run_id   | REWARDOPS_PIPELINE_RUN_ID, KFP_RUN_ID | "local"                  |
| rewardops.image             | REWARDOPS_IMAGE               | "local"                          |

`mlflow.source.git.commit` is set to the same commit so MLflow's UI shows it too.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

__all__ = ["code_commit", "data_dvc_hash", "git_revision", "run_tags"]

UNKNOWN = "unknown"


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_revision(cwd: str | os.PathLike[str] | None = None) -> str | None:
    """The commit HEAD points at, or None outside a repository / before the first commit."""
    return _git(["rev-parse", "HEAD"], Path(cwd or Path.cwd()))


def code_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    for var in ("REWARDOPS_CODE_COMMIT", "GIT_COMMIT"):
        if os.environ.get(var):
            return os.environ[var]
    where = Path(cwd or Path.cwd())
    rev = git_revision(where)
    if rev is None:
        return UNKNOWN
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return f"{rev}-dirty" if dirty else rev


def _md5_of_out(entry: dict[str, Any]) -> str | None:
    return entry.get("md5") or entry.get("etag") or entry.get("checksum")


def data_dvc_hash(data: str | os.PathLike[str] | None, repo: str | os.PathLike[str] | None = None) -> str | None:
    """The DVC hash recorded for `data` (a folder or file a stage produces, or a `.dvc`-tracked path).

    Looks in `<repo>/dvc.lock` (stage outs), then `<data>.dvc`. None when DVC does not track it.
    """
    if data is None:
        return None
    root = Path(repo or Path.cwd()).resolve()
    target = Path(data)
    if target.is_absolute():
        try:
            target = target.resolve().relative_to(root)
        except ValueError:
            pass
    wanted = target.as_posix().rstrip("/")
    lock = root / "dvc.lock"
    if lock.is_file():
        try:
            stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        except yaml.YAMLError:
            stages = {}
        for stage in stages.values():
            for out in stage.get("outs", []) or []:
                if str(out.get("path", "")).rstrip("/") == wanted:
                    return _md5_of_out(out)
    dvc_file = root / f"{wanted}.dvc"
    if dvc_file.is_file():
        try:
            outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", [])
        except yaml.YAMLError:
            outs = []
        if outs:
            return _md5_of_out(outs[0])
    return None


def run_tags(
    data: str | os.PathLike[str] | None = None,
    *,
    repo: str | os.PathLike[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Tags to put on a training/evaluation run (see the module docstring)."""
    env = os.environ
    root = Path(repo or Path.cwd())
    commit = code_commit(root)
    data_path = env.get("REWARDOPS_DATA_PATH") or (str(data) if data is not None else None)
    tags = {
        "rewardops.data.dvc_hash": env.get("REWARDOPS_DATA_DVC_HASH") or data_dvc_hash(data, root) or UNKNOWN,
        "rewardops.data.git_rev": env.get("REWARDOPS_DATA_GIT_REV") or git_revision(root) or UNKNOWN,
        "rewardops.code.commit": commit,
        "rewardops.pipeline.run_id": env.get("REWARDOPS_PIPELINE_RUN_ID") or env.get("KFP_RUN_ID") or "local",
        "rewardops.image": env.get("REWARDOPS_IMAGE") or "local",
    }
    if data_path:
        tags["rewardops.data.path"] = data_path
    if commit != UNKNOWN:
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    for key, value in (extra or {}).items():
        tags[str(key)] = str(value)
    return tags
