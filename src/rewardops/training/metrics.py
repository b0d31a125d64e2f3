"""Step metrics: throughput in real (non-pad) tokens, padding waste, MFU, system load."""

from __future__ import annotations

import os

import torch

# Dense bf16 peak TFLOP/s per GPU, for MFU. Override with REWARDOPS_PEAK_TFLOPS.
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0}


def non_embedding_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)


def peak_flops(device: torch.device) -> float | None:
    env = os.environ.get("REWARDOPS_PEAK_TFLOPS")
    if env:
        return float(env) * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def throughput_metrics(
    real_tokens: int,
    row_tokens: int,
    seconds: float,
    world_size: int,
    n_params: int,
    peak: float | None,
) -> dict[str, float]:
    """real_tokens: non-pad tokens of the step over all ranks; row_tokens: tokens actually computed."""
    tok_s = real_tokens / max(seconds, 1e-9)
    out = {
        "tokens_per_s": tok_s,
        "tokens_per_s_per_device": tok_s / world_size,
        "padding_waste": 1.0 - real_tokens / max(row_tokens, 1),
        "step_seconds": seconds,
    }
    if peak:
        out["mfu"] = 6.0 * n_params * tok_s / (peak * world_size)
    return out


def memory_metrics(device: torch.device) -> dict[str, float]:
    """The allocator's peak on an accelerator (host CPU, memory and GPU utilisation come from
    MLflow's own system-metrics monitor, which the training run starts)."""
    if device.type == "cuda":
        return {"perf/gpu_max_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30}
    return {}


def is_accuracy(key: str) -> bool:
    """`train/accuracy`, `eval/accuracy`, `eval/accuracy/<category>`: a pairwise accuracy."""
    parts = key.split("/")
    return "accuracy" in parts[1:] if len(parts) > 1 else key == "accuracy"


DATA_COUNTERS = "data/"  # the trainer's row counters (metrics.jsonl) ...
MLFLOW_DATA_COUNTERS = "train_data/"  # ... as MLflow shows them: after eval/, perf/ and train/


LR_SCHEDULE = "train/lr_schedule_pct"  # the step's learning rate in percent of the configured peak


def for_mlflow(metrics: dict[str, float], peak_lr: float | None = None) -> dict[str, float]:
    """Step metrics as MLflow shows them: every accuracy in percent, the unit `rewardops eval`
    reports benchmark scores in (training keeps fractions in metrics.jsonl), and the row counters
    under `train_data/`, so that MLflow's charts, grouped by prefix in name order, open on eval/.
    With `peak_lr`, the schedule is also `LR_SCHEDULE` (100 = the peak): MLflow's chart of a
    constant 1e-3 draws a flat line on a -1..1 axis that reads 0, while `train/lr` keeps the value."""
    out = {}
    if peak_lr and "train/lr" in metrics:
        out[LR_SCHEDULE] = 100.0 * float(metrics["train/lr"]) / peak_lr
    for key, value in metrics.items():
        if key.startswith(DATA_COUNTERS):
            key = MLFLOW_DATA_COUNTERS + key.removeprefix(DATA_COUNTERS)
        out[key] = 100.0 * float(value) if is_accuracy(key) else value
    return out
