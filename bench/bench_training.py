"""Reward-model training throughput: our packed trainer against TRL RewardTrainer, same run.

Every row has two peer columns ("compare like with like"):

- **TRL matched** (the headline): TRL `RewardTrainer` under OUR settings: the same activation
  checkpointing on/off, the same max length, the same precision (fp32 on CPU; on CUDA fp32 master
  weights + bf16 autocast, as ours), the same pairs per optimizer step, the same optimizer settings
  (AdamW, LR, constant schedule, clip 1.0), the same initial weights, and the identical token ids in
  the identical order (our renderer's ids in our trainer's epoch order, handed to TRL pre-tokenised
  with a sequential sampler). Its per-step losses are compared with ours: they must agree.
- **TRL defaults**: `RewardConfig` defaults (padded batches, gradient checkpointing on, random
  order, bf16 on CUDA with bf16 weights as in ../shared/perf/trl_reference.py), except
  `max_length=None` (its 1,024 default would silently drop the long pairs ours trains on) and fp32 on
  CPU (TRL's bf16 default is a CUDA setting).

Throughput is real (non-pad) tokens per second of wall time and, because the CPU build machine is
shared with other jobs, also per CPU-second of this process (contention inflates wall time, much
less the process's CPU time). Steps after `--warmup` are timed.

    nice python bench/bench_training.py                        # tiny Qwen3, synthetic length mix
    nice python bench/bench_training.py --model smollm2-135m --data ultrafeedback --pairs 399 \\
        --max-length 512 --bs 16 --steps 4 --ckpt off           # the issue's matched CPU setting
    nice python bench/bench_training.py --model smollm2-135m --data hh-harmless --pairs 400 \\
        --max-length 512 --bs 16 --micro-pairs 4 --ckpt off --shared-prefix both --no-defaults
                                                                 # shared prefix vs plain vs TRL, pairs/s

`--shared-prefix both` adds a third row per round: our trainer with `shared_prefix=true` (each
pair's prompt encoded once, [prompt | chosen | rejected]) beside the plain layout
(`shared_prefix=false`) and TRL matched, all on the same pairs in the same order. Its headline is
**pairs per second** (a shared-prefix row computes fewer tokens for the same pairs), and its losses
must equal the plain row's.
    python bench/bench_training.py --model qwen3-0.6b --steps 10 --ckpt both   # on a GPU

Library names used (imported inside functions, so a moved module is a one-line fix below):
rewardops.training.load_config, rewardops.training.trainer.{Trainer, load_backbone},
rewardops.training.data.{PairEncoder, epoch_order}, rewardops.training.metrics.{non_embedding_params,
peak_flops}, rewardops.data.shards.write_pairs, rewardops.data.schema.{Message, PreferencePair},
rewardops.backbones.resolve_backbone, rewardops.rendering.ensure_distinct_pad.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(os.environ.get("REWARDOPS_SHARED", REPO.parent / "shared"))
WORDS = "the of and a to in is you that it he was for on are as with his they I at be this have from".split()
CATALOG_ENTRY = "demo-tiny-qwen3"  # any catalog entry: every field that matters is overridden below

QWEN3_SHAPES = {  # ../shared/perf/trl_reference.py
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16),
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128),
}


# --- data -------------------------------------------------------------------------------------

def synth_pairs(n: int, seed: int = 0, max_len: int = 2048, scale: float = 1.0):
    """Text pairs with ../shared/perf/trl_reference.py's length mix (lognormal prompt and responses,
    mean ~1,263 real tokens per pair; about one token per word with these tokenizers). `scale`
    shrinks every length (smoke runs)."""
    from rewardops.data.schema import Message, PreferencePair

    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = int(min(max_len // 2, max(16, rng.lognormvariate(5.3, 0.8))))
        c = int(min(max_len - p, max(8, rng.lognormvariate(5.6, 0.8))))
        r = int(min(max_len - p, max(8, rng.lognormvariate(5.6, 0.8))))
        p, c, r = (max(2, int(x * scale)) for x in (p, c, r))
        words = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
        out.append(PreferencePair(id=f"b{i}", source="bench", conversation=[Message("user", words(p))],
                                  chosen=words(c), rejected=words(r)))
    return out


def hh_harmless_pairs(n: int):
    """The first `n` usable pairs of Anthropic hh-rlhf harmless-base test (multi-turn transcripts)."""
    import gzip

    from rewardops.data.readers import map_hh_rlhf
    from rewardops.data.schema import Message, PreferencePair

    out = []
    with gzip.open(SHARED / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt") as fh:
        for row, line in enumerate(fh):
            try:
                cand = map_hh_rlhf(json.loads(line))
            except Exception:  # noqa: BLE001 - the 4 rows with an empty chosen transcript
                continue
            if not cand.chosen.strip() or not cand.rejected.strip() or cand.chosen == cand.rejected:
                continue
            out.append(PreferencePair(id=f"hh-{row}", source="hh-rlhf/harmless-base-test",
                                      conversation=[Message(r, c) for r, c in cand.conversation],
                                      chosen=cand.chosen, rejected=cand.rejected))
            if len(out) == n:
                break
    return out


def ultrafeedback_pairs(n: int):
    sys.path.insert(0, str(BENCH))
    from learns import read_ultrafeedback

    return read_ultrafeedback(SHARED / "data" / "ultrafeedback-sample" / "train_clean.jsonl")[:n]


def tokenizer_dir() -> Path | None:
    """The Qwen3 tokenizer: carried copy under bench/gpu/assets (device runs) or ../shared/models."""
    for d in (BENCH / "gpu" / "assets" / "qwen3-tokenizer", SHARED / "models" / "qwen3-tokenizer"):
        if (d / "tokenizer.json").exists():
            return d
    return None


def random_qwen3_folder(shape: str, root: Path, dtype: torch.dtype = torch.bfloat16) -> str:
    """A random-init Qwen3 sequence classifier of a paper shape (or `tiny`) with the Qwen3 tokenizer,
    saved (bf16 by default: half the bytes to write; both trainers load the same file) as an HF
    folder. Vocabulary 151,936 as the real Qwen3 models."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForSequenceClassification

    out = root / shape
    if (out / "config.json").exists():
        return str(out)
    tdir = tokenizer_dir()
    if tdir is None:
        raise FileNotFoundError("no Qwen3 tokenizer: copy ../shared/models/qwen3-tokenizer to bench/gpu/assets/")
    tok = AutoTokenizer.from_pretrained(tdir)
    cfg = Qwen3Config(vocab_size=151936, max_position_embeddings=40960, num_labels=1,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=False, **QWEN3_SHAPES[shape])
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # initialising 1.7B on a GPU takes seconds
        model = Qwen3ForSequenceClassification(cfg).to(dtype)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    return str(out)


