"""Step 2 of bench/gpu/run.sh: correctness of the GPU paths. Writes correctness.json.

Checks, at the Qwen3-0.6B shape (random init, bf16) unless --smoke (tiny shape, CPU-sized):

packed_vs_unpacked
    Rewards of 8 pairs packed into one row through rewardops' packed attention (varlen on CUDA)
    against each sequence run alone through transformers' standard sdpa path, both under bf16
    autocast as the trainer runs. Tolerance, stated and self-calibrated: the same sequences in fp32
    (TF32 off) give the reference; e_bf16 = max |unpacked bf16 - fp32| is the error bf16 itself
    makes. Packing passes if max |packed - unpacked| <= 2 * e_bf16 (by the triangle inequality two
    bf16 computations of the same function, each within e_bf16 of the exact one, differ by at most
    2 * e_bf16; a real leak across documents is orders of magnitude larger: NOTES.md measured a
    relative 3.65), and e_bf16 itself must stay below 5% of the reward RMS.
boundary_probe (the probe of ../shared/perf/NOTES.md)
    Three documents A, B, C packed in one row; A is replaced by A' (same length, other tokens).
    B's and C's rewards must not move (they are expected bit-identical with varlen). Controls in
    the same run, through transformers' sdpa path on the same row: plain causal attention over the
    whole row must move B (so the probe can see a leak); per-document position_ids alone (what
    NOTES.md found to leak with transformers 5.17 on the device) is reported, not judged: newer
    transformers detect packing from position ids (on CPU with 5.24 it did not leak).
batch_invariance
    rewardops.evaluation.engine.HFRewardModel in bf16 scores the same 32 sequences with batch size
    1, 8 and 64. Passes if every batch size is within 2 * e1 of batch size 1, e1 = max |bf16 batch 1 -
    fp32 batch 1| (the bf16 error itself), by the same argument as above.
long_pair_16k
    rewardops' Trainer trains 2 steps on one pair whose chosen and rejected are 16,384 tokens each
    (32,768 tokens in one packed micro-batch, the paper's max length), gradient checkpointing on,
    bf16: passes if it does not run out of memory and the loss is finite; reports peak memory.

Library names used: rewardops.training.attention.{packed_rewards, split_model, resolve_backend},
rewardops.training.packing.pack, rewardops.training.data.EncodedPair,
rewardops.rendering.ensure_distinct_pad, rewardops.evaluation.engine.HFRewardModel,
rewardops.evaluation.modelref.resolve_model, and bench_training's (our_config, run_ours).

    python bench/gpu/correctness.py OUT_DIR [--smoke]
"""

from __future__ import annotations

import argparse
import math
import sys
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import CUDA, NEEDS_CUDA, Report  # noqa: E402

import torch  # noqa: E402

DEV = torch.device("cuda" if CUDA else "cpu")


def load(folder: str, dtype=torch.float32):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardops.rendering import ensure_distinct_pad

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=dtype)
    ensure_distinct_pad(tok, model)
    model.config.use_cache = False
    return tok, model.to(DEV).eval()


def autocast(enabled: bool = True):
    return torch.autocast(DEV.type, dtype=torch.bfloat16) if enabled else nullcontext()


@torch.no_grad()
def single_rewards(model, seqs, bf16: bool) -> list[float]:
    model.set_attn_implementation("sdpa")
    out = []
    for s in seqs:
        with autocast(bf16):
            out.append(float(model(input_ids=torch.tensor([s], device=DEV)).logits[0, 0].float()))
    return out


@torch.no_grad()
def packed(model, pairs, backend: str) -> list[float]:
    from rewardops.training.attention import packed_rewards
    from rewardops.training.data import EncodedPair
    from rewardops.training.packing import pack

    batch = pack([EncodedPair(i, c, r) for i, (c, r) in enumerate(pairs)]).to(DEV)
    with autocast(True):
        r = packed_rewards(model, batch, backend)
    return [float(x) for x in r.reshape(-1).cpu()]  # [c0, r0, c1, r1, ...]


