"""Experiment tracking (MLflow), data versioning (DVC) and the model registry.

Public entry points:
- `start_tracker(experiment, run_name, ...)` -> a `Tracker` (rank-0 MLflow run, no-op elsewhere)
- `run_tags(data=...)` -> lineage tags (data DVC hash + git revision, code commit, pipeline run, image)
- `rewardops.tracking.registry`: `promote_champion`, aliases `candidate` / `champion`
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
