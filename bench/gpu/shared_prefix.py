"""Step `prefix` of bench/gpu/run.sh: the shared-prefix layout on the GPU. Writes shared_prefix.json.

The GPU path of `rewardops.attention` is FlexAttention with the row layout's block mask (each
response sees its prompt and itself, never the other response or another pair). Checks, at the
Qwen3-0.6B shape (random init) unless --smoke (tiny shape on CPU, where FlexAttention runs its
unfused reference forward only):

exact_fp32
    hh-rlhf harmless pairs (real multi-turn data, carried in bench/gpu/assets/shared/data), 6 pairs
    in one row: rewards, per-pair BT losses and gradients with the shared-prefix layout (flex)
    against the plain layout (varlen on CUDA; segments on CPU), fp32 with TF32 off. Reports the max
    differences; passes if rewards and losses are within 1e-4 and the gradients' relative error
    within 1e-4 (on CPU, fp32: 1e-5, the unit tests' bound; the smoke run checks the forward only).
exact_bf16
    The same under bf16 autocast as the trainer runs, judged as correctness.py does: within 2 * e,
    e = the bf16 error of the plain layout itself against fp32.
no_leak
    Editing pair 0's rejected response moves no reward or hidden state of pair 0's prompt and chosen
    response, nor of pair 1 (flex).
train_throughput
    bench_training's rows, same run: our plain layout, our shared-prefix layout and TRL matched, on
    hh-rlhf harmless and UltraFeedback at 512 tokens, activation checkpointing on (the final
    recipe's setting), bf16. Headline: pairs/s of shared prefix / plain (issue: >= 1.4x on hh-rlhf,
    never below 1.0x on UltraFeedback), and both against TRL matched.
bon_scoring
    bench_scoring's PPE-shaped best-of-32 items (real MMLU-Pro prompts, GPT-4o CoT answers), bf16:
    the engine with shared_prefix on vs off vs the padded peer, same model, same run (issue:
    >= 1.5x over our plain scoring).

Library names used: rewardops.training.attention.{packed_rewards}, rewardops.attention.packed_hidden,
rewardops.training.packing.pack, rewardops.training.data.PairEncoder, rewardops.evaluation.engine.open_engine,
and bench_training's / bench_scoring's helpers.

    python bench/gpu/shared_prefix.py OUT_DIR [--smoke] [--work DIR] [--only exact_fp32,no_leak,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import CUDA, Report  # noqa: E402

import torch  # noqa: E402

DEV = torch.device("cuda" if CUDA else "cpu")
PLAIN_BACKEND = "varlen" if CUDA else "segments"


def backbone(folder: str):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardops.rendering import ensure_distinct_pad

    tok = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)
    ensure_distinct_pad(tok, model)
    model.config.use_cache = False
    return tok, model.to(DEV)


def encoded_hh(tok, n: int, max_length: int = 512):
    from bench_training import hh_harmless_pairs

    from rewardops.training.data import PairEncoder

    pairs = hh_harmless_pairs(n)
    shared = PairEncoder(tok, max_length, shared_prefix=True).encode_many(list(range(len(pairs))), pairs)
    return shared, [dataclasses.replace(p, prefix=0) for p in shared]


def run_layout(model, pairs, backend: str, bf16: bool, grads: bool):
    from rewardops.training.attention import packed_rewards
    from rewardops.training.packing import pack

    model.zero_grad(set_to_none=True)
    ctx = torch.autocast(DEV.type, dtype=torch.bfloat16) if bf16 else torch.autocast(DEV.type, enabled=False)
    with torch.set_grad_enabled(grads), ctx:
        rewards = packed_rewards(model, pack(pairs).to(DEV), backend)
    per_pair = -torch.nn.functional.logsigmoid(rewards[:, 0] - rewards[:, 1])
    g = None
    if grads:
        per_pair.sum().backward()
        g = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
    return rewards.detach().float().cpu(), per_pair.detach().float().cpu(), g


def exact(folder: str, smoke: bool, bf16: bool) -> dict:
    tok, model = backbone(folder)
    shared, plain = encoded_hh(tok, 6)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    grads = CUDA  # FlexAttention has no backward on CPU
    r0, l0, g0 = run_layout(model, plain, PLAIN_BACKEND, bf16, grads)
    r1, l1, g1 = run_layout(model, shared, "flex", bf16, grads)
    out = {"pairs": len(shared), "tokens_plain": sum(p.tokens for p in plain), "tokens_shared": sum(p.tokens for p in shared),
           "max_abs_reward_diff": float((r1 - r0).abs().max()), "max_abs_loss_diff": float((l1 - l0).abs().max()),
           "reward_rms": float(r0.pow(2).mean().sqrt())}
    if g0 is not None:
        out["grad_rel_err"] = float((g1 - g0).norm() / g0.norm().clamp_min(1e-12))
    if bf16:
        r_ref, _, _ = run_layout(model, plain, PLAIN_BACKEND, False, False)
        e = float((r0 - r_ref).abs().max())
        out["e_bf16_plain_vs_fp32"] = e
        out["pass"] = out["max_abs_reward_diff"] <= 2 * e + 1e-6
    else:
        tol = 1e-4 if CUDA else 1e-5
        out["tolerance"] = tol
        out["pass"] = out["max_abs_reward_diff"] <= tol and out["max_abs_loss_diff"] <= tol and out.get("grad_rel_err", 0.0) <= tol
    return out


@torch.no_grad()
def no_leak(folder: str) -> dict:
    from rewardops.attention import packed_hidden
    from rewardops.training.attention import packed_rewards, split_model
    from rewardops.training.packing import pack

    tok, model = backbone(folder)
    pairs, _ = encoded_hh(tok, 2)
    p0 = pairs[0]
    edited = list(p0.rejected)
    for i in range(p0.prefix, len(edited)):
        edited[i] = (edited[i] * 7 + 13) % 30000
    hidden = []
    for ps in (pairs, [dataclasses.replace(p0, rejected=edited), pairs[1]]):
        batch = pack(ps).to(DEV)
        packed_rewards(model, batch, "flex")
        hidden.append(packed_hidden(split_model(model)[0], batch.input_ids, batch.layout, "flex").float().cpu())
    rows = torch.ones(hidden[0].shape[0], dtype=torch.bool)
    rows[len(p0.chosen) : len(p0.chosen) + len(p0.rejected) - p0.prefix] = False
    kept = float((hidden[0][rows] - hidden[1][rows]).abs().max())
    moved = float((hidden[0][~rows] - hidden[1][~rows]).abs().max())
    return {"max_change_elsewhere": kept, "change_in_edited_response": moved, "pass": kept <= 1e-5 and moved > 1e-3}


def train_rows(folder_shape: str, smoke: bool, work: Path, steps: int, warmup: int) -> dict:
    from bench_training import bench_model, hh_harmless_pairs, prefix_ratios, ultrafeedback_pairs

    rows = []
    for name, pairs in (("hh-harmless", hh_harmless_pairs(64 if not smoke else 16)),
                        ("ultrafeedback", ultrafeedback_pairs(64 if not smoke else 16))):
        got = bench_model(folder_shape, pairs, bs=8, steps=steps, warmup=warmup, max_length=512, ckpts=[not smoke],
                          defaults=False, workdir=work / f"prefix-{name}", shared=(False, True), micro_pairs=None)
        for r in got:
            r["data"] = name
            r["model"] = f"{folder_shape} {name}"
        rows += got
    return {"rows": rows, "shared_prefix_ratios": prefix_ratios(rows),
            "status": "ok" if not any("error" in r for r in rows) else "partial"}


def bon(smoke: bool, work: Path) -> dict:
    from bench_scoring import bon_items

    from rewardops.evaluation.engine import open_engine

    folder = common.make_backbone(common.shape_for(smoke, "qwen3-0.6b"), work / "backbones")
    items = bon_items(2 if smoke else 16)
    engines = {sp: open_engine(folder, cache_path=None, batch_size=64, show_progress=False, shared_prefix=sp)[0]
               for sp in (False, True)}
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    peer = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.bfloat16 if CUDA else torch.float32).to(DEV).eval()
    tokens = sum(len(engines[False].scorer.render(it.messages(i))) for it in items for i in range(len(it.responses)))
    times: dict[str, list[float]] = {"peer": [], "plain": [], "shared": []}
    scores = {}
    for _ in range(2):
        for name in ("peer", "plain", "shared"):
            common.sync()
            t = time.perf_counter()
            if name == "peer":
                with torch.no_grad():
                    got = peer_score_sequences_on(peer, tok, items)
            else:
                by = engines[name == "shared"].score_items(items, label=name)
                got = [x for it in items for x in by[it.id]]
            common.sync()
            times[name].append(time.perf_counter() - t)
            scores[name] = got
    best = {k: min(v) for k, v in times.items()}
    return {"prompts": len(items), "responses_per_prompt": 32, "real_tokens": tokens, "seconds": times,
            "real_tokens_per_s": {k: tokens / v for k, v in best.items()},
            "ratio_shared_vs_plain": best["plain"] / best["shared"], "ratio_shared_vs_peer": best["peer"] / best["shared"],
            "max_abs_score_diff_shared_vs_plain": max(abs(a - b) for a, b in zip(scores["shared"], scores["plain"]))}


def peer_score_sequences_on(model, tok, items):
    """bench_scoring.peer_score_sequences with the inputs on the model's device."""
    if tok.pad_token_id is None:
        tok.pad_token_id = tok.eos_token_id
    model.config.pad_token_id = tok.pad_token_id
    texts = [tok.apply_chat_template(it.messages(i), tokenize=False) for it in items for i in range(len(it.responses))]
    out = []
    for start in range(0, len(texts), 8):
        enc = tok(texts[start : start + 8], padding=True, return_tensors="pt", add_special_tokens=False).to(DEV)
        out += model(**enc).logits[:, 0].float().tolist()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--work", default="/tmp/rewardops-gpu-work")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", default="exact_fp32,exact_bf16,no_leak,train_throughput,bon_scoring")
    args = ap.parse_args()
    only = set(args.only.split(","))
    work = Path(args.work)
    rep = Report(args.out, "shared_prefix", args.smoke)
    shape = common.shape_for(args.smoke, "qwen3-0.6b")
    folder = common.make_backbone(shape, work / "backbones")
    steps, warmup = (2, 1) if args.smoke else (args.steps, args.warmup)
    checks = {
        "exact_fp32": lambda: exact(folder, args.smoke, bf16=False),
        "exact_bf16": lambda: exact(folder, args.smoke, bf16=True) if CUDA else dict(common.NEEDS_CUDA),
        "no_leak": lambda: no_leak(folder),
        "train_throughput": lambda: train_rows(shape, args.smoke, work, steps, warmup),
        "bon_scoring": lambda: bon(args.smoke, work),
    }
    for name, fn in checks.items():
        if name in only:
            rep.check(name, fn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
