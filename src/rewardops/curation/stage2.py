"""Stage 2: large-scale automatic curation by consistency (paper §3.3).

Per pair: p_best from the current best RM, p_gold from the gold RM (trained on all
human-verified pairs). With `band` b:
- the gold RM disagrees (p_gold <= gold_threshold)        -> discarded (no judging needed)
- the best RM agrees confidently (p_best > 0.5 + b)       -> kept without annotation
- otherwise (uncertain, or the best RM disagrees)         -> LLM judges with retrieved gold examples:
  agree -> kept, disagree -> discarded, no verdict -> `no_verdict` (neither kept nor lost)
which is the paper's rule: keep iff the gold RM agrees and (the judges or the best RM agree).
The probabilities are the RMs' calibrated ones (`rms`: temperature-scaled on gold).
Recycling never adds noise on purpose: a discarded pair is written flipped to `recycled` only when
BOTH RMs confidently reverse it (p_best and p_gold <= 1 - `recycle_confidence`), never when it is a
human-verified pair or contradicts one, and never twice (flipped pairs already in stage 1's gold
or silver, by id or by content, are left out). A pair the judges cannot decide goes to
`no_verdict`: counted, reported and returned for another pass, never kept or dropped silently.
Attributes are generated for judged pairs that lack them (`attributes`, built on first need).
Every pair's path is appended to `lineage`; p values go to `scores`. With the generated world's
truth on the pairs, the counters also hold each set's true label noise (`truth_wrong:<set>`).

Whether to filter at all is decided from every gold pair (`replay_outcomes`, `decide`): each gold
pair goes through this same rule as labelled (a right label) and flipped (a wrong one: the same
question asked the other way), scored by RMs that were never trained, selected or calibrated on it
(the gold RM and the best RM of its cross-fitting fold, `rms.train_gold_rm`, `rms.train_best_rm_crossfit`). How often right and wrong gold pairs land in each set, with the share of the
pool that stage 2 kept, gives each set's label noise (kept, recycled, discarded, no_verdict, and the
pool's), with bootstrap intervals over the gold pairs. The merge filters only when kept + recycled
is shown cleaner than the pool at the configured confidence; otherwise it keeps every pool pair
as labelled and says why, with the numbers (curation never makes the data worse than the pool).
"Shown" uses the pool itself where it can (`mirror_test`): each pool pair is also decided as if its
label were the other way round, and the rule must keep pairs as labelled more often than flipped
(a paired test over the whole pool, far more pairs than the gold), with the gold replay agreeing in
direction (and, when anything is recycled, its bound on kept + recycled below the pool's noise).
Runs per shard with crash-safe resume (`shardrun`), so a pipeline can fan out over shards.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rewardops.curation.attributes import fill_attributes
from rewardops.curation.judges import JudgeEnsemble
from rewardops.curation.protocols import PairScorer
from rewardops.curation.retrieval import ExampleRetriever
from rewardops.curation.settings import CurationSettings as _DEFAULTS
from rewardops.curation.shardrun import run_shards, summarize
from rewardops.data.schema import PreferencePair
from rewardops.data.shards import count_pairs
from rewardops.errors import ConfigError

OUTPUTS = ("kept", "discarded", "no_verdict", "recycled")
MIRROR = "mirror:"  # counters `mirror:<set as labelled>><set if flipped>` (`Stage2Filter._mirror`, `mirror_test`)


@dataclass
class Stage2Config:
    """The filter's knobs; defaults are `CurationSettings`'s (declared once there)."""

    band: float = _DEFAULTS.band  # |p_best - 0.5| <= band is "uncertain" and goes to the judges
    gold_threshold: float = _DEFAULTS.gold_threshold  # the gold RM agrees iff p_gold > this
    judge_disagreements: bool = _DEFAULTS.judge_disagreements  # p_best < 0.5 - band also goes to the judges
    recycle: bool = _DEFAULTS.recycle  # write confidently reversed discarded pairs flipped to `recycled`
    recycle_confidence: float = _DEFAULTS.recycle_confidence  # both RMs must give p <= 1 - this to flip a pair
    batch_size: int = _DEFAULTS.batch_size


class Stage2Filter:
    def __init__(
        self,
        best: PairScorer,
        gold: PairScorer,
        config: Stage2Config | None = None,
        judges: JudgeEnsemble | None = None,
        examples: ExampleRetriever | None = None,
        attributes: Any = None,
        protected: tuple[set[str], set[str]] | None = None,
    ) -> None:
        """`attributes`: a zero-argument callable building the attribute generator (called on the
        first judged pair lacking attributes). `protected`: (ids, content keys) of stage 1's gold and
        silver pairs, which recycling never contradicts or duplicates."""
        self.best = best
        self.gold = gold
        self.config = config or Stage2Config()
        self.judges = judges
        self.examples = examples
        self.make_attributes = attributes
        self._attributes: Any = None
        self.protected_ids, self.protected_keys = protected or (set(), set())

    def _attribute_generator(self) -> Any:
        if self._attributes is None:
            if self.make_attributes is None:
                raise ConfigError("stage 2: a judged pair lacks attributes and no attribute generator is configured "
                                 "(settings `attributes`)")
            self._attributes = self.make_attributes()
        return self._attributes

    def _recycle(self, pair: PreferencePair, counters: Counter) -> PreferencePair | None:
        """The flipped pair if recycling it cannot add noise, else None (and why, counted)."""
        limit = 1.0 - self.config.recycle_confidence
        pb, pg = pair.scores.get("stage2_best_rm_p", 0.5), pair.scores.get("stage2_gold_rm_p", 0.5)
        if pb > limit or pg > limit:
            counters["recycle_skipped:not_confident"] += 1
            return None
        if pair.id in self.protected_ids:
            counters["recycle_skipped:human_or_stage1_verified"] += 1
            return None
        if unordered_key(pair) in self.protected_keys:
            counters["recycle_skipped:duplicate_of_stage1"] += 1
            return None
        counters["recycled"] += 1
        return pair.flipped()

    def process_batch(self, pairs: list[PreferencePair], counters: Counter) -> Iterable[tuple[str, PreferencePair]]:
        cfg = self.config
        p_best = self.best.score_pairs(pairs)
        p_gold = self.gold.score_pairs(pairs)
        decided: list[tuple[str, PreferencePair]] = []
        to_judge: list[PreferencePair] = []
        for pair, pb, pg in zip(pairs, p_best, p_gold):
            pair.scores["stage2_best_rm_p"] = float(pb)
            pair.scores["stage2_gold_rm_p"] = float(pg)
            if pg <= cfg.gold_threshold:
                counters["gold_rm_disagrees"] += 1
                pair.lineage.append(f"stage2:gold_rm_disagrees(p={pg:.3f})")
                decided.append(("discarded", pair))
            elif pb > 0.5 + cfg.band:
                counters["best_rm_agrees"] += 1
                pair.lineage.append(f"stage2:best_rm_agrees(p={pb:.3f})")
                decided.append(("kept", pair))
            elif pb < 0.5 - cfg.band and not cfg.judge_disagreements:
                counters["best_rm_disagrees"] += 1
                pair.lineage.append(f"stage2:best_rm_disagrees(p={pb:.3f})")
                decided.append(("discarded", pair))
            elif self.judges is None:
                # No judges configured: the best RM alone decides (the paper's rule with no LLM path).
                counters["no_judges_best_rm_decides"] += 1
                pair.lineage.append(f"stage2:no_judges:best_rm(p={pb:.3f})")
                decided.append(("kept" if pb > 0.5 else "discarded", pair))
            else:
                to_judge.append(pair)
        if to_judge:
            decided.extend(self._judge(to_judge, counters))
        for name, pair in decided:
            if pair.id not in self.protected_ids:  # a stage-1 gold or silver pair trained the RMs: no evidence
                counters[f"{MIRROR}{name}>{self._mirror(pair, name)}"] += 1
            pair.lineage.append(f"stage2:{name}")
            if pair.truth_chosen_better is not None:
                counters[f"truth_known:{name}"] += 1
                counters[f"truth_wrong:{name}"] += int(not pair.truth_chosen_better)
            counters[f"best_rm_p_above_half:{name}"] += int(pair.scores["stage2_best_rm_p"] > 0.5)
            yield name, pair
            if name == "discarded" and self.config.recycle:
                flipped = self._recycle(pair, counters)
                if flipped is not None:
                    if flipped.truth_chosen_better is not None:
                        counters["truth_known:recycled"] += 1
                        counters["truth_wrong:recycled"] += int(not flipped.truth_chosen_better)
                    yield "recycled", flipped

    def _mirror(self, pair: PreferencePair, name: str) -> str:
        """The set the rule would put this pair in had its label been the other way round: both RMs
        are antisymmetric (p -> 1 - p) and a judged pair's verdict reverses with it. A pair that only
        the flipped orientation would send to the judges gets the best RM's side (no judge is called
        for the mirror). What `decide`'s pool test counts."""
        cfg = self.config
        pb, pg = 1.0 - pair.scores["stage2_best_rm_p"], 1.0 - pair.scores["stage2_gold_rm_p"]
        if pg <= cfg.gold_threshold:
            return "discarded"
        if pb > 0.5 + cfg.band:
            return "kept"
        if pb < 0.5 - cfg.band and not cfg.judge_disagreements:
            return "discarded"
        if any(step.startswith("stage2:judges") for step in pair.lineage):
            return {"kept": "discarded", "discarded": "kept"}.get(name, name)
        return "kept" if pb > 0.5 else "discarded"

    def _judge(self, pairs: list[PreferencePair], counters: Counter) -> list[tuple[str, PreferencePair]]:
        assert self.judges is not None
        made = fill_attributes(pairs, self._attribute_generator)
        counters.update({k: v for k, v in made.items() if v})
        examples = self.examples.examples(pairs) if self.examples is not None else [[] for _ in pairs]
        verdicts = self.judges.judge(list(zip(pairs, examples)))
        out = []
        for pair, v, ex in zip(pairs, verdicts, examples):
            counters["judged"] += 1
            votes = [x for x in v.per_model.values() if x is not None]
            if votes:
                pair.scores["stage2_judge_agree_frac"] = sum(votes) / len(votes)
            tag = f"judges(n_examples={len(ex)})"
            if v.agrees is None:
                counters["no_verdict"] += 1
                pair.lineage.append(f"stage2:{tag}:no_verdict")
                out.append(("no_verdict", pair))
            elif v.agrees:
                counters["judges_agree"] += 1
                pair.lineage.append(f"stage2:{tag}:agree")
                out.append(("kept", pair))
            else:
                counters["judges_disagree"] += 1
                pair.lineage.append(f"stage2:{tag}:disagree")
                out.append(("discarded", pair))
        return out

    def run(self, pool_dir: str | Path, out_dir: str | Path, only: Sequence[int] | None = None,
            progress: bool = True) -> dict[str, Any]:
        """Filter every (or the `only`) shard of `pool_dir` into `out_dir`; resumable."""
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        out = Path(out_dir)
        total = count_pairs(pool_dir)
        with Progress(TextColumn("stage 2"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      disable=not progress, transient=True) as bar:
            task = bar.add_task("scan", total=total)
            run_shards(pool_dir, out, OUTPUTS, self.process_batch, only=only, batch_size=self.config.batch_size,
                       on_batch=lambda n: bar.advance(task, n),
                       on_skip=lambda i, m: bar.advance(task, m["input_rows"]))
        from rewardops.outputs import seal_output

        for name in OUTPUTS:  # each output is a dataset readers verify (re-sealed when more shards land)
            (out / name).mkdir(exist_ok=True)
            seal_output(out / name)
        summary = summarize(out)
        summary["config"] = asdict(self.config)
        summary["best_rm"] = self.best.name
        summary["gold_rm"] = self.gold.name
        if self.judges is not None:
            summary["judges"] = self.judges.name
            summary["judge_stats_this_process"] = self.judges.stats.as_dict()
        (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
        return summary


def unordered_key(pair: PreferencePair) -> str:
    """The same for a pair and its flipped copy: conversation and the two responses, unordered."""
    import hashlib

    convo = json.dumps([[m.role, m.content] for m in pair.conversation], ensure_ascii=False)
    a, b = sorted((pair.chosen, pair.rejected))
    return hashlib.blake2b(json.dumps([convo, a, b], ensure_ascii=False).encode(), digest_size=16).hexdigest()



# -- the decision: filter, or keep all and say why --------------------------------------------------
REPLAY_SETS = ("kept", "discarded", "no_verdict", "recycled")


def mirror_test(counters: Mapping[str, int], z: float) -> dict[str, Any] | None:
    """The pool's own evidence that the rule keeps right labels more often than wrong ones.

    Every pool pair not used to train the RMs is decided as labelled and, for free, as if its label
    were the other way round (`Stage2Filter._mirror`; counters `mirror:<set>><mirror set>`). Over
    the pool, P(kept as labelled) - P(kept flipped) = (1 - 2 pi) (K_right - K_wrong), where pi is
    the pool's noise and K_right / K_wrong the rates at which the rule keeps a pair carrying its
    right / wrong label. When labels are right more often than wrong (pi < 0.5) its sign is the
    sign of K_right - K_wrong, which is exactly when the kept set is cleaner than the pool
    (noise(kept) / pi = K_wrong / (pi K_wrong + (1 - pi) K_right) < 1). A paired test over
    thousands of pool pairs, where the gold replay has a few hundred. None without mirror counters."""
    pairs = {k[len(MIRROR):]: int(v) for k, v in counters.items() if k.startswith(MIRROR)}
    n = sum(pairs.values())
    if not n:
        return None
    kept_only = sum(v for k, v in pairs.items() if k.split(">")[0] == "kept" and k.split(">")[1] != "kept")
    mirror_only = sum(v for k, v in pairs.items() if k.split(">")[0] != "kept" and k.split(">")[1] == "kept")
    diff = (kept_only - mirror_only) / n
    se = max(((kept_only + mirror_only) / n - diff * diff) / n, 0.0) ** 0.5
    return {"pairs": n, "kept_as_labelled": round((kept_only + pairs.get("kept>kept", 0)) / n, 4),
            "kept_if_flipped": round((mirror_only + pairs.get("kept>kept", 0)) / n, 4),
            "difference": round(diff, 4), "se": round(se, 5), "lower_bound": round(diff - z * se, 4),
            "shows_skill": bool(diff - z * se > 0)}


def replay_outcomes(flt: Stage2Filter, pairs: Sequence[PreferencePair]) -> list[dict[str, Any]]:
    """Every gold pair through `flt`'s rule as labelled ("right") and flipped ("wrong"): the sets each
    lands in (a discarded pair may also be recycled). `flt` must score gold pairs with RMs that were not
    trained, selected or calibrated on them (the cross-fitted best and gold RMs): otherwise the replay
    credits them with the skill they were picked for. Recycling gates apply as for a pool pair (nothing is
    protected here: the question is what the rule does to a pair like this)."""
    from dataclasses import replace

    pairs = list(pairs)
    out = {p.id: {"id": p.id, "right": [], "wrong": []} for p in pairs}
    for orientation in ("right", "wrong"):
        batch = [replace(p, scores=dict(p.scores), lineage=list(p.lineage), meta=dict(p.meta)) if orientation == "right"
                 else p.flipped() for p in pairs]
        for name, pair in flt.process_batch(batch, Counter()):
            out[pair.id][orientation].append(name)
    return list(out.values())


def _noise_of(pi: Any, r: Any, w: Any) -> dict[str, Any]:
    """Each set's wrong-label share, for pool noise pi and per-set rates at which right (r) and wrong
    (w) pairs land in it (arrays over bootstrap draws, last axis = REPLAY_SETS). A recycled pair is
    flipped, so it is wrong where the original was right."""
    k, d, v, c = (REPLAY_SETS.index(n) for n in REPLAY_SETS)
    with np.errstate(divide="ignore", invalid="ignore"):
        def share(wrong: Any, right: Any) -> Any:
            return np.where(wrong + right > 0, wrong / (wrong + right), np.nan)

        wk, rk = pi * w[..., k], (1 - pi) * r[..., k]
        wc, rc = (1 - pi) * r[..., c], pi * w[..., c]  # recycled: wrong = right pairs flipped
        return {"pool": pi, "kept": share(wk, rk), "discarded": share(pi * w[..., d], (1 - pi) * r[..., d]),
                "no_verdict": share(pi * w[..., v], (1 - pi) * r[..., v]), "recycled": share(wc, rc),
                "kept+recycled": share(wk + wc, rk + rc)}


def _pool_noise(q_kept: float, r: Any, w: Any) -> Any:
    """The pool's wrong share from its kept rate: q = (1 - pi) r_kept + pi w_kept (NaN where the rule
    keeps wrong pairs as often as right ones: then the pool's noise is not identifiable)."""
    k = REPLAY_SETS.index("kept")
    sep = r[..., k] - w[..., k]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sep > 0, np.clip((r[..., k] - q_kept) / sep, 0.0, 1.0), np.nan)


def _ratio(pi: Any, r: Any, w: Any) -> Any:
    """noise(kept + recycled) / noise(pool), written so that it stays finite as the pool's noise pi
    goes to 0 (-> w_kept / r_kept without recycling; recycling right pairs into a clean pool -> inf)."""
    k, c = REPLAY_SETS.index("kept"), REPLAY_SETS.index("recycled")
    p = np.clip(pi, 1e-9, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        wrong_over_pi = w[..., k] + (1 - p) / p * r[..., c]
        total = p * w[..., k] + (1 - p) * (r[..., k] + r[..., c]) + p * w[..., c]
        return np.where(np.isnan(pi), np.nan, np.where(total > 0, wrong_over_pi / total, np.nan))


def decide(counts: dict[str, int], outcomes: Sequence[dict[str, Any]], z: float, draws: int = 2000,
           seed: int = 0, enforce: bool = True, counters: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Filter, or keep all: each set's estimated noise with an interval, and the verdict with its why.

    `counts`: stage 2's outputs over the pool (kept, discarded, no_verdict, recycled). `outcomes`:
    `replay_outcomes` of the gold. Intervals come from a Bayesian bootstrap over gold pairs (a pair
    and its flipped copy move together: they are one question asked both ways), with one
    uninformative pseudo-pair (both orientations land alike) so a handful of perfectly separated
    gold pairs cannot claim certainty. Stage 2 filters iff the one-sided upper bound (at
    confidence Phi(z)) of noise(kept + recycled) / noise(pool) is below 1 (a ratio, because the pool's
    own estimate can be near 0 while the rule still clearly keeps right labels over wrong ones). With
    the filter's `counters` holding mirror counts, the test is `mirror_test`'s instead (the pool's
    paired evidence), with the gold replay keeping right labels more often than wrong ones and, when
    anything was recycled, the bound above as well. `enforce=False` (settings
    `keep_all_if_rms_untrusted: false`) filters anyway, the paper's rule as is, and says so."""
    from statistics import NormalDist

    confidence = NormalDist().cdf(z)
    n_pool = sum(int(counts.get(s, 0)) for s in ("kept", "discarded", "no_verdict"))
    n = len(outcomes)
    base: dict[str, Any] = {"gold_pairs": n, "pool_pairs": n_pool, "confidence": round(confidence, 4),
                            "interval_level": round(2 * confidence - 1, 4),  # central; its upper end is the one-sided bound
                            "method": "cross-fitted gold replay, paired Bayesian bootstrap"}
    if not n_pool:
        return {**base, "filter": False, "estimated": False, "why": "the pool is empty: nothing to filter"}
    if not n:
        why = "no gold pairs to replay: the noise of the sets cannot be estimated, so every pool pair is kept as labelled"
        return {**base, "filter": not enforce, "estimated": False,
                "why": why if enforce else "no gold replay; filtering anyway (keep_all_if_rms_untrusted: false)"}
    r = np.array([[float(s in o["right"]) for s in REPLAY_SETS] for o in outcomes])
    w = np.array([[float(s in o["wrong"]) for s in REPLAY_SETS] for o in outcomes])
    q_kept = counts.get("kept", 0) / n_pool
    r_mean, w_mean = r.mean(0), w.mean(0)
    point = _noise_of(_pool_noise(q_kept, r_mean, w_mean), r_mean, w_mean)
    # Bayesian bootstrap: Dirichlet(1) weights over the n pairs + one pseudo-pair landing alike both ways
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(n + 1), size=draws)
    neutral = (r_mean + w_mean) / 2
    rb = weights[:, :n] @ r + weights[:, n:] * neutral
    wb = weights[:, :n] @ w + weights[:, n:] * neutral
    boot = _noise_of(_pool_noise(q_kept, rb, wb), rb, wb)
    lo_q, hi_q = 1 - confidence, confidence

    def summary(name: str) -> dict[str, Any]:
        est = float(point[name])
        b = boot[name][np.isfinite(boot[name])]
        interval = [round(float(np.quantile(b, lo_q)), 4), round(float(np.quantile(b, hi_q)), 4)] if len(b) else None
        return {"estimate": None if np.isnan(est) else round(est, 4), "interval": interval}

    sets = {name: summary(name) for name in ("pool", "kept", "recycled", "kept+recycled", "discarded", "no_verdict")}
    # the test: noise(kept + recycled) / noise(pool) < 1. A draw where the pool's noise is not
    # identifiable counts as "not cleaner" (a ratio of 10, above any the decision accepts).
    ratio_draws = _ratio(_pool_noise(q_kept, rb, wb), rb, wb)
    upper = float(np.quantile(np.where(np.isfinite(ratio_draws), ratio_draws, 10.0), hi_q))
    upper = upper if upper < 10.0 else float("inf")
    ratio = float(_ratio(point["pool"], r_mean, w_mean))
    k = REPLAY_SETS.index("kept")
    rates = {"right_kept": round(float(r_mean[k]), 4), "wrong_kept": round(float(w_mean[k]), 4),
             "right_recycled": round(float(r_mean[-1]), 4), "wrong_recycled": round(float(w_mean[-1]), 4)}
    published = counts.get("kept", 0) + counts.get("recycled", 0) > 0
    mirror = mirror_test(counters or {}, z)
    if mirror is None:  # no pool evidence (an older filter run): the gold replay's bound alone
        cleaner = bool(np.isfinite(upper) and upper < 1 and published)
    else:  # the pool's paired test, the gold agreeing in direction; recycling also needs the gold's bound
        cleaner = bool(published and mirror["shows_skill"] and r_mean[k] > w_mean[k]
                       and (not counts.get("recycled", 0) or (np.isfinite(upper) and upper < 1)))
        base["method"] += "; pool mirror test (each pool pair decided as labelled and flipped)"
    kr, pool = sets["kept+recycled"], sets["pool"]
    numbers = (f"estimated noise kept+recycled {_fmt(kr['estimate'])} (interval {_fmt_iv(kr['interval'])}) vs pool "
               f"{_fmt(pool['estimate'])} (interval {_fmt_iv(pool['interval'])}); their ratio {ratio:.2f}, upper bound "
               f"{upper:.2f} at {confidence:.0%} confidence (filtering needs < 1); from {n} gold pairs replayed both ways (right labels kept "
               f"{rates['right_kept']:.2f}, wrong labels kept {rates['wrong_kept']:.2f})")
    if not np.isfinite(upper):
        numbers = (f"the rule keeps wrong gold labels about as often as right ones (right kept {rates['right_kept']:.2f}, "
                   f"wrong kept {rates['wrong_kept']:.2f}, {n} gold pairs): the pool's noise is not identifiable")
    if mirror is not None:
        numbers = (f"on {mirror['pairs']} pool pairs the rule keeps {mirror['kept_as_labelled']:.3f} as labelled and "
                   f"{mirror['kept_if_flipped']:.3f} flipped (difference {mirror['difference']:+.3f} ± {mirror['se']:.3f}, "
                   f"lower bound {mirror['lower_bound']:+.3f} at {confidence:.0%} confidence; filtering needs > 0 and the "
                   f"gold agreeing); gold replay: {numbers}")
    if cleaner:
        verdict, why = True, f"filter: kept+recycled is cleaner than the pool: {numbers}"
    elif enforce:
        verdict, why = False, f"keep every pool pair as labelled: kept+recycled is not shown cleaner than the pool: {numbers}"
    else:
        verdict, why = True, f"filter anyway (keep_all_if_rms_untrusted: false, the paper's rule as is): {numbers}"
    return {**base, "filter": verdict, "estimated": True, "shown_cleaner": cleaner, "why": why, "noise": sets,
            "ratio": round(ratio, 4) if np.isfinite(ratio) else None,
            "ratio_upper_bound": round(upper, 4) if np.isfinite(upper) else None, "replay_rates": rates,
            "pool_mirror": mirror}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _fmt_iv(iv: list[float] | None) -> str:
    return "n/a" if iv is None else f"{iv[0]:.3f}-{iv[1]:.3f}"
