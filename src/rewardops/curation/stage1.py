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

The API: `Stage1Loop.resume(gold_dir, silver_dir, pool_dir, out_dir)` reads what the finished
iterations left (a `Stage1State`: gold, silver, the pool index with what moved out of it) and
`run_iteration(state, i)` runs iteration i on it; `run` is the two in a loop. The pool is never
loaded: `retrieval.PoolIndex` searches its on-disk vectors and fetches the retrieved pairs by
position. Each iteration records what moved out of the pool (`moved.json`: labelled and
undecidable pairs, by position and id) instead of copying the pool.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rewardops.curation.human import apply_human_verdict
from rewardops.curation.judges import JudgeEnsemble
from rewardops.curation.protocols import Annotator, Embedder, PairScorer, RMTrainer
from rewardops.curation.progress import Ticker, ensure_handler, log
from rewardops.curation.retrieval import VECTORS_DIR, ExampleRetriever, PoolIndex, error_driven_retrieve
from rewardops.curation.rms import calibrate, fit_temperature
from rewardops.curation.settings import CurationSettings as _DEFAULTS
from rewardops.data.schema import LabelSource, PreferencePair
from rewardops.data.shards import read_pairs, shard_paths, write_pairs
from rewardops.errors import ConfigError, NotFoundError, ServiceError

MOVED = "moved.json"
JUDGE_CHUNK = 64  # most pairs per judge call
JUDGE_CHUNK_S = 15.0  # a judge call is sized to take about this long (a local 135M judge needs seconds per
# pair on CPU), so the progress ticker has something to report at least twice a minute
JUDGE_FIRST_CHUNK = 4  # the first call, which measures the judges' pace

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


