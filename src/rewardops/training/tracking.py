"""MLflow for training runs, through rewardops.tracking.mlflow_tracker (rank 0 only).

Default store: MLFLOW_TRACKING_URI if set, else an embedded SQLite file `<out>/mlflow.db` with
artifacts in `<out>/mlartifacts`. Logged: the full resolved config as params, the step metrics
(loss, accuracy, margin, reward mean/std, LR, real tokens/s, padding waste, MFU on GPU), system
metrics (CPU, RSS, GPU memory), a loss/accuracy PNG, the over-length counts, and the exported
model as the serving pyfunc (rewardops.tracking.rewardmodel), registered as `rewardops-rm-<size>`
with alias `candidate`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rewardops.training.config import TrainConfig


def tracking_uri_for(config: TrainConfig) -> str:
    from rewardops.tracking.uri import resolve_tracking_uri

    return resolve_tracking_uri(config.tracking_uri, home=config.out)


@contextmanager
def open_tracker(config: TrainConfig, is_main: bool) -> Iterator[Any]:
    """The run's tracker on rank 0 (None elsewhere, or with mlflow=false)."""
    if not (config.mlflow and is_main):
        yield None
        return
    from rewardops.tracking.mlflow_tracker import start_tracker

    uri = tracking_uri_for(config)
    restore = os.environ.get("REWARDOPS_MLFLOW_ARTIFACTS")
    if uri.startswith("sqlite:///") and restore is None:
        os.environ["REWARDOPS_MLFLOW_ARTIFACTS"] = str(Path(config.out).resolve() / "mlartifacts")
    try:
        tags = {"rewardops.stage": "training", "rewardops.size": config.size, "rewardops.backbone": config.backbone, "rewardops.data.path": str(config.data),
                **config.run_tags}
        # runs are named by size; MLflow's own system metrics (CPU, memory, GPU) are on
        with start_tracker(config.experiment, config.size, tracking_uri=uri, tags=tags, system_metrics=True) as tracker:
            yield MlflowView(tracker, config.lr)
    finally:
        if restore is None:
            os.environ.pop("REWARDOPS_MLFLOW_ARTIFACTS", None)


class MlflowView:
    """The run's tracker, logging metrics as MLflow shows them (`rewardops.training.metrics.for_mlflow`)."""

    def __init__(self, tracker: Any, peak_lr: float | None = None) -> None:
        self._tracker = tracker
        self._peak_lr = peak_lr

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from rewardops.training.metrics import for_mlflow

        self._tracker.log_metrics(for_mlflow(dict(metrics), self._peak_lr), step=step)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracker, name)


def finish_tracking(tracker: Any, config: TrainConfig, result: Any) -> None:
    """Curves, counts and the registered model at the end of a run."""
    if result.history:
        tracker.log_figure(_curves(result.history), "training_curves.png")
    counts = {f"data/final_{k}": float(v) for k, v in result.counts.items()}
    if counts:
        tracker.log_metrics(counts, step=result.steps)
    if result.eval:
        import json

        path = Path(config.out) / "eval.json"
        path.write_text(json.dumps(result.eval, indent=1))
        tracker.log_artifact(path, "eval")
    if result.export_dir is not None:
        result.registered_version = tracker.register_model(result.export_dir, config.model_name, alias="candidate")
    result.run_id = tracker.run_id


def _curves(history: list[dict[str, float]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    panels = (("train/loss", "loss", 1.0), ("train/accuracy", "accuracy (%)", 100.0), ("perf/tokens_per_s", "tokens/s", 1.0))
    for ax, (key, unit, scale) in zip(axes, panels):
        ax.plot(steps, [scale * h[key] for h in history])
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.set_ylabel(unit)
    fig.tight_layout()
    return fig