def our_config(data_dir: str, out_dir: str, backbone: str, bs: int, steps: int, max_length: int,
               ckpt: bool, dtype: str = "auto", **extra: Any):
    try:  # the training package's one entry; older trees named it resolve_config
        from rewardops.training import load_config
    except ImportError:
        from rewardops.training.config import resolve_config as load_config

    overrides = {"data": data_dir, "out": out_dir, "backbone": backbone, "global_batch": bs, "max_steps": steps,
                 "mlflow": False, "export": False, "max_length": max_length,
                 "micro_batch_tokens": max(2 * max_length, extra.pop("micro_batch_tokens", 0) or 32768),
                 "epochs": 1000, "gradient_checkpointing": ckpt, "dtype": dtype, "schedule": "constant",
                 "trainable_layers": None, "lr": extra.pop("lr", 1e-5), "deepspeed": False, "zero_stage": 0,
                 "resume": False, "seed": 42}
    overrides.update(extra)
    return load_config(CATALOG_ENTRY, overrides)


def encode_usable(pairs, config):
    """Our encoder's ids for every pair (after the over-length policy), dropping the few pairs our
    trainer would drop (identical/empty), so both trainers see the same pair list."""
    from transformers import AutoTokenizer

    from rewardops.backbones import resolve_backbone
    from rewardops.rendering import ensure_distinct_pad
    from rewardops.training.data import PairEncoder

    # the tokenizer exactly as rewardops.training.trainer.load_backbone prepares it (without the model)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(config.backbone))
    ensure_distinct_pad(tokenizer)
    enc = PairEncoder(tokenizer, config.max_length, config.truncation, config.drop_identical, config.margin_key)
    kept, ids = [], []
    for i, p in enumerate(pairs):
        e = enc.encode(i, p)
        if e is not None:
            kept.append(p)
            ids.append((e.chosen, e.rejected))
    return kept, ids, dict(enc.counts)


