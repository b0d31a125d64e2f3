"""Experiment tracking (MLflow), data versioning (DVC) and the model registry.

Modules (imports go down this list, never up):
- `uri`: where runs go (the one tracking-URI default); `spool`: the on-disk outage spool
- `lineage`: run tags and `DataVersion` (DVC registry, commit, path, md5) of a dataset
- `rewardmodel` (+ `serving_model`): the registered reward pyfunc, its signature and model card
- `mlflow_tracker`: `start_tracker(experiment, run_name, ...)` -> a rank-0 `Tracker` on MLflow's async logging
- `registry`: the one promotion rule (`promote_champion`), aliases `candidate` / `champion`
- `data_registry`, `dvc_remote`, `dataversion`: the DVC data registry, remotes, pipeline data versions
- `compare`: `rewardops compare`; `commands`: the CLI (`data`, `registry`, `compare`)
"""

from rewardops.tracking.lineage import run_tags
from rewardops.tracking.mlflow_tracker import (
    NullTracker,
    Tracker,
    TrackingUnavailable,
    TrackingWarning,
    is_rank_zero,
    start_tracker,
)

__all__ = [
    "NullTracker",
    "Tracker",
    "TrackingUnavailable",
    "TrackingWarning",
    "is_rank_zero",
    "run_tags",
    "start_tracker",
]
