"""Step 3 of bench/gpu/run.sh: training throughput vs TRL RewardTrainer, same GPU, same run.

Runs bench/bench_training.py's rows (ours; TRL matched = our settings and token order; TRL
defaults) at the Qwen3-0.6B shape with checkpointing on and off, then at the 1.7B shape, random
init, the reference length mix (mean ~1,263 real tokens per pair before the chat template), 8 pairs
per optimizer step, bf16. Real tokens/s and MFU (6 * non-embedding params * tokens/s / peak; the
peak is rewardops.training.metrics.peak_flops, 989 TFLOP/s dense bf16 for H100/H200) for every
row. Then a profile of our 0.6B step (CUDA time by kernel family: attention, matmul, optimizer,
elementwise/norm, other), so a short ratio says what limits it. Writes training.json after every row.

    python bench/gpu/train_throughput.py OUT_DIR [--smoke] [--steps 10] [--only 0.6b,profile,1.7b,1.7b-off]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import CUDA, Report  # noqa: E402

import torch  # noqa: E402

FAMILIES = (  # kernel / op name fragments -> family, first match wins
    ("attention", ("flash", "attn", "attention", "fmha", "scaled_dot_product", "varlen")),
    ("optimizer", ("adam", "multi_tensor", "foreach", "fused_adam")),
    ("matmul", ("gemm", "cutlass", "nvjet", "sm90_xmma", "cublas", "aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "matmul")),
    ("norm/elementwise", ("norm", "elementwise", "vectorized", "silu", "mul", "add", "rsqrt", "pow", "mean", "cat", "copy", "reduce")),
)


def family(name: str) -> str:
    low = name.lower()
    for fam, keys in FAMILIES:
        if any(k in low for k in keys):
            return fam
    return "other"


def profile_ours(folder: str, data_dir: str, work: Path, steps: int = 2) -> dict:
    from bench_training import our_config

    from rewardops.training.trainer import Trainer

    cfg = our_config(data_dir, str(work / "profile-out"), folder, 8, steps + 2, 4096, True)
    trainer = Trainer(cfg, progress=False)
    for _ in range(2):
        trainer.train_step()
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if CUDA else [])
    common.sync()
    t = time.perf_counter()
    with torch.profiler.profile(activities=acts) as prof:
        for _ in range(steps):
            trainer.train_step()
        common.sync()
    wall = time.perf_counter() - t
    by: dict[str, float] = {}
    top = []
    for ev in prof.key_averages():
        us = (getattr(ev, "self_device_time_total", 0) or getattr(ev, "self_cuda_time_total", 0)) if CUDA else ev.self_cpu_time_total
        if not us:
            continue
        by[family(ev.key)] = by.get(family(ev.key), 0.0) + us / 1e6
        top.append((us / 1e6, ev.key[:90]))
    total = sum(by.values()) or 1.0
    top.sort(reverse=True)
    del trainer
    return {"profiled_steps": steps, "wall_s": round(wall, 3), "timeline": "CUDA kernel time" if CUDA else "CPU op self time",
            "seconds_by_family": {k: round(v, 4) for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
            "share_by_family": {k: round(v / total, 3) for k, v in sorted(by.items(), key=lambda kv: -kv[1])},
            "busy_fraction_of_wall": round(total / wall, 3) if CUDA else None,
            "top_kernels": [{"s": round(s, 4), "name": n} for s, n in top[:12]]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=160)
    ap.add_argument("--only", default="0.6b,profile,1.7b,1.7b-off")
    ap.add_argument("--work", default="/tmp/rewardops-gpu-work")
    args = ap.parse_args()
    if args.smoke:
        args.steps, args.warmup = min(args.steps, 3), 1
    from bench_training import aggregate, bench_model, ratios, synth_pairs

    rep = Report(args.out, "training", args.smoke)
    rep.data["varlen_compat"] = common.varlen_compat()
    rep.data["rows"] = []
    work = Path(args.work)
    pairs = synth_pairs(args.pairs, seed=0, scale=0.1 if args.smoke else 1.0)
    wanted = args.only.split(",")

    def emit(row):
        if "info" in row:
            rep.data.setdefault("info", []).append(row["info"])
        else:
            rep.data["rows"].append(row)
            rep.data["aggregate"] = aggregate(rep.data["rows"])
            rep.data["ratios"] = ratios(rep.data["rows"])
        rep.write()

    def model_rows(full: str, ckpts: list[bool], defaults: bool):
        def run():
            shape = common.shape_for(args.smoke, full)
            rows = bench_model(shape, pairs, bs=args.bs, steps=args.steps, warmup=args.warmup, max_length=4096,
                               ckpts=ckpts, defaults=defaults, workdir=work, emit=emit)
            for r in rows:
                r["model"] = full if not args.smoke else f"tiny (smoke for {full})"
            rep.data["aggregate"] = aggregate(rep.data["rows"])
            rep.data["ratios"] = ratios(rep.data["rows"])
            errors = [r["error"] for r in rows if "error" in r]
            return {"rows": len(rows), "errors": errors, "status": "ok" if not errors else "partial"}
        return run

    if "0.6b" in wanted:
        rep.check("qwen3-0.6b", model_rows("qwen3-0.6b", [True, False], True))
    if "profile" in wanted:
        def prof():
            folder = common.make_backbone(common.shape_for(args.smoke, "qwen3-0.6b"), work / "backbones")
            data = next(iter(sorted(work.glob("data-*"))), None)
            if data is None:
                from bench_training import our_config, encode_usable

                kept, _, _ = encode_usable(pairs, our_config("", str(work / "p"), folder, 8, 4, 4096, True))
                data = Path(common.write_data(kept, work / "data-profile"))
            return profile_ours(folder, str(data), work)
        rep.check("profile-ours-0.6b-ckpt-on", prof)
    if "1.7b" in wanted:
        rep.check("qwen3-1.7b", model_rows("qwen3-1.7b", [True], True))
    if "1.7b-off" in wanted:
        rep.check("qwen3-1.7b-ckpt-off", model_rows("qwen3-1.7b", [False], False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
