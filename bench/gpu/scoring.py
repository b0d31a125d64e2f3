"""Step 4 of bench/gpu/run.sh: scoring throughput vs peer-style padded batches of 8.

Same model (random-init Qwen3-0.6B shape, bf16, sdpa), same sequences (chosen and rejected of
`--pairs` pairs of the reference length mix, rendered once to token ids; tokenisation is outside
both timings), same process. Peer: reward-bench `run_rm.py` style: padded batches of 8 in dataset
order with an attention mask, rejected pass then chosen pass, HF pooling of the logits; and the
peer under our batch size (32) as the matched column. Ours:
rewardops.evaluation.engine.HFRewardModel.score_ids (length-sorted batches under a token budget,
right padding without a mask, last-token gather) at the engine's default batch size (32, as
open_engine) and at 256 under the same token budget. Each is timed `--repeats` times after a
warm-up; the best is kept. Scores of ours and the peer are compared (bf16: small differences are
kernel-order rounding). Writes scoring.json.

Library names used: rewardops.evaluation.engine.HFRewardModel, rewardops.evaluation.modelref.resolve_model,
rewardops.training.metrics.{non_embedding_params, peak_flops}.

    python bench/gpu/scoring.py OUT_DIR [--smoke] [--pairs 192]
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


def peer_scores(model, pad_id: int, seqs: list[list[int]], n_pairs: int, device: str, bs: int = 8) -> list[float]:
    """reward-bench style: rejected pass, then chosen pass, padded batches of 8 in dataset order."""
    out = [0.0] * len(seqs)
    order = [2 * i + 1 for i in range(n_pairs)] + [2 * i for i in range(n_pairs)]
    for start in range(0, len(order), bs):
        idx = order[start : start + bs]
        width = max(len(seqs[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
            mask[row, : len(seqs[i])] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0].float().cpu().tolist()
        for row, i in enumerate(idx):
            out[i] = logits[row]
    return out


def timed(fn, repeats: int, warm=None):
    (warm or fn)()  # warm-up (kernels, allocator)
    best, result = float("inf"), None
    times = []
    for _ in range(repeats):
        common.sync()
        t = time.perf_counter()
        result = fn()
        common.sync()
        times.append(time.perf_counter() - t)
        best = min(best, times[-1])
    return best, times, result


def run(folder: str, n_pairs: int, repeats: int, smoke: bool) -> dict:
    from transformers import AutoModelForSequenceClassification

    from rewardops.evaluation.engine import HFRewardModel
    from rewardops.evaluation.modelref import resolve_model
    from rewardops.training.metrics import non_embedding_params, peak_flops

    scorer = HFRewardModel(resolve_model(folder), batch_size=32)
    device, dtype = scorer.device, getattr(torch, scorer.dtype_name)
    pairs = common.seq_ids(n_pairs, scorer.tokenizer, seed=5, scale=0.1 if smoke else 1.0)
    seqs = [s for p in pairs for s in p]
    real = sum(map(len, seqs))
    peer = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=dtype,
                                                              attn_implementation="sdpa").to(device).eval()
    peer.config.pad_token_id = scorer.pad_id
    n = non_embedding_params(peer)
    peak = peak_flops(torch.device(device))
    rows = {}
    warm_peer = lambda: peer_scores(peer, scorer.pad_id, seqs[:16], 8, device)  # noqa: E731 - kernels, allocator
    t, times, peer_out = timed(lambda: peer_scores(peer, scorer.pad_id, seqs, n_pairs, device), repeats, warm_peer)
    rows["peer padded batches of 8, dataset order"] = {"best_s": t, "runs_s": times, "tok_s": real / t}
    # the peer under our batch size (32, as open_engine): the matched column
    t, times, _ = timed(lambda: peer_scores(peer, scorer.pad_id, seqs, n_pairs, device, bs=32), 1, lambda: None)
    rows["peer matched: padded batches of 32, dataset order"] = {"best_s": t, "runs_s": times, "tok_s": real / t}
    del peer
    common.free()
    outs = {}
    for bs in (32, 256):
        scorer.batch_size = bs
        t, times, outs[bs] = timed(lambda: scorer.score_ids(seqs), repeats, lambda: scorer.score_ids(seqs[:16]))
        rows[f"rewardops engine, batch {bs}"] = {"best_s": t, "runs_s": times, "tok_s": real / t}
    base = rows["peer padded batches of 8, dataset order"]["tok_s"]
    for r in rows.values():
        r["ratio_vs_peer"] = r["tok_s"] / base
        if peak:
            r["mfu"] = 2 * n * r["tok_s"] / peak
    stats = scorer.stats.as_dict()
    return {"device": device, "dtype": scorer.dtype_name, "sequences": len(seqs), "real_tokens": real,
            "mean_tokens_per_sequence": real / len(seqs), "rows": rows,
            "ratio_default_engine": rows["rewardops engine, batch 32"]["ratio_vs_peer"],
            "ratio_vs_peer_matched_batch": rows["rewardops engine, batch 32"]["tok_s"]
            / rows["peer matched: padded batches of 32, dataset order"]["tok_s"],
            "max_abs_score_diff_vs_peer": {str(bs): max(abs(a - b) for a, b in zip(o, peer_out)) for bs, o in outs.items()},
            "engine_padding_fraction": stats.get("padding_fraction"), "target": ">= 4x"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--pairs", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", default="/tmp/rewardops-gpu-work")
    args = ap.parse_args()
    rep = Report(args.out, "scoring", args.smoke)
    folder = common.make_backbone(common.shape_for(args.smoke, "qwen3-0.6b"), Path(args.work) / "backbones")

    def check():
        res = run(folder, 16 if args.smoke else args.pairs, args.repeats, args.smoke)
        # a CPU run exercises the script only: the throughput target is a GPU figure
        return res if CUDA else {**common.NEEDS_CUDA, "cpu_dry_run": res}

    rep.check("scoring-qwen3-0.6b", check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
