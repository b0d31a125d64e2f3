"""Stage 1: the small-scale human-in-the-loop loop (paper §3.2).

Each iteration i:
  1. train an RM on silver, selecting the checkpoint by gold accuracy (the `RMTrainer`);
  2. score every gold pair, p = sigmoid(r_chosen - r_rejected), temperature-scaled on gold
     (`rms.fit_temperature`) so the k rule reads calibrated confidences;
  3. error-driven retrieval from the unverified pool (k = 8 if p <= 0.5 else ceil(8(1 - p)));
  4. route the retrieved pairs: the first `human_per_iteration` by priority (objective, then low
     controversiality: the paper's order) to human verification -> gold (undecidable ->
     discarded); the rest to the LLM judges with up to 8 retrieved gold examples -> silver (no
     verdict -> `no_verdict`: counted, written to the iteration's `no_verdict/` and RETURNED to
     the pool, so a later iteration can label it; if the judges decide none of a non-empty batch,
     the run stops if no judge cast one valid vote: a configuration problem, not data);
  5. write the iteration's sets as a new data version `iter-XX/{gold,silver,...}` and log sizes,
     gold accuracy and judge statistics (MLflow when a tracker is given).
A finished iteration is never redone: a rerun resumes after the last `iter-XX/metrics.json`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardops.curation.human import apply_human_verdict
from rewardops.curation.judges import JudgeEnsemble
from rewardops.curation.protocols import Annotator, Embedder, PairScorer, RMTrainer
from rewardops.curation.retrieval import ExampleRetriever, build_index, error_driven_retrieve
from rewardops.curation.rms import calibrate, fit_temperature
from rewardops.curation.settings import CurationSettings as _DEFAULTS
from rewardops.data.schema import LabelSource, PreferencePair
from rewardops.data.shards import read_pairs, shard_paths, write_pairs
from rewardops.errors import NotFoundError, ServiceError

@dataclass
class Stage1Config:
    """The loop's knobs; defaults are `CurationSettings`'s (declared once there)."""

    iterations: int = _DEFAULTS.iterations
    k_max: int = _DEFAULTS.k_max
    human_per_iteration: int = _DEFAULTS.human_per_iteration
    n_examples: int = _DEFAULTS.n_examples
    shard_size: int = _DEFAULTS.shard_size
    # Most pairs the judges label per iteration (0: no cap). Retrieved pairs past the budget, in
    # priority order, go back to the pool, as an annotation budget would leave them.
    judge_budget: int = _DEFAULTS.judge_budget


@dataclass
class IterationReport:
    iteration: int
    gold_accuracy: float
    gold_size: int
    silver_size: int
    retrieved: int
    added_gold: int
    added_silver: int
    undecidable: int
    no_verdict: int
    unreviewed: int
    pool_left: int
    judge: dict[str, Any] = field(default_factory=dict)
    rm_temperature: float = 1.0  # the temperature fitted on gold before the k rule
    retrieval_texts: int = 0  # distinct texts the embedder embedded so far
    retrieval_truncated: int = 0  # of those, cut at the embedder's length limit (attributes come first)

    def metrics(self) -> dict[str, float]:
        m = {k: float(v) for k, v in asdict(self).items() if isinstance(v, (int, float)) and k != "iteration"}
        m.update({f"judge_{k}": float(v) for k, v in self.judge.items() if isinstance(v, (int, float))})
        return m


def _load(path: Path | None) -> list[PreferencePair]:
    if path is None or not Path(path).exists() or not shard_paths(path):
        return []
    return list(read_pairs(path))


def priority(pair: PreferencePair) -> tuple[int, int]:
    """Human verification order: objective before subjective, then low controversiality first."""
    obj = {"objective": 0, "subjective": 1}.get(pair.objectivity or "", 2)
    con = {"low": 0, "medium": 1, "high": 2}.get(pair.controversiality or "", 3)
    return obj, con


def _copy(pair: PreferencePair) -> PreferencePair:
    return PreferencePair(**{**pair.__dict__, "lineage": list(pair.lineage), "scores": dict(pair.scores),
                             "meta": dict(pair.meta)})


class NoVerdictError(ServiceError):
    """The judges decided none of the pairs they were given."""


def _with_llm_label(pair: PreferencePair, agrees: bool, judges: str, it: int) -> PreferencePair:
    out = pair if agrees else pair.flipped()
    if not agrees:
        out.lineage[-1] = f"stage1:iter-{it:02d}:judges:relabelled"
    else:
        out.lineage.append(f"stage1:iter-{it:02d}:judges:confirmed")
    out.label_source = LabelSource.LLM.value
    out.meta = {**out.meta, "judges": judges}
    return out


class Stage1Loop:
    def __init__(
        self,
        trainer: RMTrainer,
        embedder: Embedder,
        annotator: Annotator,
        judges: JudgeEnsemble,
        config: Stage1Config | None = None,
        tracker: Any = None,
    ) -> None:
        self.trainer = trainer
        self.embedder = embedder
        self.annotator = annotator
        self.judges = judges
        self.config = config or Stage1Config()
        self.tracker = tracker

    def _write_version(self, out: Path, sets: dict[str, list[PreferencePair]], report: dict[str, Any]) -> None:
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for name, pairs in sets.items():
            write_pairs(pairs, tmp / name, shard_size=self.config.shard_size)
        (tmp / "metrics.json").write_text(json.dumps(report, indent=1, sort_keys=True))
        if out.exists():
            rm = out.with_name(out.name + ".old")
            shutil.rmtree(rm, ignore_errors=True)
            out.rename(rm)  # an unfinished earlier attempt: replaced whole
            shutil.rmtree(rm)
        tmp.rename(out)

    def run(self, gold_dir: Path, silver_dir: Path, pool_dir: Path, out_dir: Path,
            progress: bool = True) -> list[IterationReport]:
        from rich.console import Console

        console = Console(quiet=not progress, stderr=True)
        cfg = self.config
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        seed = out / "iter-00"
        if not (seed / "metrics.json").exists():
            self._write_version(seed, {"gold": _load(gold_dir), "silver": _load(silver_dir)},
                                {"iteration": 0, "source": {"gold": str(gold_dir), "silver": str(silver_dir), "pool": str(pool_dir)}})
        reports: list[IterationReport] = []
        start = 1
        while (out / f"iter-{start:02d}" / "metrics.json").exists() and start <= cfg.iterations:
            reports.append(IterationReport(**json.loads((out / f"iter-{start:02d}" / "metrics.json").read_text())["report"]))
            start += 1
        prev = out / f"iter-{start - 1:02d}"
        gold, silver = _load(prev / "gold"), _load(prev / "silver")
        used = {p.id for p in gold} | {p.id for p in silver}
        for k in range(1, start):  # undecidable pairs are discarded (the protocol); no-verdict ones stay in the pool
            used |= {p.id for p in _load(out / f"iter-{k:02d}" / "undecidable")}
        pool = [p for p in _load(pool_dir) if p.id not in used]
        by_id = {p.id: p for p in pool}
        console.log(f"stage 1: gold {len(gold)}, silver {len(silver)}, pool {len(pool)}; iterations {start}..{cfg.iterations}")
        pool_index = build_index(pool, self.embedder)
        retriever = ExampleRetriever(gold, self.embedder, k=cfg.n_examples)

        for it in range(start, cfg.iterations + 1):
            cur = out / f"iter-{it:02d}"
            prev = out / f"iter-{it - 1:02d}"
            console.log(f"iteration {it}: training on {len(silver)} silver, selecting on {len(gold)} gold")
            scorer: PairScorer = self.trainer.train(prev / "silver", prev / "gold", cur.with_name(cur.name + ".rm"))
            raw = scorer.score_pairs(gold) if gold else []
            temperature = fit_temperature(raw)
            probs = calibrate(raw, temperature)
            acc = float(np.mean(np.asarray(probs) > 0.5)) if probs else float("nan")
            for g, p in zip(gold, probs):
                g.scores[f"stage1_iter{it:02d}_p"] = float(p)
            hits = error_driven_retrieve(gold, probs, self.embedder, pool_index, cfg.k_max)
            items = []
            for pid, gid, gp in hits:
                pair = _copy(by_id[pid])  # the pool's copy stays as it was (a pair may return to it)
                pair.lineage.append(f"stage1:iter-{it:02d}:retrieved(by={gid},p={gp:.3f})")
                items.append(pair)
            ranked = sorted(items, key=priority)
            to_human, to_judges = ranked[: cfg.human_per_iteration], ranked[cfg.human_per_iteration :]
            deferred = to_judges[cfg.judge_budget:] if cfg.judge_budget > 0 else []
            to_judges = to_judges[: len(to_judges) - len(deferred)]

            answers = self.annotator.verify(to_human) if to_human else []
            added_gold, undecidable = [], []
            for pair, ans in zip(to_human, answers):
                if ans is None:
                    pair.lineage.append(f"stage1:iter-{it:02d}:human:undecidable")
                    undecidable.append(pair)
                else:
                    added_gold.append(apply_human_verdict(pair, ans, self.annotator.name))
            # an interactive reviewer stopped early, or past the judge budget: back to the pool
            unreviewed = to_human[len(answers):] + deferred

            added_silver, no_verdict = [], []
            if to_judges:
                self.judges.stats = type(self.judges.stats)()
                examples = retriever.examples(to_judges)
                for pair, v in zip(to_judges, self.judges.judge(list(zip(to_judges, examples)))):
                    if v.agrees is None:
                        pair.lineage.append(f"stage1:iter-{it:02d}:judges:no_verdict")
                        no_verdict.append(pair)
                    else:
                        added_silver.append(_with_llm_label(pair, v.agrees, self.judges.name, it))
            judge_stats = self.judges.stats.as_dict() if to_judges else {}
            if to_judges and not sum(self.judges.stats.valid_votes.values()):
                raise NoVerdictError(
                    f"iteration {it}: the judges ({self.judges.name}) cast no valid vote on any of {len(to_judges)} pairs "
                    f"(failures: {self._judge_failures()}); check the judge settings (server, model, credentials). "
                    "Nothing of this iteration was written; the finished iterations are kept.")

            # unreviewed (budget, a reviewer who stopped) and no-verdict pairs go back to the pool
            unreviewed_ids = {p.id for p in unreviewed} | {p.id for p in no_verdict}
            done = [p.id for p in items if p.id not in unreviewed_ids]
            pool_index.remove(done)
            for pid in done:
                by_id.pop(pid, None)
            gold = gold + added_gold
            silver = silver + added_silver
            retriever.add(added_gold)
            report = IterationReport(
                iteration=it, gold_accuracy=acc, gold_size=len(gold), silver_size=len(silver), retrieved=len(items),
                added_gold=len(added_gold), added_silver=len(added_silver), undecidable=len(undecidable),
                no_verdict=len(no_verdict), unreviewed=len(unreviewed), pool_left=len(pool_index),
                judge={k: v for k, v in judge_stats.items() if k != "per_model"}, rm_temperature=temperature,
                retrieval_texts=int(getattr(self.embedder, "embedded", 0)),
                retrieval_truncated=int(getattr(self.embedder, "truncated", 0)),
            )
            self._write_version(
                cur,
                {"gold": gold, "silver": silver, "added_gold": added_gold, "added_silver": added_silver,
                 "undecidable": undecidable, "no_verdict": no_verdict},
                {"report": asdict(report), "judge_stats": judge_stats, "rm": scorer.name,
                 "annotator": self.annotator.name, "judges": self.judges.name},
            )
            rm_tmp = cur.with_name(cur.name + ".rm")
            if rm_tmp.exists():
                shutil.rmtree(cur / "rm", ignore_errors=True)
                rm_tmp.rename(cur / "rm")
            if self.tracker is not None:
                self.tracker.log_metrics(report.metrics(), step=it)
            console.log(
                f"iteration {it}: gold acc {acc:.3f} (T={temperature:g}); retrieved {len(items)} -> +{len(added_gold)} gold, "
                f"+{len(added_silver)} silver, {len(undecidable)} undecidable, {len(no_verdict)} no verdict "
                f"(back in the pool), {len(unreviewed)} not reviewed (back in the pool)"
            )
            reports.append(report)
        if self.tracker is not None and reports:
            self.tracker.log_figure(iteration_figure(reports), "stage1_iterations.png")
        return reports

    def _judge_failures(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for m in self.judges.models:
            for k, v in getattr(m, "failures", {}).items():
                out[f"{m.name}:{k}"] = int(v)
        return out


def iteration_figure(reports: list[IterationReport]) -> Any:
    """Gold accuracy and set sizes per iteration (a PNG for MLflow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [r.iteration for r in reports]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(its, [r.gold_accuracy for r in reports], marker="o")
    a.set(xlabel="iteration", ylabel="gold accuracy of the selected RM", title="RM on silver, scored on gold")
    b.plot(its, [r.gold_size for r in reports], marker="o", label="gold")
    b.plot(its, [r.silver_size for r in reports], marker="o", label="silver")
    b.plot(its, [r.pool_left for r in reports], marker="o", label="pool left")
    b.set(xlabel="iteration", ylabel="pairs", title="set sizes")
    b.legend()
    fig.tight_layout()
    return fig


def train_final_models(trainer: RMTrainer, stage1_dir: Path, out_dir: Path) -> tuple[PairScorer, PairScorer]:
    """The two RMs stage 2 needs from a stage-1 folder (bench scripts): the best RM (final silver,
    selected on final gold) and the gold RM (all gold). The curation routes use
    `curation.steps.final_models`, which also calibrates them on gold."""
    latest = latest_iteration(stage1_dir)
    best = trainer.train(latest / "silver", latest / "gold", Path(out_dir) / "best_rm")
    gold = trainer.train(latest / "gold", None, Path(out_dir) / "gold_rm")
    return best, gold


def stage1_iterations(state: str | Path) -> list[Path]:
    return sorted(p for p in (Path(state) / "stage1").glob("iter-*") if (p / "metrics.json").is_file())


def latest_iteration(state: str | Path) -> Path:
    """The highest finished stage-1 iteration of a state (or of a bare stage-1 folder)."""
    state = Path(state)
    iters = stage1_iterations(state) or sorted(p for p in state.glob("iter-*") if (p / "metrics.json").is_file())
    if not iters:
        raise NotFoundError(f"{state}: no finished stage-1 iteration; run `rewardops curate stage1` first")
    return iters[-1]