def our_order(n: int, bs: int, steps: int, seed: int) -> list[list[int]]:
    """The indices of each global batch our trainer takes (trainer.next_global_batch's rule)."""
    from rewardops.training.data import epoch_order

    out, epoch, pos = [], 0, 0
    for _ in range(steps):
        if pos >= n:
            epoch, pos = epoch + 1, 0
        idx = epoch_order(n, seed, epoch)[pos : pos + bs]
        pos += len(idx)
        out.append([int(i) for i in idx])
    return out


# --- timing helpers -----------------------------------------------------------------------------

def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


OURS = "rewardops (packed, no pad)"
SHARED_IMPL = "rewardops shared prefix"


def summarize(impl: str, steps: list[dict], warmup: int, n_params: int, extra: dict) -> dict:
    timed = steps[warmup:] or steps[-1:]
    real = sum(s["real"] for s in timed)
    wall = sum(s["wall"] for s in timed)
    cpu = sum(s["cpu"] for s in timed)
    pairs = sum(s.get("pairs", 0) for s in timed)
    computed = sum(s.get("computed", s["real"]) for s in steps)
    row = {"impl": impl, **extra, "tok_s": real / wall, "tok_per_cpu_s": real / max(cpu, 1e-9),
           "pairs_s": pairs / wall, "pairs_per_cpu_s": pairs / max(cpu, 1e-9),
           "median_step_s": statistics.median(s["wall"] for s in timed), "timed_steps": len(timed),
           "padding_waste": 1 - sum(s["real"] for s in steps) / max(computed, 1),
           "losses": [s["loss"] for s in steps], "peak_mem_gib": _peak_gib(), "params_nonembed": n_params}
    from rewardops.training.metrics import peak_flops

    peak = peak_flops(torch.device("cuda")) if torch.cuda.is_available() else None
    if peak:
        row["mfu"] = 6 * n_params * row["tok_s"] / peak
        row["peak_tflops_used"] = peak / 1e12
    return row


# --- the runs -------------------------------------------------------------------------------------

def run_ours(config, steps: int, warmup: int) -> dict:
    from rewardops.training.metrics import non_embedding_params
    from rewardops.training.trainer import Trainer

    _free()
    trainer = Trainer(config, progress=False)
    rows = []
    for _ in range(steps):
        before = trainer.state.tokens_seen
        _sync()
        w, c = time.perf_counter(), time.process_time()
        m = trainer.train_step()
        _sync()
        rows.append({"wall": time.perf_counter() - w, "cpu": time.process_time() - c,
                     "real": trainer.state.tokens_seen - before, "loss": float(m["train/loss"]),
                     "pairs": int(m["train/pairs"])})
    n = non_embedding_params(trainer.model)
    impl = SHARED_IMPL if trainer.shared_prefix else OURS
    out = summarize(impl, rows, warmup, n,
                    {"grad_ckpt": config.gradient_checkpointing, "backend": trainer.backend, "dtype": trainer.dtype,
                     "shared_prefix": trainer.shared_prefix,
                     "counts": {k: v for k, v in trainer.encoder.counts.items() if k.startswith("shared_prefix")}})
    del trainer
    _free()
    return out


