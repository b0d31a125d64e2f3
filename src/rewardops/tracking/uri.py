"""Where runs go: the one place the MLflow tracking URI default is decided.

`resolve_tracking_uri(explicit, home=None)`:
1. `explicit` (a `--tracking-uri` option, a config's `tracking_uri`), else
2. `MLFLOW_TRACKING_URI`, else
3. the embedded default: a SQLite file, `<home>/mlflow.db` when the caller has an output folder
   (training's `--out`, a pipeline's workdir), otherwise `./mlruns.db` in the working directory.

A SQLite store keeps its artifacts in `mlartifacts/` next to the database file, unless
`REWARDOPS_MLFLOW_ARTIFACTS` names another folder or URI (`default_artifact_location`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["client", "default_artifact_location", "default_tracking_uri", "resolve_tracking_uri"]

CWD_DB = "mlruns.db"  # `mlflow ui --backend-store-uri sqlite:///mlruns.db` in the same folder
HOME_DB = "mlflow.db"  # inside an output folder (training --out, a pipeline workdir)


def default_tracking_uri(cwd: str | os.PathLike[str] | None = None, *, home: str | os.PathLike[str] | None = None) -> str:
    """The embedded default: `<home>/mlflow.db`, else `<cwd>/mlruns.db`."""
    if home is not None:
        return f"sqlite:///{Path(home).resolve() / HOME_DB}"
    base = Path(cwd) if cwd is not None else Path.cwd()
    return f"sqlite:///{base.resolve() / CWD_DB}"


def resolve_tracking_uri(explicit: str | None = None, *, home: str | os.PathLike[str] | None = None) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(home=home)


def default_artifact_location(tracking_uri: str | None = None) -> str:
    """`REWARDOPS_MLFLOW_ARTIFACTS`, else `mlartifacts/` next to a SQLite file, else in the cwd."""
    env = os.environ.get("REWARDOPS_MLFLOW_ARTIFACTS")
    if env:
        return env if "://" in env else Path(env).resolve().as_uri()
    base = Path.cwd()
    if tracking_uri and tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        base = Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent
    return (base.resolve() / "mlartifacts").as_uri()


def client(tracking_uri: str | None = None) -> Any:
    """An `MlflowClient` for the resolved URI (registry: `MLFLOW_REGISTRY_URI` or the same)."""
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)