@dataclass
class Stage1State:
    """What the finished iterations of a stage-1 folder left: the next iteration's inputs."""

    out: Path  # the stage-1 folder (iter-00, iter-01, ...)
    gold: list[PreferencePair]
    silver: list[PreferencePair]
    pool: PoolIndex  # the unverified pool, minus what earlier iterations moved out
    retriever: ExampleRetriever  # gold examples for the judges' prompts
    reports: list[IterationReport]

    @property
    def next_iteration(self) -> int:
        return len(self.reports) + 1


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

    def _write_version(self, out: Path, sets: dict[str, list[PreferencePair]], report: dict[str, Any],
                       moved: dict[str, Any] | None = None) -> None:
        tmp = out.with_name(out.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for name, pairs in sets.items():
            write_pairs(pairs, tmp / name, shard_size=self.config.shard_size)
        if moved is not None:
            (tmp / MOVED).write_text(json.dumps(moved))
        (tmp / "metrics.json").write_text(json.dumps(report, indent=1, sort_keys=True))
        if out.exists():
            rm = out.with_name(out.name + ".old")
            shutil.rmtree(rm, ignore_errors=True)
            out.rename(rm)  # an unfinished earlier attempt: replaced whole
            shutil.rmtree(rm)
        tmp.rename(out)

    # -- resume ------------------------------------------------------------------------------------
    def resume(self, gold_dir: Path, silver_dir: Path, pool_dir: Path, out_dir: Path,
               vectors_dir: Path | None = None, embed_missing: bool = True) -> Stage1State:
        """The state after the finished iterations of `out_dir` (iter-00, the seed sets, is written
        on the first call). `vectors_dir`: the pool's vectors (default `out_dir/pool_vectors`;
        shards without vectors from this embedder are embedded there first)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        seed = out / "iter-00"
        if not (seed / "metrics.json").exists():
            self._write_version(seed, {"gold": _load(gold_dir), "silver": _load(silver_dir)},
                                {"iteration": 0, "source": {"gold": str(gold_dir), "silver": str(silver_dir), "pool": str(pool_dir)}})
        reports: list[IterationReport] = []
        while (out / f"iter-{len(reports) + 1:02d}" / "metrics.json").exists():
            path = out / f"iter-{len(reports) + 1:02d}" / "metrics.json"
            reports.append(IterationReport(**json.loads(path.read_text())["report"]))
        prev = out / f"iter-{len(reports):02d}"
        gold, silver = _load(prev / "gold"), _load(prev / "silver")
        pool = PoolIndex.open(pool_dir, vectors_dir or out / VECTORS_DIR, self.embedder, embed_missing=embed_missing)
        names = [p.name for p in pool.shards]
        by_id: set[str] = set()
        for k in range(1, len(reports) + 1):  # labelled and undecidable pairs left the pool; no-verdict ones stayed
            moved = json.loads((out / f"iter-{k:02d}" / MOVED).read_text())
            if moved.get("pool") == names:
                pool.remove((int(s), int(r)) for s, r in moved["positions"])
            else:  # the pool was re-sharded since: find them by id
                by_id.update(moved["ids"])
        if by_id:
            pool.remove_ids(by_id)
        retriever = ExampleRetriever(gold, self.embedder, k=self.config.n_examples)
        log.info("stage 1: gold %d, silver %d, pool %d live of %d in %d shard(s); %d iteration(s) done",
                 len(gold), len(silver), len(pool), int(pool.offsets[-1]), len(pool.shards), len(reports))
        return Stage1State(out, gold, silver, pool, retriever, reports)

    # -- one iteration -----------------------------------------------------------------------------
    def run_iteration(self, state: Stage1State, it: int) -> IterationReport:
        """Iteration `it` (it must be the state's next one): train, retrieve, people, judges; the
        iteration's sets and what moved out of the pool are written atomically and `state` advances."""
        if it != state.next_iteration:
            raise ConfigError(f"{state.out}: holds {len(state.reports)} finished iteration(s), so the next is "
                             f"{state.next_iteration}, not {it}")
        cfg = self.config
        out = state.out
        cur, prev = out / f"iter-{it:02d}", out / f"iter-{it - 1:02d}"
        gold, silver = state.gold, state.silver
        log.info("iteration %d: training the RM on %d silver, selecting on %d gold", it, len(silver), len(gold))
        scorer: PairScorer = self.trainer.train(prev / "silver", prev / "gold", cur.with_name(cur.name + ".rm"))
        raw = scorer.score_pairs(gold) if gold else []
        temperature = fit_temperature(raw)
        probs = calibrate(raw, temperature)
        acc = float(np.mean(np.asarray(probs) > 0.5)) if probs else float("nan")
        for g, p in zip(gold, probs):
            g.scores[f"stage1_iter{it:02d}_p"] = float(p)
        hits = error_driven_retrieve(gold, probs, self.embedder, state.pool, cfg.k_max)
        fetched = state.pool.fetch([pos for pos, _, _ in hits])
        items, where = [], {}
        for (pos, gid, gp), pair in zip(hits, fetched):
            pair.lineage.append(f"stage1:iter-{it:02d}:retrieved(by={gid},p={gp:.3f})")
            items.append(pair)
            where[pair.id] = pos
        ranked = sorted(items, key=priority)
        to_human, to_judges = ranked[: cfg.human_per_iteration], ranked[cfg.human_per_iteration :]
        deferred = to_judges[cfg.judge_budget:] if cfg.judge_budget > 0 else []
        to_judges = to_judges[: len(to_judges) - len(deferred)]

        added_gold, undecidable, unreviewed = self._people(to_human, it)
        unreviewed = unreviewed + deferred  # a reviewer who stopped early, or past the judge budget: back to the pool
        added_silver, no_verdict, judge_stats = self._judge(to_judges, state.retriever, it)

        # labelled and undecidable pairs leave the pool; unreviewed and no-verdict ones stay in it
        back = {p.id for p in unreviewed} | {p.id for p in no_verdict}
        done = [p.id for p in items if p.id not in back]
        moved = {"pool": [p.name for p in state.pool.shards], "ids": done, "positions": [list(where[i]) for i in done]}
        state.pool.remove(where[i] for i in done)
        gold = gold + added_gold
        silver = silver + added_silver
        report = IterationReport(
            iteration=it, gold_accuracy=acc, gold_size=len(gold), silver_size=len(silver), retrieved=len(items),
            added_gold=len(added_gold), added_silver=len(added_silver), undecidable=len(undecidable),
            no_verdict=len(no_verdict), unreviewed=len(unreviewed), pool_left=len(state.pool),
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
            moved=moved,
        )
        rm_tmp = cur.with_name(cur.name + ".rm")
        if rm_tmp.exists():
            shutil.rmtree(cur / "rm", ignore_errors=True)
            rm_tmp.rename(cur / "rm")
        state.gold, state.silver = gold, silver
        state.retriever.add(added_gold)
        state.reports.append(report)
        if self.tracker is not None:
            self.tracker.log_metrics(report.metrics(), step=it)
        log.info("iteration %d: gold acc %.3f (T=%g); retrieved %d -> +%d gold, +%d silver, %d undecidable, "
                 "%d no verdict (back in the pool), %d not reviewed (back in the pool); pool %d left",
                 it, acc, temperature, len(items), len(added_gold), len(added_silver), len(undecidable),
                 len(no_verdict), len(unreviewed), len(state.pool))
        return report

    def _people(self, to_human: list[PreferencePair], it: int
                ) -> tuple[list[PreferencePair], list[PreferencePair], list[PreferencePair]]:
        """(added gold, undecidable, not reviewed) from the annotator's answers."""
        if not to_human:
            return [], [], []
        log.info("iteration %d: people: %d pair(s) sent to %s", it, len(to_human), self.annotator.name)
        answers = self.annotator.verify(to_human)
        added_gold, undecidable = [], []
        for pair, ans in zip(to_human, answers):
            if ans is None:
                pair.lineage.append(f"stage1:iter-{it:02d}:human:undecidable")
                undecidable.append(pair)
            else:
                added_gold.append(apply_human_verdict(pair, ans, self.annotator.name))
        log.info("iteration %d: people: %d answered, %d undecidable", it, len(answers), len(undecidable))
        return added_gold, undecidable, to_human[len(answers):]

    def _judge(self, to_judges: list[PreferencePair], retriever: ExampleRetriever, it: int
               ) -> tuple[list[PreferencePair], list[PreferencePair], dict[str, Any]]:
        """(added silver, no verdict, judge statistics); refuses an iteration whose judges cast no valid vote."""
        if not to_judges:
            return [], [], {}
        self.judges.stats = type(self.judges.stats)()
        added_silver, no_verdict = [], []
        ticker = Ticker(f"iteration {it}: judging ({self.judges.name})", len(to_judges))
        start, size = 0, JUDGE_FIRST_CHUNK
        while start < len(to_judges):
            chunk = to_judges[start:start + size]
            began = time.monotonic()
            examples = retriever.examples(chunk)
            for pair, v in zip(chunk, self.judges.judge(list(zip(chunk, examples)))):
                if v.agrees is None:
                    pair.lineage.append(f"stage1:iter-{it:02d}:judges:no_verdict")
                    no_verdict.append(pair)
                else:
                    added_silver.append(_with_llm_label(pair, v.agrees, self.judges.name, it))
            ticker.add(len(chunk))
            start += len(chunk)
            per_pair = (time.monotonic() - began) / len(chunk)
            size = max(1, min(JUDGE_CHUNK, int(JUDGE_CHUNK_S / max(per_pair, 1e-6))))
        ticker.finish(f"{len(added_silver)} labelled, {len(no_verdict)} no verdict")
        if not sum(self.judges.stats.valid_votes.values()):
            raise NoVerdictError(
                f"iteration {it}: the judges ({self.judges.name}) cast no valid vote on any of {len(to_judges)} pairs "
                f"(failures: {self._judge_failures()}); check the judge settings (server, model, credentials). "
                "Nothing of this iteration was written; the finished iterations are kept.")
        return added_silver, no_verdict, self.judges.stats.as_dict()

    # -- every iteration ---------------------------------------------------------------------------
    def run(self, gold_dir: Path, silver_dir: Path, pool_dir: Path, out_dir: Path, progress: bool = True,
            iterations: int | None = None, vectors_dir: Path | None = None) -> list[IterationReport]:
        """Every iteration up to `iterations` (default the config's), resuming after the finished ones."""
        if progress:
            ensure_handler()
        last = self.config.iterations if iterations is None else iterations
        state = self.resume(gold_dir, silver_dir, pool_dir, out_dir, vectors_dir)
        for it in range(state.next_iteration, last + 1):
            self.run_iteration(state, it)
        reports = state.reports[:last]
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
