"""Step 5 of bench/gpu/run.sh: DeepSpeed on one GPU. Writes deepspeed.json.

Four runs of rewardops' Trainer, each in its own process (DeepSpeed keeps global state), each
20 optimizer steps at the Qwen3-0.6B shape (random init, the same weights, the same 160 pairs in
the same order, 8 pairs per step, LR 1e-5 constant, checkpointing on):
  plain  - no DeepSpeed: fp32 master weights, bf16 autocast, fused AdamW
  zero1, zero2, zero3 - DeepSpeed's bf16 engine (bf16 weights, fp32 optimizer state) at that stage

Loss-curve tolerance, stated: every step |loss_zeroK - loss_plain| <= 0.02. Why 0.02: the two
paths differ only in precision (bf16 weights vs fp32 weights under autocast), which moves each
reward by about bf16's relative precision (2^-8 ~ 0.4%) times its size; the BT loss moves at most
as much as the reward difference, so a few 1e-3 per step, drifting slowly over 20 small steps;
0.02 leaves about 5x room while a real fault (wrong gradient scaling, lost shard, skipped step)
moves the curve by far more. Step 1 (identical weights) isolates the precision difference alone
and is reported. Between ZeRO stages (the same bf16 engine, only partitioning differs, trivial on
one GPU) the curves must agree within 0.005.

Export after ZeRO-3: Trainer.export gathers the shards (rewardops.training.export); the folder is
reloaded the way a user loads it (rewardops.training.export.load_exported) and scores 4 pairs.
Tolerance: |live ZeRO-3 engine - exported, reloaded in bf16| <= 2 * e, e = |exported in bf16 -
exported in fp32| (the bf16 error itself; same argument as correctness.py); a missing or
ungathered shard would give unrelated scores.

Library names used: bench_training.our_config, rewardops.training.trainer.Trainer (train_step,
export, engine, module), rewardops.training.attention.packed_rewards,
rewardops.training.{packing.pack, data.EncodedPair}, rewardops.training.export.load_exported.

    python bench/gpu/deepspeed_check.py OUT_DIR [--smoke] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import CUDA, Report  # noqa: E402

import torch  # noqa: E402

# run order: the most informative first, in case the step's time box cuts the last one
MODES = {"plain": (False, 0), "zero1": (True, 1), "zero3": (True, 3), "zero2": (True, 2)}
LOSS_TOL, STAGE_TOL = 0.02, 0.005


def probe_pairs(tokenizer, smoke: bool):
    return common.seq_ids(4, tokenizer, seed=7, scale=0.1 if smoke else 0.5)


@torch.no_grad()
def live_scores(trainer, pairs) -> list[float]:
    from rewardops.training.data import EncodedPair
    from rewardops.training.packing import pack

    module = trainer.engine.module if trainer.engine is not None else trainer.module
    module.eval()
    batch = pack([EncodedPair(i, c, r) for i, (c, r) in enumerate(pairs)]).to(trainer.env.device)
    ctx = trainer._autocast()  # noqa: SLF001 - the trainer's own precision context (no-op under DeepSpeed)
    with ctx:
        r = module(batch.input_ids, batch.position_ids, batch.cu_seq_lens, batch.max_seq_len)
    return [float(x) for x in r.reshape(-1).float().cpu()]


@torch.no_grad()
def exported_scores(path: Path, pairs, dtype) -> list[float]:
    from rewardops.training.export import load_exported

    model, _ = load_exported(path, dtype=dtype)
    model = model.to("cuda" if CUDA else "cpu")
    out = []
    for c, r in pairs:
        for s in (c, r):
            out.append(float(model(input_ids=torch.tensor([s], device=model.device)).logits[0, 0].float()))
    del model
    return out


def worker(mode: str, folder: str, data: str, out_dir: Path, steps: int, smoke: bool, result_path: Path) -> None:
    from bench_training import our_config

    from rewardops.training.trainer import Trainer

    ds, stage = MODES[mode]
    cfg = our_config(data, str(out_dir / mode), folder, 8, steps, 4096, True, dtype="bf16" if CUDA else "auto",
                     deepspeed=ds, zero_stage=stage, lr=1e-5, export=True)
    common.free()
    t = time.time()
    trainer = Trainer(cfg, progress=False)
    res = {"mode": mode, "deepspeed": ds, "zero_stage": stage, "dtype": trainer.dtype, "backend": trainer.backend,
           "init_s": round(time.time() - t, 1), "losses": [], "step_s": []}
    for _ in range(steps):
        common.sync()
        t = time.perf_counter()
        m = trainer.train_step()
        common.sync()
        res["step_s"].append(round(time.perf_counter() - t, 4))
        res["losses"].append(float(m["train/loss"]))
        result_path.write_text(json.dumps(res))
    res["peak_mem_gib"] = common.peak_gib()
    if mode == "zero3":
        pairs = probe_pairs(trainer.tokenizer, smoke)
        live = live_scores(trainer, pairs)
        t = time.time()
        path = trainer.export()
        res["export_s"] = round(time.time() - t, 1)
        res["export_dir"] = str(path)
        del trainer
        common.free()
        bf16 = exported_scores(path, pairs, torch.bfloat16 if CUDA else torch.float32)
        fp32 = exported_scores(path, pairs, torch.float32)
        e = max(abs(a - b) for a, b in zip(bf16, fp32))
        d = max(abs(a - b) for a, b in zip(live, bf16))
        res["export_check"] = {"live_scores": live, "exported_bf16": bf16, "exported_fp32": fp32,
                               "max_abs_live_vs_exported": d, "bf16_error_e": e,
                               "max_abs_live_vs_exported_fp32": max(abs(a - b) for a, b in zip(live, fp32)),
                               "tolerance": 2 * e + 1e-6, "pass": bool(d <= 2 * e + 1e-6)}
    result_path.write_text(json.dumps(res))


def compare(results: dict) -> dict:
    plain = results.get("plain", {}).get("losses")
    out: dict = {"tolerance_vs_plain": LOSS_TOL, "tolerance_between_stages": STAGE_TOL}
    ok = bool(plain)
    for mode in ("zero1", "zero2", "zero3"):
        losses = results.get(mode, {}).get("losses")
        if not plain or not losses or len(losses) != len(plain):
            out[mode] = {"status": "missing", "steps": len(losses or [])}
            ok = False
            continue
        diffs = [abs(a - b) for a, b in zip(losses, plain)]
        out[mode] = {"max_abs_vs_plain": max(diffs), "step1_abs_vs_plain": diffs[0],
                     "mean_abs_vs_plain": sum(diffs) / len(diffs), "pass": max(diffs) <= LOSS_TOL}
        ok = ok and out[mode]["pass"] and all(math.isfinite(x) for x in losses)
    z = [results.get(m, {}).get("losses") for m in ("zero1", "zero2", "zero3")]
    if all(z) and len({len(x) for x in z}) == 1:
        between = max(abs(a - b) for x in z[1:] for a, b in zip(x, z[0]))
        out["max_abs_between_stages"] = between
        ok = ok and between <= STAGE_TOL
    exp = results.get("zero3", {}).get("export_check")
    out["zero3_export_reload_pass"] = exp.get("pass") if exp else None
    out["pass"] = bool(ok and exp and exp.get("pass"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--worker", default=None)
    ap.add_argument("--work", default="/tmp/rewardops-gpu-work")
    ap.add_argument("--worker-timeout", type=int, default=int(os.environ.get("DS_WORKER_TIMEOUT", "0")) or None,
                    help="seconds per run (default 90 on a GPU, 400 for a CPU smoke run)")
    args = ap.parse_args()
    args.worker_timeout = args.worker_timeout or (90 if CUDA else 400)
    work = Path(args.work)
    steps = min(args.steps, 4) if args.smoke else args.steps
    folder = common.make_backbone(common.shape_for(args.smoke, "qwen3-0.6b"), work / "backbones")
    data_dir = work / ("ds-data-smoke" if args.smoke else "ds-data")
    if args.worker:
        worker(args.worker, folder, str(data_dir), work / "ds-out", steps, args.smoke, work / f"ds-{args.worker}.json")
        return 0

    from bench_training import synth_pairs

    rep = Report(args.out, "deepspeed", args.smoke)
    rep.data["varlen_compat"] = common.varlen_compat()
    common.write_data(synth_pairs(8 * steps, seed=3, scale=0.1 if args.smoke else 1.0), data_dir)
    results = {}
    for mode in MODES:
        def run(mode=mode):
            path = work / f"ds-{mode}.json"
            path.unlink(missing_ok=True)
            cmd = [sys.executable, __file__, args.out, "--worker", mode, "--work", str(work), "--steps", str(args.steps)]
            if args.smoke:
                cmd.append("--smoke")
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.worker_timeout)
                rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-2500:]
            except subprocess.TimeoutExpired as exc:
                text = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")  # noqa: E731
                rc, tail = "timeout", text(exc.stdout)[-1500:] + text(exc.stderr)[-1500:]
            res = json.loads(path.read_text()) if path.exists() else {}
            results[mode] = res
            status = "ok" if rc == 0 else ("timeout" if rc == "timeout" else "error")
            out = {k: v for k, v in res.items() if k != "export_check"}
            if "export_check" in res:
                out["export_check"] = res["export_check"]
            return {"status": status, "returncode": rc, **out, **({"log_tail": tail} if rc != 0 else {})}
        rep.check(mode, run)
    rep.check("loss_curves_and_export", lambda: {**compare(results), **({} if CUDA else {"note": "CPU smoke: fp32 both ways, DeepSpeed on gloo"})})
    return 0


if __name__ == "__main__":
    sys.exit(main())
