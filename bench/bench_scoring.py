"""Scoring throughput: the rewardops engine vs the way the peers score, same model, same pairs.

The peer way is reward-bench's `scripts/run_rm.py` / RM-Bench's copy of it (also RMB's): the
chat template rendered to text, then a transformers sequence-classification model over padded
batches of 8 in dataset order (`pipeline(..., batch_size=8, padding=True)`), chosen and rejected
as separate passes. Ours is `rewardops.evaluation.engine`: length-sorted batches under a token
budget, right padding with an explicit last-token gather and no padding mask (SDPA's fused causal
kernel), identical sequences scored once. The score cache is OFF here: this measures compute.

Metric: real tokens per second = tokens of every requested sequence (no padding) / wall seconds
for tokenisation + forward passes. Both sides get the same pairs and the same thread count in
the same process; each is timed `--repeats` times and the best run is kept (a shared machine is
noisy). Two peer columns: the peer's own way (batches of 8) and the peer under our
settings (the same model, fp32, max length and batch size as the engine, `--batch-size`, still in
dataset order with a padding mask, which is the peer's method). CPU seconds of the process are
recorded beside wall seconds. Data: the RM-Bench chat file and the JudgeBench GPT-4o file from ../shared/data.

    .venv/bin/python bench/bench_scoring.py [--model tiny-qwen3|smollm2-135m] [--rmbench 60] [--judgebench 40]

Best-of-N (`--bon N_PROMPTS`): PPE-Correctness-shaped items, 32 responses per prompt, to measure the
shared-prefix engine (each prompt encoded once for its 32 responses) against our plain engine
(`shared_prefix=False`: length-sorted padded batches) and the padded peer (batches of 8 in dataset
order), same model, same run, interleaved. The items are real text: MMLU-Pro questions as JudgeBench
formats them (question, options, answer instruction) with 32 distinct GPT-4o chain-of-thought
MMLU-Pro answers from the same file (the question's own two first, then others drawn with a fixed
seed). PPE itself is hub-only; its MMLU-Pro subset has the same prompt kind and 32 sampled CoT
answers per prompt. The answers are not all for the question they follow: a throughput workload
with PPE's token shape, not an accuracy test.

    .venv/bin/python bench/bench_scoring.py --bon 8 --threads 1 --json bench/results/scoring_bon_shared_prefix.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REWARDOPS_SHARED", REPO.parent / "shared")) / "data"



def _report(result: dict, line: str, json_path: Path | None) -> int:
    """The numbers as JSON and one line for a person; the JSON also to `json_path` when given."""
    print(json.dumps(result, indent=2))
    print(f"\n{line}")
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result, indent=2) + "\n")
    return 0

def load_items(n_rmbench: int, n_judgebench: int):
    from rewardops.evaluation.benchmarks import get

    rm = get("rm-bench").load(SHARED / "rm-bench" / "chat_filtered.json").items[:n_rmbench]
    jb = get("judgebench").load(SHARED / "judgebench" / "judgebench_gpt-4o.jsonl").items[:n_judgebench]
    return rm + jb


def peer_pairs(items):
    """(chosen messages, rejected messages) in dataset order, as the peers build their datasets:
    RM-Bench as three datasets (style i chosen vs style i rejected), JudgeBench as (A, B)."""
    pairs = []
    rm = [it for it in items if len(it.responses) == 6]
    for style in range(3):
        pairs += [(it.messages(style), it.messages(3 + style)) for it in rm]
    pairs += [(it.messages(0), it.messages(1)) for it in items if len(it.responses) == 2]
    return pairs


def peer_score(model, tokenizer, pairs, batch_size: int = 8, max_length: int = 16_384):
    """reward-bench style: texts via apply_chat_template, padded batches of 8 in order,
    rejected pass then chosen pass, raw logits (function_to_apply='none')."""
    if tokenizer.pad_token_id is None:  # what run_rm.py does
        tokenizer.pad_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    scores = {}
    for side in (1, 0):  # results_rej first, then results_cho, like run_rm.py
        texts = [tokenizer.apply_chat_template(p[side], tokenize=False) for p in pairs]
        out = []
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                out += model(**enc).logits[:, 0].float().tolist()
        scores[side] = out
    return scores[0], scores[1]


def bon_items(n_prompts: int, n: int = 32, seed: int = 0):
    """PPE-shaped best-of-N items from real text (see the module docstring)."""
    import random

    from rewardops.evaluation.items import EvalItem, prompt_from_text

    rows = [json.loads(line) for line in (SHARED / "judgebench" / "judgebench_gpt-4o.jsonl").open()]
    mmlu = [r for r in rows if str(r.get("source", "")).startswith("mmlu-pro")]
    pool = [r[k] for r in mmlu for k in ("response_A", "response_B")]
    rng = random.Random(seed)
    items = []
    for k, r in enumerate(mmlu[:n_prompts]):
        own = [r["response_A"], r["response_B"]]
        others = [x for x in rng.sample(pool, n + 8) if x not in own][: n - 2]
        items.append(EvalItem(f"bon{k}", "ppe-shaped", prompt_from_text(r["question"]), tuple(own + others)))
    return items


def peer_score_sequences(model, tokenizer, items, batch_size: int = 8, max_length: int = 16_384):
    """The padded peer on best-of-N: every (prompt, response) as its own text, padded batches of 8 in
    dataset order with a padding mask (reward-bench's pipeline, as `peer_score`)."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    texts = [tokenizer.apply_chat_template(it.messages(i), tokenize=False) for it in items for i in range(len(it.responses))]
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out += model(**enc).logits[:, 0].float().tolist()
    return out


def bench_bon(args) -> int:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardops.evaluation.engine import open_engine

    items = bon_items(args.bon)
    # a causal-LM folder (smollm2-135m) gets a freshly initialised score head at every load: the
    # same seed before each load gives the three scorers the same head, so their scores compare
    torch.manual_seed(0)
    plain, ref = open_engine(args.model, cache_path=None, batch_size=args.batch_size, show_progress=False, shared_prefix=False)
    torch.manual_seed(0)
    shared, _ = open_engine(args.model, cache_path=None, batch_size=args.batch_size, show_progress=False, shared_prefix=True)
    tokenizer = AutoTokenizer.from_pretrained(ref.tokenizer_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(ref.model_dir, dtype=torch.float32).eval()
    workload = [plain.scorer.render(it.messages(i)) for it in items for i in range(len(it.responses))]
    real_tokens = sum(len(s) for s in workload)
    times: dict[str, list[float]] = {"peer": [], "plain": [], "shared": []}
    cpu: dict[str, list[float]] = {"peer": [], "plain": [], "shared": []}
    scores: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # interleaved, so load drift on a shared machine hits all three
        for name in ("peer", "plain", "shared"):
            t, c = time.perf_counter(), time.process_time()
            if name == "peer":
                got = peer_score_sequences(model, tokenizer, items)
            else:
                by_item = (plain if name == "plain" else shared).score_items(items, label="bench")
                got = [x for it in items for x in by_item[it.id]]
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            scores[name] = got
    best = {k: min(v) for k, v in times.items()}
    best_cpu = {k: min(v) for k, v in cpu.items()}
    diff = lambda a, b: max(abs(x - y) for x, y in zip(scores[a], scores[b]))  # noqa: E731
    result = {
        "model": args.model, "device": "cpu", "threads": args.threads, "prompts": len(items),
        "responses_per_prompt": len(items[0].responses), "sequences": len(workload), "real_tokens": real_tokens,
        "prompt_tokens_not_encoded_again_per_run": shared.stats.shared_tokens // args.repeats,
        "seconds": times, "cpu_seconds": cpu, "load_average_end": os.getloadavg()[0],
        "real_tokens_per_s": {k: round(real_tokens / v, 1) for k, v in best.items()},
        "ratio_shared_vs_plain": round(best["plain"] / best["shared"], 2),
        "ratio_shared_vs_plain_cpu_s": round(best_cpu["plain"] / best_cpu["shared"], 2),
        "ratio_shared_vs_peer": round(best["peer"] / best["shared"], 2),
        "ratio_shared_vs_peer_cpu_s": round(best_cpu["peer"] / best_cpu["shared"], 2),
        "ratio_plain_vs_peer": round(best["peer"] / best["plain"], 2),
        "computed_tokens_per_run": {"plain": plain.stats.padded_tokens // args.repeats,
                                    "shared": shared.stats.padded_tokens // args.repeats},
        "max_abs_score_diff_shared_vs_plain": diff("shared", "plain"),
        "max_abs_score_diff_shared_vs_peer": diff("shared", "peer"),
    }
    return _report(result, f"best-of-{len(items[0].responses)} ({len(items)} prompts): shared prefix "
                   f"{real_tokens / best['shared']:,.0f} real tok/s; plain {real_tokens / best['plain']:,.0f}; padded peer "
                   f"{real_tokens / best['peer']:,.0f}; shared / plain {result['ratio_shared_vs_plain']}x (target >= 1.5x), "
                   f"shared / peer {result['ratio_shared_vs_peer']}x", args.json)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tiny-qwen3")
    ap.add_argument("--rmbench", type=int, default=60, help="RM-Bench chat prompts (6 responses each)")
    ap.add_argument("--judgebench", type=int, default=40, help="JudgeBench GPT-4o pairs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64, help="the engine's batch size; the matched peer uses it too")
    ap.add_argument("--shared-prefix", default="auto", type=lambda v: {"true": True, "false": False}.get(v, v),
                    help="the engine's shared_prefix (auto|true|false) in the RM-Bench + JudgeBench mode")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    ap.add_argument("--bon", type=int, default=0, help="best-of-32 mode: this many PPE-shaped prompts (see above)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.bon:
        return bench_bon(args)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardops.evaluation.engine import open_engine

    items = load_items(args.rmbench, args.judgebench)
    engine, ref = open_engine(args.model, cache_path=None, batch_size=args.batch_size, show_progress=False,
                              shared_prefix=args.shared_prefix)
    pairs = peer_pairs(items)
    tokenizer = AutoTokenizer.from_pretrained(ref.tokenizer_dir)
    model = AutoModelForSequenceClassification.from_pretrained(ref.model_dir, dtype=torch.float32).eval()

    workload = [engine.scorer.render(m) for p in pairs for m in p]
    real_tokens = sum(len(s) for s in workload)

    peer_times, matched_times, ours_times = [], [], []
    cpu = {"peer": [], "matched": [], "ours": []}
    for _ in range(args.repeats):  # interleaved, so load drift on a shared machine hits all three
        t, c = time.perf_counter(), time.process_time()
        peer_c, peer_r = peer_score(model, tokenizer, pairs)
        peer_times.append(time.perf_counter() - t)
        cpu["peer"].append(time.process_time() - c)
        # the peer under our settings: same model, precision, max length and batch size as the engine
        t, c = time.perf_counter(), time.process_time()
        peer_score(model, tokenizer, pairs, batch_size=args.batch_size)
        matched_times.append(time.perf_counter() - t)
        cpu["matched"].append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        ours = engine.score_items(items, label="bench")
        ours_times.append(time.perf_counter() - t)
        cpu["ours"].append(time.process_time() - c)

    # the same numbers both ways: the peer's chosen/rejected in our item order
    ours_c, ours_r = [], []
    rm = [it for it in items if len(it.responses) == 6]
    for style in range(3):
        ours_c += [ours[it.id][style] for it in rm]
        ours_r += [ours[it.id][3 + style] for it in rm]
    for it in items:
        if len(it.responses) == 2:
            ours_c.append(ours[it.id][0])
            ours_r.append(ours[it.id][1])
    max_diff = max(abs(a - b) for a, b in zip(ours_c + ours_r, peer_c + peer_r))

    peer_tps = real_tokens / min(peer_times)
    matched_tps = real_tokens / min(matched_times)
    ours_tps = real_tokens / min(ours_times)
    result = {
        "model": args.model,
        "device": "cpu",
        "threads": args.threads,
        "sequences": len(workload),
        "real_tokens": real_tokens,
        "peer_seconds": peer_times,
        "ours_seconds": ours_times,
        "matched_seconds": matched_times,
        "cpu_seconds": cpu,
        "load_average_end": os.getloadavg()[0],
        "peer_real_tokens_per_s": round(peer_tps, 1),
        "peer_matched_real_tokens_per_s": round(matched_tps, 1),
        "ours_real_tokens_per_s": round(ours_tps, 1),
        "ratio": round(ours_tps / peer_tps, 2),
        "ratio_matched": round(ours_tps / matched_tps, 2),
        "ratio_cpu_s": round(min(cpu["peer"]) / min(cpu["ours"]), 2),
        "ratio_matched_cpu_s": round(min(cpu["matched"]) / min(cpu["ours"]), 2),
        "max_abs_score_diff_vs_peer": max_diff,
        "ours_padding_fraction": round(engine.stats.as_dict()["padding_fraction"], 4),
        "ours_deduplicated_per_run": engine.stats.deduplicated // args.repeats,
    }
    return _report(result, f"rewardops engine: {ours_tps:,.0f} real tokens/s; peer (padded batches of 8, dataset order): "
                   f"{peer_tps:,.0f} real tokens/s; ratio {ours_tps / peer_tps:.2f}x (target >= 3x on CPU); "
                   f"peer matched (padded batches of {args.batch_size}, dataset order): {matched_tps:,.0f}; ratio "
                   f"{ours_tps / matched_tps:.2f}x", args.json)


if __name__ == "__main__":
    sys.exit(main())
