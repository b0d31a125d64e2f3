"""Curation quality on the generated world with injected label noise.

Runs the whole recipe offline: stage 1 (embedding-BT RM, error-driven retrieval, a SIMULATED
annotator and SIMULATED judges answering from the world's truth with set error rates), the two
final RMs, and stage 2 over a separate noisy pool; then measures
  - precision / recall of the discarded set against the truly flipped labels (and of cleanlab's
    `find_label_issues` on the same RM probabilities);
  - held-out accuracy (on clean pairs of another seed) of RMs trained on (a) the noisy pool,
    (b) the curated subset, (c) curated + flipped discards, (d) the pool with its true labels.
Every RM here is one cheap model from rewardops.curation.cheap_rm (--rm hashed: bag of words,
the default because 2 shared cores cannot embed thousands of responses in time; --rm embedding:
the MiniLM MLP), all trained the same way. Retrieval always uses all-MiniLM-L6-v2.

    .venv/bin/python bench/curation_quality.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def prf(flagged: set[str], flipped: set[str]) -> dict[str, float]:
    tp = len(flagged & flipped)
    return {"flagged": len(flagged), "precision": tp / len(flagged) if flagged else float("nan"),
            "recall": tp / len(flipped) if flipped else float("nan")}


def cleanlab_issues(pairs, probs, seed: int) -> set[str]:
    """cleanlab.filter.find_label_issues on a two-class view of the pairs: a random half is shown
    as (rejected, chosen) so both classes occur; the given label is always the listed chosen."""
    from cleanlab.filter import find_label_issues

    rng = np.random.default_rng(seed)
    swap = rng.random(len(pairs)) < 0.5
    p = np.asarray(probs, dtype=float)
    labels = swap.astype(int)  # class 0 = "first shown is better"; the listed chosen is first unless swapped
    p_first = np.where(swap, 1 - p, p)
    pred = np.clip(np.stack([p_first, 1 - p_first], axis=1), 1e-6, 1 - 1e-6)
    mask = find_label_issues(labels=labels, pred_probs=pred)
    return {pr.id for pr, m in zip(pairs, mask) if m}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--noise", type=float, default=0.25)
    ap.add_argument("--gold", type=int, default=150)
    ap.add_argument("--silver", type=int, default=600)
    ap.add_argument("--pool", type=int, default=1500)
    ap.add_argument("--wild", type=int, default=3000)
    ap.add_argument("--test", type=int, default=800)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--human-per-iteration", type=int, default=40)
    ap.add_argument("--annotator-error", type=float, default=0.05)
    ap.add_argument("--judge-errors", default="0.15,0.25,0.3")
    ap.add_argument("--band", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rm", choices=("hashed", "embedding"), default="hashed")
    ap.add_argument("--stage2-examples", action="store_true",
                    help="retrieve gold examples for stage-2 judging (the simulated judges do not read them)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rewardops-curation-quality"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "curation_quality.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from rewardops.curation.cheap_rm import EmbeddingBTTrainer, HashedBTTrainer
    from rewardops.curation.human import SimulatedAnnotator, apply_human_verdict
    from rewardops.curation.judges import JudgeEnsemble, SimulatedJudge
    from rewardops.curation.retrieval import ExampleRetriever, SentenceTransformerEmbedder
    from rewardops.curation.stage1 import Stage1Config, Stage1Loop, train_final_models
    from rewardops.curation.stage2 import Stage2Config, Stage2Filter
    from rewardops.data.shards import read_pairs, write_pairs
    from rewardops.data.world import generate_world

    t0 = time.time()
    w = args.work
    shutil.rmtree(w, ignore_errors=True)
    sizes = [args.gold, args.silver, args.pool, args.wild]
    stream = list(generate_world(sum(sizes), noise=args.noise, seed=args.seed))
    cut = np.cumsum([0] + sizes)
    seed_gold_raw, silver, pool, wild = (stream[cut[i]:cut[i + 1]] for i in range(4))
    test = [p if p.truth_chosen_better else p.flipped() for p in generate_world(args.test, noise=args.noise, seed=args.seed + 1)]
    annotator = SimulatedAnnotator(error_rate=args.annotator_error, undecidable_rate=0.02, seed=args.seed)
    gold = [apply_human_verdict(p, a, annotator.name) for p, a in zip(seed_gold_raw, annotator.verify(seed_gold_raw)) if a is not None]
    for name, ps in (("gold", gold), ("silver", silver), ("pool", pool), ("wild", wild)):
        write_pairs(ps, w / name, shard_size=1000)
    noisy_ids = {p.id for p in wild if not p.truth_chosen_better}

    embedder = SentenceTransformerEmbedder(max_seq_length=128)

    def make_trainer():
        if args.rm == "hashed":
            return HashedBTTrainer(dim=1 << 16, epochs=6, lr=0.2, seed=args.seed)
        return EmbeddingBTTrainer(embedder, epochs=15, seed=args.seed)

    def ensemble() -> JudgeEnsemble:
        return JudgeEnsemble([SimulatedJudge(error_rate=float(e), position_bias=0.1, seed=i, name=f"sim-judge-{i}(err={e})")
                              for i, e in enumerate(args.judge_errors.split(","))], n_samples=3, merge="majority", seed=args.seed)

    trainer = make_trainer()
    loop = Stage1Loop(trainer, embedder, annotator, ensemble(),
                      Stage1Config(iterations=args.iterations, human_per_iteration=args.human_per_iteration))
    reports = loop.run(w / "gold", w / "silver", w / "pool", w / "stage1", progress=True)
    best, gold_rm = train_final_models(trainer, w / "stage1", w / "final")
    from rewardops.curation.steps import latest_iteration

    final_gold = list(read_pairs(latest_iteration(w / "stage1") / "gold"))
    print(f"stage 1 done in {time.time() - t0:.0f}s: gold {len(final_gold)}", file=sys.stderr)

    runs = {}
    for variant, judged in (("judges", True), ("no-judges", False)):
        f = Stage2Filter(best, gold_rm, Stage2Config(band=args.band), judges=ensemble() if judged else None,
                         examples=ExampleRetriever(final_gold, embedder) if judged and args.stage2_examples else None)
        summary = f.run(w / "wild", w / f"stage2-{variant}", progress=True)
        discarded = {p.id for p in read_pairs(w / f"stage2-{variant}" / "discarded")}
        kept = list(read_pairs(w / f"stage2-{variant}" / "kept"))
        runs[variant] = {"summary": {k: summary[k] for k in ("outputs", "counters")}, "discarded_vs_flipped": prf(discarded, noisy_ids),
                         "kept_noise_rate": sum(not p.truth_chosen_better for p in kept) / max(1, len(kept)),
                         "judge_stats": summary.get("judge_stats_this_process")}
    print(f"stage 2 done in {time.time() - t0:.0f}s", file=sys.stderr)

    p_gold = gold_rm.score_pairs(wild)
    p_best = best.score_pairs(wild)
    stage2_rule_probs = {p.id: (pg, pb) for p, pg, pb in zip(wild, p_gold, p_best)}
    cl = {
        "cleanlab(gold RM p)": prf(cleanlab_issues(wild, p_gold, args.seed), noisy_ids),
        "cleanlab(best RM p)": prf(cleanlab_issues(wild, p_best, args.seed), noisy_ids),
        "cleanlab(mean of both)": prf(cleanlab_issues(wild, (np.asarray(p_gold) + np.asarray(p_best)) / 2, args.seed), noisy_ids),
        "stage-2 rule without judges (gold RM > 0.5 and best RM > 0.5)": prf(
            {i for i, (pg, pb) in stage2_rule_probs.items() if not (pg > 0.5 and pb > 0.5)}, noisy_ids),
    }

    kept = list(read_pairs(w / "stage2-judges" / "kept"))
    recycled = list(read_pairs(w / "stage2-judges" / "recycled"))
    train_sets = {
        "(a) noisy pool": wild,
        "(b) curated (stage-2 kept)": kept,
        "(c) curated + flipped discards": kept + recycled,
        "(d) clean labels": [p if p.truth_chosen_better else p.flipped() for p in wild],
    }
    heldout = {}
    fam_of = {p.id: p.meta.get("family", "?") for p in test}
    for name, ps in train_sets.items():
        scorer = make_trainer().fit(ps, final_gold)
        probs = scorer.score_pairs(test)
        by_fam: dict[str, list[int]] = {}
        for p, pr in zip(test, probs):
            by_fam.setdefault(fam_of[p.id], []).append(int(pr > 0.5))
        heldout[name] = {"train_pairs": len(ps), "train_noise": sum(not p.truth_chosen_better for p in ps) / max(1, len(ps)),
                         "heldout_accuracy": float(np.mean(np.asarray(probs) > 0.5)),
                         "by_family": {k: float(np.mean(v)) for k, v in sorted(by_fam.items())}}
        print(f"{name}: {heldout[name]['heldout_accuracy']:.3f}", file=sys.stderr)

    result = {
        "config": vars(args) | {"work": str(args.work), "out": str(args.out)},
        "pool_noise_rate": len(noisy_ids) / len(wild),
        "stage1": [r.__dict__ for r in reports],
        "stage2": runs,
        "detectors": cl,
        "heldout": heldout,
        "families_in_test": dict(Counter(fam_of.values())),
        "seconds": time.time() - t0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps({"discarded_vs_flipped": {k: v["discarded_vs_flipped"] for k, v in runs.items()}, "detectors": cl,
                      "heldout": {k: v["heldout_accuracy"] for k, v in heldout.items()}}, indent=1))


if __name__ == "__main__":
    main()