def rms(xs) -> float:
    return math.sqrt(sum(x * x for x in xs) / max(len(xs), 1))


def maxdiff(a, b) -> float:
    return max(abs(x - y) for x, y in zip(a, b))


def fp32_reference(model, seqs) -> list[float]:
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return single_rewards(model, seqs, bf16=False)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def check_packed(folder: str, smoke: bool) -> dict:
    from rewardops.training.attention import resolve_backend

    tok, model = load(folder)
    pairs = common.seq_ids(8, tok, seed=1, scale=0.1 if smoke else 1.0)
    seqs = [s for p in pairs for s in p]
    backend = resolve_backend("auto", DEV)
    ref = fp32_reference(model, seqs)
    unpacked = single_rewards(model, seqs, bf16=True)
    got = packed(model, pairs, backend)
    e_bf16 = maxdiff(unpacked, ref)
    d = maxdiff(got, unpacked)
    res = {"backend": backend, "sequences": len(seqs), "tokens": sum(map(len, seqs)),
           "max_abs_packed_vs_unpacked_bf16": d, "max_abs_unpacked_bf16_vs_fp32": e_bf16,
           "max_abs_packed_vs_fp32": maxdiff(got, ref), "reward_rms_fp32": rms(ref),
           "tolerance": 2 * e_bf16, "rule": "packed-unpacked <= 2*e_bf16 and e_bf16 <= 0.05*rms",
           "pass": bool(d <= 2 * e_bf16 + 1e-6 and e_bf16 <= 0.05 * rms(ref))}
    if backend != "varlen":
        return {**NEEDS_CUDA, "cpu_dry_run": res}
    return res


def check_boundary(folder: str, smoke: bool) -> dict:
    from rewardops.training.attention import resolve_backend, split_model

    tok, model = load(folder)
    (a, b), (c, _) = common.seq_ids(2, tok, seed=2, scale=0.1 if smoke else 0.5)
    g = torch.Generator().manual_seed(3)
    a2 = [a[0]] + torch.randint(100, 150000, (len(a) - 1,), generator=g).tolist()  # same length, other tokens
    backend = resolve_backend("auto", DEV)
    # three documents: pack() takes pairs; [A, B] and [C, C] -> documents A, B, C, C
    r1 = packed(model, [(a, b), (c, c)], backend)
    r2 = packed(model, [(a2, b), (c, c)], backend)
    moved = maxdiff(r1[1:], r2[1:])
    alone = single_rewards(model, [b, c], bf16=True)

    # controls through transformers' standard sdpa path on the same packed row:
    # (1) plain causal attention over the whole row (no position ids): B must see A's change, which
    #     shows the probe can detect a leak; (2) per-document position_ids only, what NOTES.md found
    #     to leak on the device (newer transformers detect packing from position ids and do not).
    model.set_attn_implementation("sdpa")
    base, head = split_model(model)

    @torch.no_grad()
    def reward_b(first, with_pos: bool):
        docs = [first, b, c]
        ids = torch.tensor([t for d in docs for t in d], device=DEV)[None]
        kw = {}
        if with_pos:
            kw["position_ids"] = torch.cat([torch.arange(len(d)) for d in docs]).to(DEV)[None]
        with autocast(True):
            h = base(input_ids=ids, use_cache=False, **kw).last_hidden_state[0]
        return float(head(h[len(first) + len(b) - 1]).float()[0])

    sensitivity = abs(reward_b(a, False) - reward_b(a2, False))
    pos_only = abs(reward_b(a, True) - reward_b(a2, True))
    scale = max(rms(r1), 1e-6)
    res = {"backend": backend, "lengths": [len(a), len(b), len(c)],
           "max_abs_change_of_B_C_when_A_changes": moved, "bit_identical": moved == 0.0,
           "B_packed_vs_alone_bf16": abs(r1[1] - alone[0]), "reward_rms": rms(r1),
           "control_plain_causal_row_change_of_B": sensitivity,
           "control_sdpa_position_ids_only_change_of_B": pos_only,
           "transformers_position_ids_path_leaks": bool(pos_only > 1e-3 * scale),
           "rule": "change of B,C <= 1e-6*rms, and the plain-causal control moves B by > 1e-3*rms",
           "pass": bool(moved <= 1e-6 * scale and sensitivity > 1e-3 * scale)}
    if backend != "varlen":
        return {**NEEDS_CUDA, "cpu_dry_run": res}
    return res


