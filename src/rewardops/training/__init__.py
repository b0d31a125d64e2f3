"""Bradley-Terry reward-model training (paper §4.1, App. E; the model card's usage): packed, DeepSpeed or DDP, resumable, exported.

The one entry, used by the CLI (`rewardops train`), the TrainJob pod (the same command under
mpirun or torchrun), curation's transformer RM and the KFP `train` component:

    from rewardops import training
    config = training.load_config("demo-tiny-qwen3", {"data": "pairs/", "out": "runs/tiny", "lr": 1e-4})
    result = training.run(config)

Modules: config (catalog + profile + overrides mapping + validation), distributed (rank discovery
for mpirun / torchrun / Kubeflow PET_*), data (rendering, over-length policy), packing
(token-budget micro-batches), attention (varlen / per-sequence attention, packed rewards), loss
(BT + optional margin / centering), trainer (the loop), checkpoint (local / S3), export (HF
folder), tracking (MLflow), metrics, commands (CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rewardops.training.config import ConfigError, TrainConfig, config_from_json, load_config, parse_overrides

if TYPE_CHECKING:
    from rewardops.training.trainer import TrainResult

__all__ = ["ConfigError", "TrainConfig", "config_from_json", "load_config", "parse_overrides", "run"]


def run(config: TrainConfig, progress: bool = False) -> "TrainResult":
    """Train, evaluate, export and track one run in this process (every rank of a launch calls it),
    then leave the process group, so the same process may train again."""
    from rewardops.training.trainer import Trainer, fit_tracked

    trainer = Trainer(config, progress=progress)
    try:
        return fit_tracked(trainer)
    finally:
        from rewardops.training.trainer import shutdown_distributed

        shutdown_distributed(trainer.env)
