"""Curation quality on REAL preference data with labels flipped on purpose: stage 2's decision
("filter, or keep all and say why") estimated from the gold, next to the actual noise.

The pool: UltraFeedback-binarized sample (train, 1,000; its labels come from GPT-4 ratings) plus
the Anthropic hh-rlhf harmless-base test set (2,312; human labels), from ../shared/data. No
simulated annotator or judge reads any truth here:

1. a gold set of 200 pairs is drawn at random and keeps its original (human/dataset) label: it
   stands for the pairs people verified in stage 1;
2. 25% of the remaining pool is flipped on purpose (seeded); the flips are the "truth" we score
   against (a flipped pair is a wrong label);
3. per RM kind, the two stage-2 RMs are trained as the library trains them:
   - best RM: trained on the noisy pool itself, 2-fold cross-fitted so every pool pair is scored by
     a model that never saw it, the checkpoint selected on gold, temperature-calibrated on gold
     (`rewardops.curation.rms.fit_temperature`);
   - gold RM: as `rms.train_gold_rm`: cross-fitted in round(1 / calibration_fraction) folds over
     the gold, the temperature fitted on the out-of-fold probabilities, the final RM on all gold;
4. stage 2 is the library's `Stage2Filter.process_batch` with its recycling gate (both calibrated
   RMs must reverse a pair with confidence `recycle_confidence`; gold is protected) and NO judges
   (the best RM decides the uncertain band: no LLM judge runs at this scale on 2 shared CPU cores);
5. the decision is the library's `stage2.decide` on `stage2.replay_outcomes` (every gold pair as
   labelled and flipped, scored by the gold RM of its fold and by the two pool-half best RMs
   selected and calibrated on the gold minus its fold, averaged; no replayed gold pair was used to
   train, select or calibrate a model that scores it): the published
   set is kept + recycled when it filters, the whole pool as labelled when it keeps all;
6. cleanlab's `find_label_issues` runs on the same calibrated best-RM probabilities.

Reported per RM and seed: the decision, each set's estimated noise (with its interval) next to its
actual noise (pool, kept, recycled, kept + recycled, discarded), the published set's size and noise
and its ratio to the pool's, cleanlab's noise left. "Never worse" is noise(published) <= noise(pool).

RMs: hashed (bag-of-words BT), embedding (all-MiniLM-L6-v2 features + MLP BT) on the whole pool;
smollm2 (SmolLM2-135M fine-tuned as a BT reward model with the real trainer,
catalog size demo-smollm2-135m) on a bounded random subset of the pool (`--smollm2-pool`, CPU).

    .venv/bin/python bench/curation_quality_real.py --rms hashed,embedding,smollm2
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def load_real(max_per_source: int | None = None) -> list:
    from rewardops.data.readers import map_conversational, map_hh_rlhf
    from rewardops.data.schema import Message, PreferencePair

    out = []

    def add(cand, source: str, row: int) -> None:
        conv = [Message(str(r), str(c)) for r, c in cand.conversation]
        if not conv or not isinstance(cand.chosen, str) or not isinstance(cand.rejected, str):
            return
        if not cand.chosen.strip() or not cand.rejected.strip() or cand.chosen.strip() == cand.rejected.strip():
            return  # a few identical or empty responses: no preference to learn or to flip
        out.append(PreferencePair(id=f"{source}-{row:05d}", source=source, conversation=conv, chosen=cand.chosen,
                                  rejected=cand.rejected, truth_chosen_better=True, lineage=["bench:real"]))

    with open(SHARED / "ultrafeedback-sample" / "train_clean.jsonl") as fh:
        for i, line in enumerate(fh):
            if max_per_source and i >= max_per_source:
                break
            rec = json.loads(line)
            if isinstance(rec.get("chosen"), str):  # this sample: plain prompt / chosen / rejected strings
                from rewardops.data.validation import Candidate

                cand = Candidate([("user", rec["prompt"])], rec["chosen"], rec["rejected"])
            else:
                cand = map_conversational(rec)
            add(cand, "ultrafeedback", i)
    with gzip.open(SHARED / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt") as fh:
        for i, line in enumerate(fh):
            if max_per_source and i >= max_per_source:
                break
            try:
                cand = map_hh_rlhf(json.loads(line))
            except Exception:  # noqa: BLE001 - the 4 rows with an empty chosen transcript
                continue
            add(cand, "hh-harmless", i)
    return out


def split_and_flip(pairs: list, gold_n: int, noise: float, seed: int) -> tuple[list, list]:
    rng = random.Random(seed)
    pairs = list(pairs)
    rng.shuffle(pairs)
    gold, pool = pairs[:gold_n], pairs[gold_n:]
    flip = set(rng.sample(range(len(pool)), round(noise * len(pool))))
    noisy = []
    for i, p in enumerate(pool):
        if i in flip:
            q = p.flipped()
            q.label_source = "original"
            q.lineage = ["bench:real", "bench:flipped_on_purpose"]
            noisy.append(q)
        else:
            noisy.append(p)
    return gold, noisy


def prf(flagged: set[str], wrong: set[str]) -> dict[str, float]:
    tp = len(flagged & wrong)
    return {"flagged": len(flagged), "precision": tp / len(flagged) if flagged else float("nan"),
            "recall": tp / len(wrong) if wrong else float("nan")}


def noise(pairs) -> float:
    return float(np.mean([not p.truth_chosen_better for p in pairs])) if pairs else float("nan")


def cleanlab_issues(pairs, probs, seed: int) -> set[str]:
    """cleanlab.filter.find_label_issues on a two-class view (a random half shown swapped so both
    classes occur; the given label is always the listed chosen)."""
    from cleanlab.filter import find_label_issues

    rng = np.random.default_rng(seed)
    swap = rng.random(len(pairs)) < 0.5
    p = np.asarray(probs, dtype=float)
    p_first = np.where(swap, 1 - p, p)
    pred = np.clip(np.stack([p_first, 1 - p_first], axis=1), 1e-6, 1 - 1e-6)
    mask = find_label_issues(labels=swap.astype(int), pred_probs=pred)
    return {pr.id for pr, m in zip(pairs, mask) if m}


class MeanScorer:
    """The mean probability of a few scorers (the pool-half best RMs)."""

    def __init__(self, members) -> None:
        self.members, self.name = list(members), "mean(" + ",".join(m.name for m in members) + ")"

    def score_pairs(self, pairs):
        return np.mean([m.score_pairs(pairs) for m in self.members], axis=0).tolist()


class Table:
    def __init__(self, probs: dict[str, float], name: str) -> None:
        self.probs, self.name = probs, name

    def score_pairs(self, pairs):
        return [self.probs[p.id] for p in pairs]


def make_fit(kind: str, args, work: Path):
    """(silver, selection gold) -> a PairScorer, for one RM kind."""
    if kind == "hashed":
        from rewardops.curation.cheap_rm import HashedBTTrainer

        return lambda silver, gold: HashedBTTrainer(seed=args.seed).fit(silver, gold)
    if kind == "embedding":
        from rewardops.curation.cheap_rm import EmbeddingBTTrainer
        from rewardops.curation.retrieval import SentenceTransformerEmbedder

        embedder = CachedEmbedder(SentenceTransformerEmbedder())
        return lambda silver, gold: EmbeddingBTTrainer(embedder, seed=args.seed).fit(silver, gold)
    if kind == "smollm2":
        from rewardops.curation.adapters import TransformerRMTrainer
        from rewardops.data.shards import write_pairs

        counter = iter(range(1000))

        def fit(silver, gold):
            d = work / f"smollm2-{next(counter)}"
            write_pairs(silver, d / "silver")
            if gold:
                write_pairs(gold, d / "gold")
            trainer = TransformerRMTrainer("demo-smollm2-135m", overrides={
                "max_length": args.smollm2_max_length, "micro_batch_tokens": 2 * args.smollm2_max_length,
                "global_batch": 16, "lr": 5e-5, "seed": args.seed})
            # no selection run inside the trainer (1 epoch, one candidate): it would score gold at 4,096 tokens
            scorer = trainer.train(d / "silver", None, d / "rm")
            scorer.rm.max_length = args.smollm2_max_length  # score at the length it was trained at (left-truncated)
            return scorer

        return fit
    raise ValueError(kind)


class CachedEmbedder:
    """Embeds each distinct text once (the cross-fitted RMs see the same texts several times)."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.cache = inner, inner.name, {}

    def embed(self, texts):
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            for t, v in zip(todo, self.inner.embed(todo)):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts]) if texts else self.inner.embed([])


