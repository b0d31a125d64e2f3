"""What every KFP component does around its library call: lineage env, metrics, artifact metadata.

KFP lightweight components ship only their function body, so the shared parts live here, in the
package every component image has installed. A component body is then: `begin_step(...)`, one
call into the library, `finish_dataset(...)` / `log_metrics(...)`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol


class ArtifactLike(Protocol):
    """The part of `kfp.dsl.Artifact` the helpers use (name, path, metadata)."""

    path: str
    metadata: dict[str, Any]


class MetricsLike(Protocol):
    def log_metric(self, metric: str, value: float) -> None: ...


def begin_step(step: str, data_version: str, run_id: str = "") -> None:
    """Tag everything this step logs (MLflow runs included) with the data version it works on and,
    when given, the KFP run (`dsl.PIPELINE_JOB_ID_PLACEHOLDER` passed in as the `run_id` input)."""
    if not data_version:
        raise ValueError(f"step {step}: data_version is empty; pass the DVC hash or content hash of the input data")
    os.environ["REWARDOPS_DATA_DVC_HASH"] = data_version
    if run_id:
        os.environ["REWARDOPS_PIPELINE_RUN_ID"] = run_id
    os.environ.setdefault("REWARDOPS_PIPELINE_STEP", step)
    print(f"[{step}] data version {data_version}", flush=True)


def dataset_dir(artifact: ArtifactLike) -> Path:
    """The folder a Dataset artifact's shards go in (created; KFP uploads folders as they are)."""
    path = Path(artifact.path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def count_pairs_in(path: str | Path) -> int:
    from rewardops.data.shards import count_pairs

    return count_pairs(path)


def finish_dataset(artifact: ArtifactLike, data_version: str, **metadata: Any) -> int:
    """Record pair count, data version and extra metadata on a Dataset artifact; return the count."""
    pairs = count_pairs_in(artifact.path)
    artifact.metadata.update({"pairs": pairs, "data_version": data_version, "format": "rewardops-pairs/parquet"})
    artifact.metadata.update({k: v for k, v in metadata.items() if v is not None})
    return pairs


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    flat: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}/"))
        elif isinstance(value, (bool, int, float)):
            flat[name] = float(value)
    return flat


def log_metrics(metrics: MetricsLike, values: Mapping[str, Any]) -> dict[str, float]:
    """Numeric values only (KFP metrics are floats); nested mappings flatten to `a/b`.

    The values are also written as JSON to the artifact's file: KFP's local cache treats an
    output artifact without a file as missing and would re-run the step every time.
    """
    flat = _flatten(values)
    for name, value in flat.items():
        metrics.log_metric(name, value)
    path = getattr(metrics, "path", None)
    if path:
        write_json(path, flat)
    return flat


def report_totals(report: Any) -> dict[str, int]:
    """rows_in / kept / duplicates / contaminated / quarantined of a data-area RunReport."""
    totals = report.totals()
    return {"rows_in": totals.rows_in, "kept": totals.kept, "duplicates": totals.duplicates,
            "contaminated": totals.contaminated, "quarantined": totals.quarantined_total}


def write_json(path: str | Path, value: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(value, indent=2, sort_keys=True, default=str))


# Settings that say where a training reads, writes and reports, not what it computes.
_WHERE = ("data", "out", "checkpoint_dir", "run_tags", "register_name", "tracking_uri", "experiment")


def training_key(config: Any) -> str:
    """What decides a training's result: every setting but where it reads and writes, and the pairs
    it reads (`rewardops.data.shards.pairs_digest`, independent of shard layout and lineage)."""
    import hashlib

    from rewardops.data.shards import pairs_digest

    settings = {k: v for k, v in config.to_dict().items() if k not in _WHERE}
    text = json.dumps(settings, sort_keys=True, default=str) + pairs_digest(config.data)
    return hashlib.sha256(text.encode()).hexdigest()


def reuse_model(model: ArtifactLike, same_as: ArtifactLike | None, key: str) -> bool:
    """The model of `same_as` (a training of the same run) as this step's model when its
    `training_key` is `key`: the folder copied, its metadata (MLflow run included) carried over and
    `reused_from` set. False (nothing done) when there is none or the key differs: train."""
    import shutil

    if same_as is None or not same_as.metadata.get("training_key") or same_as.metadata["training_key"] != key:
        return False
    shutil.copytree(same_as.path, model.path, dirs_exist_ok=True, symlinks=True)
    model.metadata.update({**same_as.metadata, "reused_from": same_as.metadata.get("mlflow_run_id") or same_as.path})
    print(f"same training set and settings as {model.metadata['reused_from']}: its model, not trained again",
          flush=True)
    return True
