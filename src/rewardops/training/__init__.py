"""Bradley-Terry reward-model training (spec §5-6): packed, DeepSpeed or DDP, resumable, exported.

    from rewardops.training.config import resolve_config
    from rewardops.training.trainer import train
    result = train(resolve_config("demo-tiny-qwen3", {"data": "pairs/", "out": "runs/tiny"}))

Modules: config (catalog + overrides + validation), data (rendering, over-length policy),
packing (token-budget micro-batches), attention (varlen / per-sequence attention, packed
rewards), loss (BT + optional margin / centering), trainer (the loop), checkpoint (local / S3),
export (HF folder), tracking (MLflow), metrics, commands (CLI).
"""