def check_batch(folder: str, smoke: bool) -> dict:
    from rewardops.evaluation.engine import HFRewardModel
    from rewardops.evaluation.modelref import resolve_model

    ref = resolve_model(folder)
    tok_scorer = HFRewardModel(ref, dtype="float32", batch_size=1)
    pairs = common.seq_ids(16, tok_scorer.tokenizer, seed=4, scale=0.1 if smoke else 1.0)
    seqs = [s for p in pairs for s in p]
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    fp32 = tok_scorer.score_ids(seqs)
    torch.backends.cuda.matmul.allow_tf32 = tf32
    del tok_scorer
    common.free()
    scorer = HFRewardModel(ref, dtype="bfloat16", batch_size=1)
    by_bs = {}
    for bs in (1, 8, 64):
        scorer.batch_size = bs
        by_bs[bs] = scorer.score_ids(seqs)
    e1 = maxdiff(by_bs[1], fp32)
    res = {"device": scorer.device, "dtype": "bfloat16", "sequences": len(seqs), "tokens": sum(map(len, seqs)),
           "max_abs_bs1_bf16_vs_fp32": e1, "reward_rms_fp32": rms(fp32),
           "max_abs_vs_bs1": {str(bs): maxdiff(by_bs[bs], by_bs[1]) for bs in (8, 64)},
           "max_abs_vs_fp32": {str(bs): maxdiff(by_bs[bs], fp32) for bs in (8, 64)},
           "tolerance": 2 * e1, "rule": "|bs_k - bs_1| <= 2*e1 and e1 <= 0.05*rms"}
    res["pass"] = bool(all(v <= 2 * e1 + 1e-6 for v in res["max_abs_vs_bs1"].values()) and e1 <= 0.05 * rms(fp32))
    return res if CUDA else {**NEEDS_CUDA, "cpu_dry_run": res}


def check_long(folder: str, smoke: bool, work: Path) -> dict:
    from bench_training import our_config, run_ours

    from rewardops.data.schema import Message, PreferencePair

    n = 1024 if smoke else 16384
    words = lambda k, w: " ".join([w] * k)  # noqa: E731 - one token per word with the Qwen3 tokenizer
    pair = PreferencePair(id="long", source="bench", conversation=[Message("user", words(n // 2, "the"))],
                          chosen=words(n, "of"), rejected=words(n, "and"))
    data = common.write_data([pair], work / "long-data")
    cfg = our_config(data, str(work / "long-out"), folder, 1, 2, n, True, micro_batch_tokens=2 * n)
    row = run_ours(cfg, steps=2, warmup=1)
    res = {"max_length": n, "tokens_per_step": 2 * n, "grad_ckpt": True,
           "dtype": row.get("dtype"), "backend": row.get("backend"), "losses": row["losses"],
           "step_s": row["median_step_s"], "peak_mem_gib": row["peak_mem_gib"],
           "pass": all(math.isfinite(x) for x in row["losses"])}
    return res if CUDA else {**NEEDS_CUDA, "cpu_dry_run": res}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--work", default="/tmp/rewardops-gpu-work")
    args = ap.parse_args()
    rep = Report(args.out, "correctness", args.smoke)
    rep.data["varlen_compat"] = common.varlen_compat()
    work = Path(args.work)
    shape = common.shape_for(args.smoke, "qwen3-0.6b")
    folder = common.make_backbone(shape, work / "backbones")
    rep.data["shape"] = shape
    rep.check("packed_vs_unpacked", lambda: check_packed(folder, args.smoke))
    rep.check("boundary_probe", lambda: check_boundary(folder, args.smoke))
    rep.check("batch_invariance", lambda: check_batch(folder, args.smoke))
    rep.check("long_pair_16k", lambda: check_long(folder, args.smoke, work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