def run_trl(config, ids_in_order: list[tuple[list[int], list[int]]], bs: int, steps: int, warmup: int,
            mode: str, grad_ckpt: bool | None = None) -> dict:
    micro = config.micro_batch_size or bs  # matched: the same pairs per forward as ours, accumulated to bs
    accum = max(1, bs // micro) if mode == "matched" else 1
    """mode 'matched': our settings, our order; mode 'defaults': RewardConfig defaults (see top)."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from rewardops.training.metrics import non_embedding_params
    from rewardops.training.trainer import load_backbone

    _free()
    cuda = torch.cuda.is_available()
    torch.manual_seed(config.seed)  # as Trainer.__init__ does before load_backbone: same score-head init
    tokenizer, model = load_backbone(config)
    common = dict(output_dir=os.path.join(tempfile.gettempdir(), f"trl_bench_{os.getpid()}"),
                  per_device_train_batch_size=bs // accum, max_steps=steps, logging_steps=10**6, save_strategy="no",
                  report_to=[], use_cpu=not cuda, remove_unused_columns=False, dataloader_num_workers=0,
                  disable_tqdm=True)
    if mode == "matched":
        args = RewardConfig(**common, bf16=cuda, gradient_checkpointing=bool(config.gradient_checkpointing),
                            max_length=config.max_length, learning_rate=config.lr, lr_scheduler_type="constant",
                            warmup_steps=0, weight_decay=config.weight_decay, adam_beta1=config.adam_beta1,
                            adam_beta2=config.adam_beta2, adam_epsilon=config.adam_eps, max_grad_norm=config.grad_clip,
                            gradient_accumulation_steps=accum, seed=config.seed)
    else:
        if cuda:
            model = model.to(torch.bfloat16)  # as the shared reference: bf16 weights, TRL's bf16=True
        extra = {} if grad_ckpt is None else {"gradient_checkpointing": grad_ckpt}
        args = RewardConfig(**common, bf16=cuda, max_length=None, **extra)
    rows = [{"chosen_ids": c, "rejected_ids": r} for c, r in ids_in_order]
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    if mode == "matched":
        from torch.utils.data import SequentialSampler

        trainer._get_train_sampler = lambda *a, **k: SequentialSampler(trainer.train_dataset)
    steps_rows: list[dict] = []
    counted: list[tuple[int, int]] = []
    losses: list[float] = []
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        counted.append((int(batch["attention_mask"].sum()), int(batch["input_ids"].numel()), len(features)))
        return batch

    trainer.data_collator = counting
    compute_loss = trainer.compute_loss

    def recording(*a, **k):
        out = compute_loss(*a, **k)
        loss = out[0] if isinstance(out, tuple) else out
        losses.append(float(loss.detach()))
        return out

    trainer.compute_loss = recording

    class Timer(TrainerCallback):
        def on_step_begin(self, a, s, c, **k):
            _sync()
            self.t = (time.perf_counter(), time.process_time())

        def on_step_end(self, a, s, c, **k):
            _sync()
            steps_rows.append({"wall": time.perf_counter() - self.t[0], "cpu": time.process_time() - self.t[1]})

    trainer.add_callback(Timer())
    trainer.train()
    # HF Trainer collates a step's batches before on_step_begin, so TRL's collation is outside its
    # timed window (ours renders and packs inside): pair step i with its `accum` batches.
    for i, s in enumerate(steps_rows):
        mine = counted[i * accum : (i + 1) * accum]
        s["real"], s["computed"] = sum(m[0] for m in mine), sum(m[1] for m in mine)
        s["pairs"] = sum(m[2] for m in mine)
        step_losses = losses[i * accum : (i + 1) * accum]
        s["loss"] = sum(step_losses) / len(step_losses) if step_losses else float("nan")
    n = non_embedding_params(model)
    eff_ckpt = bool(trainer.args.gradient_checkpointing)
    name = "TRL matched (our settings, our order)" if mode == "matched" else "TRL RewardTrainer defaults"
    out = summarize(name, steps_rows, warmup, n, {"grad_ckpt": eff_ckpt, "bf16": bool(trainer.args.bf16),
                                                    "max_length": trainer.args.max_length})
    del trainer, model
    _free()
    return out


def guarded(fn, *a, **k) -> dict:
    """One failure (OOM, a version mismatch) must not cost the other rows."""
    try:
        return fn(*a, **k)
    except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
        _free()
        return {"error": f"{type(exc).__name__}: {str(exc)[:400]}"}


def bench_model(model_arg: str, pairs, *, bs: int, steps: int, warmup: int, max_length: int, ckpts: list[bool],
                defaults: bool, workdir: Path, emit=print, rounds: int = 1, micro_pairs: int | None = None,
                shared: tuple[bool, ...] = (False,)) -> list[dict]:
    """All rows for one model: ours and TRL matched per checkpointing setting, TRL defaults once."""
    from rewardops.data.shards import write_pairs

    if model_arg in QWEN3_SHAPES:
        backbone = random_qwen3_folder(model_arg, workdir / "backbones")
    else:
        from rewardops.backbones import resolve_backbone

        backbone = str(resolve_backbone(model_arg))
    probe = our_config("", str(workdir / "probe"), backbone, bs, steps, max_length, ckpts[0])
    kept, ids, counts = encode_usable(pairs, probe)
    data_dir = workdir / f"data-{model_arg}"
    if not data_dir.exists():
        write_pairs(kept, data_dir)
    order = our_order(len(kept), bs, steps, probe.seed)
    ids_in_order = [ids[i] for batch in order for i in batch]
    per_pair = [len(c) + len(r) for c, r in ids]
    info = {"model": model_arg, "pairs": len(kept), "encoder_counts": counts, "bs": bs, "steps": steps,
            "warmup": warmup, "max_length": max_length, "rounds": rounds,
            "mean_real_tokens_per_pair": sum(per_pair) / len(per_pair), "max_pair_tokens": max(per_pair)}
    emit({"info": info})
    rows = []
    for rnd in range(rounds):  # alternate ours / TRL so load drift on a shared machine hits both
        for ckpt in ckpts:
            for sp in shared:  # plain layout (the existing headline row) and/or the shared-prefix layout
                cfg = our_config(str(data_dir), str(workdir / f"out-{model_arg}-{ckpt}-{rnd}-{sp}"), backbone, bs, steps,
                                 max_length, ckpt, micro_batch_size=micro_pairs, shared_prefix=sp)
                row = guarded(run_ours, cfg, steps, warmup)
                row.update(model=model_arg, ckpt_setting=ckpt, round=rnd)
                emit(row)
                rows.append(row)
            ours = next((r for r in rows[::-1] if r.get("round") == rnd and r.get("ckpt_setting") == ckpt
                         and r.get("impl") == OURS), rows[-1])
            plain = ours if ours.get("impl") == OURS else None
            mine_shared = next((r for r in rows[::-1] if r.get("round") == rnd and r.get("ckpt_setting") == ckpt
                                and r.get("impl") == SHARED_IMPL), None)
            if plain is not None and mine_shared is not None and "losses" in plain and "losses" in mine_shared:
                mine_shared["max_abs_loss_diff_vs_plain"] = max(abs(a - b) for a, b in zip(plain["losses"], mine_shared["losses"]))
            cfg = our_config(str(data_dir), str(workdir / f"out-{model_arg}-{ckpt}-{rnd}-trl"), backbone, bs, steps,
                             max_length, ckpt, micro_batch_size=micro_pairs, shared_prefix=False)
            peer = guarded(run_trl, cfg, ids_in_order, bs, steps, warmup, "matched")
            peer.update(model=model_arg, ckpt_setting=ckpt, round=rnd)
            if "losses" in ours and "losses" in peer:
                diffs = [abs(a - b) for a, b in zip(ours["losses"], peer["losses"])]
                peer["max_abs_loss_diff_vs_ours"] = max(diffs) if diffs else None
            emit(peer)
            rows.append(peer)
        if defaults:
            cfg = our_config(str(data_dir), str(workdir / f"out-{model_arg}-d-{rnd}"), backbone, bs, steps, max_length, True,
                             micro_batch_size=micro_pairs, shared_prefix=False)
            d = guarded(run_trl, cfg, ids_in_order, bs, steps, warmup, "defaults")
            d.update(model=model_arg, ckpt_setting="TRL default (on)", round=rnd)
            emit(d)
            rows.append(d)
    for r in rows:
        r["_info"] = info
    return rows


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def aggregate(rows: list[dict]) -> list[dict]:
    """One row per (model, run, checkpointing): the median over rounds of each rate."""
    keys, out = [], []
    for r in rows:
        k = (r.get("model"), r.get("impl"), str(r.get("ckpt_setting")))
        if k not in keys:
            keys.append(k)
    for k in keys:
        mine = [r for r in rows if (r.get("model"), r.get("impl"), str(r.get("ckpt_setting"))) == k]
        ok = [r for r in mine if "tok_s" in r]
        if not ok:
            out.append({**mine[0], "rounds": len(mine)})
            continue
        agg = dict(ok[0])
        for f in ("tok_s", "tok_per_cpu_s", "pairs_s", "pairs_per_cpu_s", "median_step_s", "mfu", "peak_mem_gib",
                  "max_abs_loss_diff_vs_ours", "max_abs_loss_diff_vs_plain"):
            if f in agg:
                agg[f] = _median([r.get(f) for r in ok]) if not f.startswith("max_abs") else max(r.get(f) or 0 for r in ok)
        agg["rounds"] = len(ok)
        agg["tok_s_each_round"] = [round(r["tok_s"]) for r in ok]
        out.append(agg)
    return out


def ratios(rows: list[dict]) -> list[dict]:
    """Per model and checkpointing setting: ours / TRL matched (headline) and ours / TRL defaults,
    each the median of the per-round ratios (a round runs both back to back)."""
    out = []
    models = []
    for r in rows:
        if r.get("model") not in models:
            models.append(r.get("model"))
    for m in models:
        mine = [r for r in rows if r.get("model") == m]
        ckpts = []
        for r in mine:
            if r.get("impl") == OURS and r["ckpt_setting"] not in ckpts:
                ckpts.append(r["ckpt_setting"])
        for ck in ckpts:
            per = {"matched": [], "matched_cpu": [], "defaults": [], "defaults_cpu": []}
            loss = []
            for r in mine:
                if not (r.get("impl") == OURS and r["ckpt_setting"] == ck and "tok_s" in r):
                    continue
                rnd = r.get("round", 0)
                t = next((x for x in mine if x.get("impl", "").startswith("TRL matched") and x.get("ckpt_setting") == ck
                          and x.get("round", 0) == rnd and "tok_s" in x), None)
                d = next((x for x in mine if x.get("impl") == "TRL RewardTrainer defaults" and x.get("round", 0) == rnd
                          and "tok_s" in x), None)
                if t:
                    per["matched"].append(r["tok_s"] / t["tok_s"])
                    per["matched_cpu"].append(r["tok_per_cpu_s"] / t["tok_per_cpu_s"])
                    loss.append(t.get("max_abs_loss_diff_vs_ours"))
                if d:
                    per["defaults"].append(r["tok_s"] / d["tok_s"])
                    per["defaults_cpu"].append(r["tok_per_cpu_s"] / d["tok_per_cpu_s"])
            out.append({"model": m, "grad_ckpt": ck,
                        "ratio_matched": _median(per["matched"]), "ratio_matched_cpu_s": _median(per["matched_cpu"]),
                        "ratio_defaults": _median(per["defaults"]), "ratio_defaults_cpu_s": _median(per["defaults_cpu"]),
                        "ratio_matched_each_round": [round(x, 2) for x in per["matched"]],
                        "ratio_defaults_each_round": [round(x, 2) for x in per["defaults"]],
                        "max_abs_loss_diff": max((x for x in loss if x is not None), default=None)})
    return out


def prefix_ratios(rows: list[dict]) -> list[dict]:
    """Per model and checkpointing setting, pairs/s ratios of the shared-prefix row, each the median
    of the per-round ratios: vs our plain layout (the issue's >= 1.4x on hh-rlhf harmless, >= 1.0x on
    UltraFeedback) and vs TRL matched."""
    out = []
    keys = []
    for r in rows:
        if r.get("impl") == SHARED_IMPL and (r.get("model"), r.get("ckpt_setting")) not in keys:
            keys.append((r.get("model"), r.get("ckpt_setting")))
    for model, ck in keys:
        per: dict[str, list[float]] = {"plain": [], "plain_cpu": [], "trl": [], "trl_cpu": [], "plain_vs_trl": []}
        loss = []
        for r in rows:
            if not (r.get("impl") == SHARED_IMPL and r.get("model") == model and r.get("ckpt_setting") == ck and "pairs_s" in r):
                continue
            same = [x for x in rows if x.get("model") == model and x.get("ckpt_setting") == ck
                    and x.get("round") == r.get("round") and "pairs_s" in x]
            plain = next((x for x in same if x.get("impl") == OURS), None)
            trl = next((x for x in same if str(x.get("impl", "")).startswith("TRL matched")), None)
            if plain:
                per["plain"].append(r["pairs_s"] / plain["pairs_s"])
                per["plain_cpu"].append(r["pairs_per_cpu_s"] / plain["pairs_per_cpu_s"])
                loss.append(r.get("max_abs_loss_diff_vs_plain"))
            if trl:
                per["trl"].append(r["pairs_s"] / trl["pairs_s"])
                per["trl_cpu"].append(r["pairs_per_cpu_s"] / trl["pairs_per_cpu_s"])
                if plain:
                    per["plain_vs_trl"].append(plain["pairs_s"] / trl["pairs_s"])
        out.append({"model": model, "grad_ckpt": ck,
                    "shared_vs_plain": _median(per["plain"]), "shared_vs_plain_cpu_s": _median(per["plain_cpu"]),
                    "shared_vs_trl_matched": _median(per["trl"]), "shared_vs_trl_matched_cpu_s": _median(per["trl_cpu"]),
                    "plain_vs_trl_matched": _median(per["plain_vs_trl"]),
                    "shared_vs_plain_each_round": [round(x, 2) for x in per["plain"]],
                    "max_abs_loss_diff_vs_plain": max((x for x in loss if x is not None), default=None)})
    return out


def markdown(rows: list[dict]) -> str:
    lines = ["| model | run | grad ckpt | pairs/s | real tokens/s | tokens/CPU-s | median step s | pad waste | peak GiB | MFU | rounds |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in aggregate(rows):
        if "error" in r:
            lines.append(f"| {r.get('model')} | {r.get('impl', '?')} | {r.get('ckpt_setting')} | error: {r['error'][:80]} | | | | | | | |")
            continue
        mfu = f"{r['mfu']:.3f}" if "mfu" in r else "–"
        lines.append(f"| {r['model']} | {r['impl']} | {'on' if r['grad_ckpt'] else 'off'} | {r.get('pairs_s', 0):.3f} | {r['tok_s']:,.0f} | "
                     f"{r['tok_per_cpu_s']:,.0f} | {r['median_step_s']:.2f} | {r['padding_waste']:.1%} | "
                     f"{r['peak_mem_gib'] if r['peak_mem_gib'] is not None else '–'} | {mfu} | {r['rounds']} |")
    lines += ["", "| model | grad ckpt | ours / TRL matched (wall) | (CPU-s) | per round (wall) | max loss diff vs matched | ours / TRL defaults (wall) | (CPU-s) |",
              "|---|---|---|---|---|---|---|---|"]
    for q in ratios(rows):
        f = lambda k, fmt="{:.2f}x": fmt.format(q[k]) if q.get(k) is not None else "–"  # noqa: E731
        lines.append(f"| {q['model']} | {'on' if q['grad_ckpt'] else 'off'} | **{f('ratio_matched')}** | {f('ratio_matched_cpu_s')} | {q['ratio_matched_each_round']} | "
                     f"{f('max_abs_loss_diff', '{:.1e}')} | {f('ratio_defaults')} | {f('ratio_defaults_cpu_s')} |")
    shared = prefix_ratios(rows)
    if shared:
        lines += ["", "| model | grad ckpt | shared prefix / plain (pairs/s, wall) | (CPU-s) | per round | shared / TRL matched | (CPU-s) | plain / TRL matched | max loss diff vs plain |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for q in shared:
            f = lambda k, fmt="{:.2f}x": fmt.format(q[k]) if q.get(k) is not None else "–"  # noqa: E731
            lines.append(f"| {q['model']} | {'on' if q['grad_ckpt'] else 'off'} | **{f('shared_vs_plain')}** | {f('shared_vs_plain_cpu_s')} | "
                         f"{q['shared_vs_plain_each_round']} | {f('shared_vs_trl_matched')} | {f('shared_vs_trl_matched_cpu_s')} | "
                         f"{f('plain_vs_trl_matched')} | {f('max_abs_loss_diff_vs_plain', '{:.1e}')} |")
    return "\n".join(lines)


def device_name(threads: int) -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({os.cpu_count()} cores, {threads} threads, load average {os.getloadavg()[0]:.1f} at start)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-qwen3", help="tiny-qwen3 | smollm2-135m | tiny | qwen3-0.6b | qwen3-1.7b (random-init Qwen3 shapes) | a folder")
    ap.add_argument("--data", default="synth", choices=["synth", "ultrafeedback", "hh-harmless"])
    ap.add_argument("--pairs", type=int, default=48)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=4096)
    ap.add_argument("--ckpt", default="both", choices=["both", "on", "off"])
    ap.add_argument("--micro-pairs", type=int, default=None,
                    help="pairs per forward (ours: micro_batch_size; TRL matched: per-device batch with accumulation to --bs)")
    ap.add_argument("--no-defaults", action="store_true", help="skip the TRL-defaults row")
    ap.add_argument("--shared-prefix", default="off", choices=["off", "on", "both"],
                    help="our trainer's layout: plain (off), [prompt | chosen | rejected] (on), or both rows per round")
    ap.add_argument("--scale", type=float, default=1.0, help="shrink the synthetic lengths (smoke runs)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every row, alternating ours and TRL")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)

    import transformers
    import trl

    device = device_name(args.threads)
    print(f"device: {device}; torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}", flush=True)
    pairs = {"synth": lambda: synth_pairs(args.pairs, scale=args.scale), "ultrafeedback": lambda: ultrafeedback_pairs(args.pairs),
             "hh-harmless": lambda: hh_harmless_pairs(args.pairs)}[args.data]()
    shared = {"off": (False,), "on": (True,), "both": (False, True)}[args.shared_prefix]
    ckpts = {"both": [False, True], "on": [True], "off": [False]}[args.ckpt]
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        rows = bench_model(args.model, pairs, bs=args.bs, steps=args.steps, warmup=args.warmup,
                           max_length=args.max_length, ckpts=ckpts, defaults=not args.no_defaults, workdir=Path(tmp), rounds=args.rounds, micro_pairs=args.micro_pairs, shared=shared,
                           emit=lambda r: print(json.dumps(r, default=str), flush=True))
    print()
    print(markdown(rows))
    load_end = os.getloadavg()[0]
    print(f"\n{time.time() - t0:.0f} s; load average at end {load_end:.1f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"device": device, "argv": sys.argv[1:], "load_end": load_end,
                                                 "rows": rows, "aggregate": aggregate(rows), "ratios": ratios(rows),
                                                 "shared_prefix_ratios": prefix_ratios(rows)}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
