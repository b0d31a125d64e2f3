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
When the RMs cannot be trusted (`keep_all_reason`: the gold RM no better than chance on held-out
gold), every pair is kept as labelled: filtering by a coin could only make the data worse.
Runs per shard with crash-safe resume (`shardrun`), so a pipeline can fan out over shards.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class Stage2Config:
    """The filter's knobs; defaults are `CurationSettings`'s (declared once there)."""

    band: float = _DEFAULTS.band  # |p_best - 0.5| <= band is "uncertain" and goes to the judges
    gold_threshold: float = _DEFAULTS.gold_threshold  # the gold RM agrees iff p_gold > this
    judge_disagreements: bool = _DEFAULTS.judge_disagreements  # p_best < 0.5 - band also goes to the judges
    recycle: bool = _DEFAULTS.recycle  # write confidently reversed discarded pairs flipped to `recycled`
    recycle_confidence: float = _DEFAULTS.recycle_confidence  # both RMs must give p <= 1 - this to flip a pair
    batch_size: int = _DEFAULTS.batch_size
    # non-empty: the RMs cannot be trusted (e.g. the gold RM is no better than chance on held-out
    # gold), so every pair is kept as it is and this reason goes to its lineage
    keep_all_reason: str = ""


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
        if cfg.keep_all_reason:
            counters["kept_untrusted_rms"] += len(pairs)
            for pair in pairs:
                pair.lineage.append("stage2:kept(untrusted RMs)")
                if pair.truth_chosen_better is not None:
                    counters["truth_known:kept"] += 1
                    counters["truth_wrong:kept"] += int(not pair.truth_chosen_better)
                yield "kept", pair
            return
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