def run_rm(kind: str, gold: list, pool: list, args, work: Path) -> dict:
    from rewardops.curation.rms import CalibratedScorer, CrossFitScorer, accuracy, crossfit_folds, fit_temperature
    from rewardops.curation.stage2 import Stage2Config, Stage2Filter, decide, replay_outcomes, unordered_key

    t0 = time.time()
    fit = make_fit(kind, args, work)
    # best RM: 2-fold cross-fit on the noisy pool, selected and calibrated on gold (what scores the pool)
    rng = random.Random(args.seed + 1)
    order = list(range(len(pool)))
    rng.shuffle(order)
    folds = [set(order[: len(order) // 2]), set(order[len(order) // 2:])]
    pool_halves = [[pool[i] for i in range(len(pool)) if i not in folds[k]] for k in range(2)]
    best_probs: dict[str, float] = {}
    temps, gold_acc = [], []
    for k in range(2):
        held = [pool[i] for i in sorted(folds[k])]
        scorer = fit(pool_halves[k], gold)
        g = scorer.score_pairs(gold)
        t = fit_temperature(g)
        temps.append(t)
        gold_acc.append(float(np.mean(np.asarray(g) > 0.5)))
        for p, v in zip(held, CalibratedScorer(scorer, t).score_pairs(held)):
            best_probs[p.id] = v
    # the gold folds, as the library cuts them (rms.crossfit_folds), shared by both RMs of the replay
    gfolds = crossfit_folds(gold, args.calibration_fraction, args.seed)
    fold_of = {p.id: k for k, f in enumerate(gfolds) for p in f}
    # the best RM on gold pairs (the replay): per gold fold, the same two pool-half RMs selected and
    # calibrated on the gold MINUS that fold, their mean scoring the fold (no gold pair is scored by a
    # model that was selected or calibrated on it; paper §3.3's best RM, cross-fitted for the decision)
    best_by_fold = []
    for gk in range(len(gfolds)):
        rest = [p for p in gold if fold_of[p.id] != gk]
        members = []
        for k in range(2):
            scorer = fit(pool_halves[k], rest)
            members.append(CalibratedScorer(scorer, fit_temperature(scorer.score_pairs(rest))))
        best_by_fold.append(MeanScorer(members))
    best_crossfit = CrossFitScorer(best_by_fold, fold_of, f"{kind}-best-crossfit")
    # gold RM as the library trains it (rms.train_gold_rm): cross-fitted over the same folds, each fold
    # RM calibrated on the out-of-fold probabilities of the OTHER folds; the final RM on all gold,
    # calibrated on every out-of-fold probability
    fold_models = [fit([p for p in gold if fold_of[p.id] != k], []) for k in range(len(gfolds))]
    raw_oof = CrossFitScorer(fold_models, fold_of, f"{kind}-gold-crossfit").score_pairs(gold)
    t_gold = fit_temperature(raw_oof)
    t_fold = [fit_temperature([v for p, v in zip(gold, raw_oof) if fold_of[p.id] != k]) for k in range(len(gfolds))]
    crossfit = CrossFitScorer([CalibratedScorer(m, t) for m, t in zip(fold_models, t_fold)], fold_of,
                              f"{kind}-gold-crossfit")
    gold_full = CalibratedScorer(fit(gold, []), t_gold)
    config = Stage2Config(band=args.band, recycle_confidence=args.recycle_confidence)
    protected = ({p.id for p in gold}, {unordered_key(p) for p in gold})
    flt = Stage2Filter(Table(best_probs, f"{kind}-best"), gold_full, config, judges=None, protected=protected)
    counters: Counter = Counter()
    sets: dict[str, list] = {"kept": [], "discarded": [], "recycled": [], "no_verdict": []}
    for name, pair in flt.process_batch([p for p in pool], counters):
        sets[name].append(pair)
    # the decision (the library's merge): every gold pair replayed both ways, scored by the best RMs and
    # the gold RM of its own fold (none of them selected, calibrated or trained on it)
    replay = Stage2Filter(best_crossfit, crossfit, config, judges=None)
    outcomes = replay_outcomes(replay, gold)
    decision = decide({k: len(v) for k, v in sets.items()}, outcomes, args.rm_skill_z, seed=args.seed,
                      counters=counters)
    published = (sets["kept"] + sets["recycled"]) if decision["filter"] else list(pool)
    wrong = {p.id for p in pool if not p.truth_chosen_better}
    discarded_ids = {p.id for p in sets["discarded"]}
    cl = cleanlab_issues(pool, [best_probs[p.id] for p in pool], args.seed)
    flipped_all = [p.flipped() for p in sets["discarded"]]
    actual = {"pool": noise(pool), "kept": noise(sets["kept"]), "recycled": noise(sets["recycled"]),
              "kept+recycled": noise(sets["kept"] + sets["recycled"]), "discarded": noise(sets["discarded"])}
    res = {
        "rm": kind, "pool": len(pool), "gold": len(gold), "seconds": round(time.time() - t0, 1),
        "best_rm_gold_accuracy_by_fold": gold_acc, "best_rm_temperature_by_fold": temps,
        "gold_rm_temperature": t_gold, "gold_rm_temperature_by_fold": t_fold, "gold_rm_crossfit_folds": len(gfolds),
        "replay_best_rm_temperatures_by_fold": [[m.temperature for m in b.members] for b in best_by_fold],
        "replay_best_rm_accuracy_on_gold": accuracy(best_crossfit.score_pairs(gold)),
        "gold_rm_out_of_fold_accuracy": accuracy(raw_oof),
        "best_rm_accuracy_on_pool_truth": float(np.mean([(best_probs[p.id] > 0.5) == p.truth_chosen_better for p in pool])),
        "counts": {k: len(v) for k, v in sets.items()},
        "counters": {k: v for k, v in counters.items() if k.startswith(("recycle", "gold_rm", "best_rm_agrees", "no_judges"))},
        "discarded": prf(discarded_ids, wrong),
        "decision": decision,
        "filtered": decision["filter"],
        "estimated": {k: (decision.get("noise") or {}).get(k, {}).get("estimate") for k in actual},
        "estimated_interval": {k: (decision.get("noise") or {}).get(k, {}).get("interval") for k in actual},
        "actual": actual,
        "published_pairs": len(published), "published_share": len(published) / len(pool),
        "noise_pool": noise(pool),
        "noise_published": noise(published),
        "noise_kept_plus_recycled": actual["kept+recycled"],
        "noise_kept_plus_all_discarded_flipped": noise(sets["kept"] + flipped_all),
        "cleanlab": {**prf(cl, wrong), "noise_after_removing": noise([p for p in pool if p.id not in cl])},
        "stage2_config": {k: getattr(config, k) for k in config.__dataclass_fields__},
    }
    res["never_worse"] = bool(res["noise_published"] <= res["noise_pool"])
    return res


def fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else (f"{x:.3f}" if isinstance(x, float) else str(x))


def se(r: dict) -> float:
    """Binomial standard error of the kept + recycled noise (how far chance alone moves it)."""
    n = r["counts"]["kept"] + r["counts"]["recycled"]
    p = r["noise_kept_plus_recycled"]
    return float(np.sqrt(p * (1 - p) / n)) if n and not np.isnan(p) else float("nan")


def est_actual(r: dict, name: str, interval: bool = False) -> str:
    est, act = r["estimated"].get(name), r["actual"].get(name)
    iv = r["estimated_interval"].get(name) if interval else None
    return f"{fmt(est)}{f' [{iv[0]:.3f}–{iv[1]:.3f}]' if iv else ''} / {fmt(act)}"


def mirror(d: dict) -> str:
    m = d.get("pool_mirror")
    return "n/a" if not m else f"{m['difference']:+.3f} ± {m['se']:.3f}{' (shown)' if m['shows_skill'] else ''}"


def markdown(results: list[dict], meta: dict) -> str:
    lines = [
        "# Curation quality on real data: stage 2's decision from all the gold",
        "",
        f"Generated by `bench/curation_quality_real.py` on {meta['date']} ({meta['host']}). Pool: UltraFeedback-sample "
        f"train + hh-rlhf harmless-base test ({meta['pairs']} usable pairs); gold {meta['gold']} pairs with their "
        f"original labels; {meta['noise']:.0%} of the remaining pool flipped on purpose (per seed). "
        "Stage 2 = the library's `Stage2Filter` (gold RM must agree; best RM decides the uncertain band, no LLM judges), "
        f"band {meta['band']}, recycling gate recycle_confidence {meta['recycle_confidence']}; the decision is the "
        "library's `stage2.decide`: every gold pair replayed as labelled and flipped, scored by the gold RM and the best RMs of its "
        f"fold ({meta['folds']} folds; neither trained, selected nor calibrated on it), Bayesian bootstrap over gold pairs, "
        "and the pool mirror test (every pool pair decided as labelled and as if flipped; the pool's best-RM scores "
        "cross-fitted over two halves): filter iff the pool keeps pairs as labelled more often than flipped (lower bound "
        f"at one-sided z {meta['z']} above 0) and the gold replay keeps right labels more often than wrong ones (plus the "
        "gold's bound on noise(kept+recycled) / noise(pool) below 1 when anything is recycled), else keep every pair. "
        "Noise cells: **estimated [interval] / actual** (the actual from the flips; the interval is the gold replay's).",
        "",
        "| RM | seed | pool | gold RM out-of-fold acc. | pool mirror: kept as labelled − flipped ± SE | "
        "decision (gold ratio, upper bound) | published pairs (share) | "
        "noise pool | noise kept | recycled n: noise | noise kept+recycled (± 2 SE of actual) | noise discarded | "
        "published noise / pool | cleanlab: noise left | never worse |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        d = r["decision"]
        ratio = "n/a" if d.get("ratio") is None else f"{d['ratio']:.2f}"
        upper = "n/a" if d.get("ratio_upper_bound") is None else f"{d['ratio_upper_bound']:.2f}"
        lines.append(
            f"| {r['rm']} | {r['seed']} | {r['pool']} | {fmt(r['gold_rm_out_of_fold_accuracy'])} | {mirror(d)} | "
            f"{'**filter**' if r['filtered'] else 'keep all'} ({ratio}, {upper}) | {r['published_pairs']} "
            f"({r['published_share']:.0%}) | {est_actual(r, 'pool', True)} | {est_actual(r, 'kept')} | "
            f"{r['counts']['recycled']}: {est_actual(r, 'recycled')} | {est_actual(r, 'kept+recycled', True)} "
            f"(± {fmt(2 * se(r))}) | {est_actual(r, 'discarded')} | {r['noise_published'] / r['noise_pool']:.2f} | "
            f"{fmt(r['cleanlab']['noise_after_removing'])} | {'yes' if r['never_worse'] else '**NO**'} |")
    lines += ["", "Per RM details (gold accuracy of the cross-fitted best RMs, temperatures, the decision's full text, "
              f"seconds) are in `bench/results/{meta.get('json', 'curation_real.json')}`.", ""]
    lines += meta.get("notes", [])
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rms", default="hashed,embedding,smollm2")
    ap.add_argument("--seeds", default="0", help="comma-separated: each seed draws its own gold set and flips")
    ap.add_argument("--gold", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.25)
    from rewardops.curation.settings import CurationSettings

    defaults = CurationSettings()  # the library's stage-2 defaults, declared once there
    ap.add_argument("--band", type=float, default=defaults.band)
    ap.add_argument("--recycle-confidence", type=float, default=defaults.recycle_confidence)
    ap.add_argument("--rm-skill-z", type=float, default=defaults.rm_skill_z)
    ap.add_argument("--calibration-fraction", type=float, default=defaults.calibration_fraction)
    ap.add_argument("--embedding-pool", type=int, default=400,
                    help="the embedding RM runs on this many pool pairs (MiniLM on every text: CPU bound)")
    ap.add_argument("--smollm2-pool", type=int, default=300, help="SmolLM2 runs on this many pool pairs (CPU bound)")
    ap.add_argument("--smollm2-max-length", type=int, default=384)
    ap.add_argument("--max-per-source", type=int, default=None, help="smoke runs only")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "curation_real.md")
    args = ap.parse_args()

    import platform

    import torch

    torch.set_num_threads(2)
    pairs = load_real(args.max_per_source)
    json_out = args.out.with_suffix(".json")
    done: dict[tuple[str, int], dict] = {}
    if json_out.is_file():  # results of earlier invocations (other RMs or seeds) are kept
        prev = json.loads(json_out.read_text())
        if prev.get("pairs") == len(pairs):
            for r in prev.get("results", []):
                r.setdefault("seed", prev.get("seed", 0))
                done[(r["rm"], r["seed"])] = r
    with tempfile.TemporaryDirectory(prefix="curation-real-") as tmp:
        for seed in [int(x) for x in args.seeds.split(",")]:
            args.seed = seed
            gold, pool = split_and_flip(pairs, args.gold, args.noise, seed)
            print(f"seed {seed}: {len(pairs)} real pairs: gold {len(gold)}, pool {len(pool)} "
                  f"({noise(pool):.3f} flipped)", file=sys.stderr)
            for kind in args.rms.split(","):
                sub = pool
                bound = {"embedding": args.embedding_pool, "smollm2": args.smollm2_pool}.get(kind, 0)
                if 0 < bound < len(pool):  # the same random subset for every bounded RM (same flips, same gold)
                    sub = random.Random(seed + 7).sample(pool, bound)
                print(f"== {kind}, seed {seed}: pool {len(sub)}", file=sys.stderr)
                r = {**run_rm(kind, gold, sub, args, Path(tmp)), "seed": seed}
                print(json.dumps(r, indent=1, default=float), file=sys.stderr)
                done[(kind, seed)] = r
                order = {"hashed": 0, "embedding": 1, "smollm2": 2}
                results = [done[k] for k in sorted(done, key=lambda k: (order.get(k[0], 9), k[1]))]
                meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "host": f"{platform.machine()}, "
                        f"{torch.get_num_threads()} torch threads, CPU only", "pairs": len(pairs), "gold": len(gold),
                        "noise": args.noise, "band": args.band, "recycle_confidence": args.recycle_confidence,
                        "z": args.rm_skill_z, "folds": max(2, round(1 / args.calibration_fraction)),
                        "json": json_out.name,
                        "notes": [f"- embedding: all-MiniLM-L6-v2 embeds every prompt and response on CPU, so it runs on a "
                                  f"random {args.embedding_pool}-pair subset of the pool (the same flips; the gold set "
                                  "is the same 200 pairs).",
                                  f"- smollm2 (`--rms smollm2`): SmolLM2-135M fine-tuned as a BT RM with the real trainer "
                                  f"on CPU, bounded to a random {args.smollm2_pool}-pair subset of the pool (max length "
                                  f"{args.smollm2_max_length} tokens, 1 epoch per fold)."]}
                json_out.write_text(json.dumps({"pairs": len(pairs), "results": results, "meta": meta},
                                               indent=1, default=float))
                kept_text = ""  # a hand-written "## Reading" section survives a rerun
                if args.out.is_file() and "\n## Reading" in args.out.read_text():
                    kept_text = args.out.read_text()[args.out.read_text().index("\n## Reading"):]
                args.out.write_text(markdown(results, meta) + kept_text)


if __name__ == "__main__":
    main()
