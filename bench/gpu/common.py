"""Shared helpers of the GPU check steps (bench/gpu/run.sh): paths, shapes, JSON output, compat.

Every step writes one JSON file into the output folder, rewritten after each check, so a step cut
off by its time box still leaves what it finished. A check that needs CUDA reports
{"status": "needs CUDA"} on a machine without one (the --smoke run on CPU).

Library names used by the steps (imported inside functions; a moved module is a one-line fix):
see each step's docstring and bench/bench_training.py.
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch

GPU_DIR = Path(__file__).resolve().parent
BENCH = GPU_DIR.parent
REPO = BENCH.parent
for p in (str(REPO / "src"), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CUDA = torch.cuda.is_available()
NEEDS_CUDA = {"status": "needs CUDA", "why": "no CUDA device on this machine (smoke run); the check runs on the GPU"}


def device_info() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "cuda": CUDA,
                            "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except Exception as exc:  # noqa: BLE001
        info["transformers"] = f"missing ({exc})"
    for name in ("trl", "datasets", "deepspeed"):
        try:
            mod = __import__(name)
            info[name] = getattr(mod, "__version__", "?")
        except Exception as exc:  # noqa: BLE001
            info[name] = f"missing ({type(exc).__name__})"
    if CUDA:
        info["device"] = torch.cuda.get_device_name()
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    else:
        info["device"] = f"CPU ({os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f}"
    return info


class Report:
    """One step's JSON file, rewritten after every check."""

    def __init__(self, out_dir: str | Path, name: str, smoke: bool) -> None:
        self.path = Path(out_dir) / f"{name}.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {"step": name, "smoke": smoke, "env": device_info(), "checks": {}}
        self.t0 = time.time()
        self.write()

    def write(self) -> None:
        self.data["seconds"] = round(time.time() - self.t0, 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)

    def check(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one check; an exception is recorded as status 'error' and the step goes on."""
        print(f"[{self.data['step']}] {name} ...", flush=True)
        t = time.time()
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - one failure must not cost the rest
            result = {"status": "error", "error": f"{type(exc).__name__}: {str(exc)[:600]}",
                      "traceback": traceback.format_exc()[-2500:]}
        result.setdefault("status", "ok")
        if result["status"] == "ok" and result.get("pass") is False:
            result["status"] = "fail"
        result["seconds"] = round(time.time() - t, 1)
        self.data["checks"][name] = result
        self.write()
        print(f"[{self.data['step']}] {name}: {result['status']} "
              f"{json.dumps({k: v for k, v in result.items() if k != 'traceback'}, default=str)[:600]}", flush=True)
        free()
        return result


def free() -> None:
    gc.collect()
    if CUDA:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if CUDA else None


def sync() -> None:
    if CUDA:
        torch.cuda.synchronize()


def varlen_compat() -> dict[str, Any]:
    """rewardops' attention passes `enable_gqa=` to torch.nn.attention.varlen.varlen_attn; some torch
    builds (the form quoted in ../shared/perf/NOTES.md for the device's torch 2.11) have no such
    keyword. If so, wrap varlen_attn once: drop the keyword and repeat the K/V heads for GQA, which
    is exact. Recorded in every step's JSON so a result never hides that the shim was used."""
    try:
        from torch.nn.attention import varlen
    except Exception as exc:  # noqa: BLE001
        return {"varlen_available": False, "why": f"{type(exc).__name__}: {exc}"}
    fn = varlen.varlen_attn
    if getattr(fn, "_rewardops_bench_shim", False):
        return {"varlen_available": True, "enable_gqa_native": False, "shim": True}
    params = inspect.signature(fn).parameters
    if "enable_gqa" in params:
        return {"varlen_available": True, "enable_gqa_native": True, "shim": False}

    def shim(q, k, v, *a, enable_gqa: bool = False, **kw):
        if k.shape[-2] != q.shape[-2]:
            rep = q.shape[-2] // k.shape[-2]
            k, v = k.repeat_interleave(rep, dim=-2), v.repeat_interleave(rep, dim=-2)
        return fn(q, k, v, *a, **kw)

    shim._rewardops_bench_shim = True  # type: ignore[attr-defined]
    varlen.varlen_attn = shim
    return {"varlen_available": True, "enable_gqa_native": False, "shim": True,
            "note": "torch's varlen_attn has no enable_gqa: src/rewardops/training/attention.py needs a fix "
                    "(pass enable_gqa only when the signature has it, else repeat K/V heads); the bench wrapped it"}


def shape_for(smoke: bool, full: str) -> str:
    return "tiny" if smoke else full


def make_backbone(shape: str, root: Path) -> str:
    from bench_training import random_qwen3_folder

    return random_qwen3_folder(shape, root)


def seq_ids(n_pairs: int, tokenizer: Any, seed: int, scale: float = 1.0) -> list[tuple[list[int], list[int]]]:
    """(chosen, rejected) token ids of synthetic pairs with the reference length mix, rendered with
    the backbone's chat template (rewardops.rendering.render_pair)."""
    from bench_training import synth_pairs

    from rewardops.rendering import render_pair

    return [render_pair(tokenizer, p) for p in synth_pairs(n_pairs, seed=seed, scale=scale)]


def write_data(pairs, folder: Path) -> str:
    from rewardops.data.shards import write_pairs

    if not folder.exists():
        write_pairs(pairs, folder)
    return str(folder)
