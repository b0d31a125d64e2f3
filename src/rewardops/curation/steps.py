"""The curation steps as the KFP components run them: folders in, folders out, one step each.

The curation library (`rewardops.curation`) runs stage 1 as one resumable loop and stage 2 per
shard. A pipeline needs those cut at step boundaries, with everything a step needs in its input
artifacts:

- `seed_split`: a preprocessed dataset -> a curation state `{gold, silver, pool}`: the first
  `gold_n` pairs verified by the annotator (the gold seed), the next `silver_n` as the silver seed
  with their original labels, the rest the unverified pool.
- `stage1_iteration`: state -> state with one more `stage1/iter-XX` (the loop's own resume: the
  previous iterations are in the input, `iterations` is set to this one).
- `final_models`: state -> the best RM and the gold RM stage 2 needs.
- `stage2_shard`: one pool shard through the consistency filter.
- `merge_curated`: stage 1's final gold and silver plus stage 2's kept pairs -> the curated
  training set (a pair stage 1 already labelled keeps its stage-1 label); `merge_shards`
  concatenates one named output of the per-shard folders (the recycled pairs).

`CurationSettings.annotator` / `.judges` pick the humans and judges: `simulated` (offline demo on
the generated world; needs its known truth) or, for judges, `chat` (an OpenAI-compatible server
from REWARDOPS_LLM_BASE_URL / REWARDOPS_LLM_MODEL).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_SETS = ("gold", "silver", "pool")
# simulated: answers from the generated world's truth; local: SmolLM2 in-process (likelihood of the
# two verdicts); chat: an OpenAI-compatible server (vLLM on the cluster).
JUDGE_KINDS = ("simulated", "local", "chat")


@dataclass(frozen=True)
class CurationSettings:
    annotator: str = "simulated"
    judges: str = "simulated"
    annotator_error: float = 0.05
    judge_error: float = 0.2
    local_judge_model: str = "smollm2-135m"
    n_judges: int = 2
    n_samples: int = 3
    rm: str = "hashed-bt"  # cheap RM for the loop: hashed-bt (fast) | embedding-bt (MiniLM features)
    human_per_iteration: int = 16
    judge_budget: int = 0  # most pairs the judges label per stage-1 iteration; 0: no cap
    local_judge_examples: int = 2  # retrieved gold examples in the local judge's prompt (a small model's context)
    stage2_band: float = 0.1  # |p_best - 0.5| <= band goes to the judges in stage 2
    stage2_judge_disagreements: bool = True  # pairs the best RM rejects also go to the judges (the paper)
    stage2_judges: bool = True  # False: stage 2 decides uncertain pairs by the best RM alone
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.annotator != "simulated":
            problems.append(f"annotator {self.annotator!r}: a pipeline step can only use 'simulated'; verify real "
                            "pairs with the Label Studio round trip outside the pipeline")
        if self.judges not in JUDGE_KINDS:
            problems.append(f"judges {self.judges!r}: use one of {', '.join(JUDGE_KINDS)}")
        if self.rm not in ("hashed-bt", "embedding-bt"):
            problems.append(f"rm {self.rm!r}: use hashed-bt or embedding-bt")
        for name in ("annotator_error", "judge_error"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)}: a rate between 0 and 1")
        if self.judge_budget < 0:
            problems.append(f"judge_budget={self.judge_budget}: 0 (no cap) or more")
        for name in ("n_judges", "n_samples", "human_per_iteration"):
            if getattr(self, name) < 1:
                problems.append(f"{name}={getattr(self, name)}: at least 1")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CurationSettings:
        values = json.loads(text) if text else {}
        if not isinstance(values, dict):
            raise ValueError(f"settings must be a JSON object, got {text!r}")
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown curation settings {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**values)


def _embedder():
    from rewardops.curation.retrieval import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def make_annotator(settings: CurationSettings):
    if settings.annotator == "simulated":
        from rewardops.curation.human import SimulatedAnnotator

        return SimulatedAnnotator(error_rate=settings.annotator_error, seed=settings.seed)
    raise ValueError(f"annotator {settings.annotator!r}: a pipeline step can only use 'simulated'; verify real pairs "
                     "with the Label Studio round trip outside the pipeline")


def make_judges(settings: CurationSettings):
    from rewardops.curation.judges import ChatJudge, JudgeEnsemble, SimulatedJudge

    if settings.judges == "simulated":
        models = [SimulatedJudge(error_rate=settings.judge_error, seed=settings.seed + i, name=f"simulated-judge-{i}")
                  for i in range(settings.n_judges)]
    elif settings.judges == "local":
        from rewardops.curation.judges import LikelihoodJudge
        from rewardops.curation.llm.local_hf import LocalHFChat

        # greedy likelihood votes are deterministic: more samples would only repeat the vote
        judge = LikelihoodJudge(LocalHFChat(settings.local_judge_model), seed=settings.seed,
                                max_examples=settings.local_judge_examples)
        return JudgeEnsemble([judge], n_samples=1, seed=settings.seed)
    elif settings.judges == "chat":
        from rewardops.curation.llm.openai_client import OpenAIChatClient, OpenAIConfig

        models = [ChatJudge(OpenAIChatClient(OpenAIConfig.from_env()))]
    else:
        raise ValueError(f"judges {settings.judges!r}: use one of {', '.join(JUDGE_KINDS)}")
    return JudgeEnsemble(models, n_samples=settings.n_samples, seed=settings.seed)


def make_trainer(settings: CurationSettings, embedder=None):
    from rewardops.curation.cheap_rm import EmbeddingBTTrainer, HashedBTTrainer

    if settings.rm == "hashed-bt":
        return HashedBTTrainer(seed=settings.seed)
    if settings.rm == "embedding-bt":
        return EmbeddingBTTrainer(embedder or _embedder(), seed=settings.seed)
    raise ValueError(f"rm {settings.rm!r}: use hashed-bt or embedding-bt")


def load_scorer(folder: Path, embedder=None):
    from rewardops.curation.cheap_rm import load_embedding_bt, load_hashed_bt

    if (folder / "hashed_bt.json").is_file():
        return load_hashed_bt(folder)
    if (folder / "embedding_bt.json").is_file():
        return load_embedding_bt(folder, embedder or _embedder())
    raise FileNotFoundError(f"{folder}: no reward model (hashed_bt.json or embedding_bt.json)")


def seed_split(dataset: str | Path, out: str | Path, gold_n: int, silver_n: int, settings: CurationSettings,
               pool_shards: int = 1) -> dict[str, int]:
    from rewardops.curation.human import apply_human_verdict
    from rewardops.data.shards import read_pairs, write_pairs

    pairs = list(read_pairs(dataset))
    if len(pairs) < gold_n + silver_n + 1:
        raise ValueError(f"{dataset}: {len(pairs)} pairs cannot seed {gold_n} gold + {silver_n} silver and leave a pool")
    head, silver, pool = pairs[:gold_n], pairs[gold_n:gold_n + silver_n], pairs[gold_n + silver_n:]
    annotator = make_annotator(settings)
    gold, undecidable = [], 0
    for pair, answer in zip(head, annotator.verify(head)):
        if answer is None:
            undecidable += 1
        else:
            gold.append(apply_human_verdict(pair, answer, annotator.name))
    out = Path(out)
    write_pairs(gold, out / "gold")
    write_pairs(silver, out / "silver")
    # the pool is cut into `pool_shards` shards: stage 2 fans out over them
    write_pairs(pool, out / "pool", shard_size=max(1, -(-len(pool) // max(1, pool_shards))))
    counts = {"gold": len(gold), "silver": len(silver), "pool": len(pool), "undecidable": undecidable}
    (out / "state.json").write_text(json.dumps({"iteration": 0, "counts": counts, "settings": asdict(settings)}, indent=1))
    return counts


def stage1_iteration(state: str | Path, out: str | Path, iteration: int, settings: CurationSettings) -> dict[str, float]:
    from rewardops.curation.stage1 import Stage1Config, Stage1Loop

    state, out = Path(state), Path(out)
    if iteration < 1:
        raise ValueError(f"iteration={iteration}: stage-1 iterations count from 1")
    done = sorted(p.name for p in (state / "stage1").glob("iter-*") if (p / "metrics.json").is_file())
    following = max(len(done) - 1, 0) + 1  # iter-00 is the seed the loop writes on its first run
    if following != iteration:
        raise ValueError(f"{state}: holds stage-1 versions {done or 'none'}, so the next iteration is {following}, "
                         f"not {iteration}")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(state, out, symlinks=True)
    embedder = _embedder()
    loop = Stage1Loop(make_trainer(settings, embedder), embedder, make_annotator(settings), make_judges(settings),
                      Stage1Config(iterations=iteration, human_per_iteration=settings.human_per_iteration,
                                   judge_budget=settings.judge_budget))
    reports = loop.run(out / "gold", out / "silver", out / "pool", out / "stage1", progress=False)
    report = reports[-1]
    info = json.loads((out / "state.json").read_text())
    info["iteration"] = iteration
    (out / "state.json").write_text(json.dumps(info, indent=1))
    return report.metrics()


def latest_iteration(state: str | Path) -> Path:
    iters = sorted(p for p in (Path(state) / "stage1").glob("iter-*") if (p / "metrics.json").is_file())
    if not iters:
        raise FileNotFoundError(f"{state}: no stage-1 iteration (run stage1_iteration first)")
    return iters[-1]


def final_models(state: str | Path, out: str | Path, settings: CurationSettings) -> dict[str, Any]:
    """The best RM (final silver, selected on final gold) and the gold RM (all gold)."""
    latest = latest_iteration(state)
    trainer = make_trainer(settings)
    out = Path(out)
    best = trainer.train(latest / "silver", latest / "gold", out / "best_rm")
    gold = trainer.train(latest / "gold", None, out / "gold_rm")
    info = {"from": latest.name, "best_rm": best.name, "gold_rm": gold.name}
    (out / "models.json").write_text(json.dumps(info, indent=1))
    return info


def stage2_shard(pool: str | Path, models: str | Path, state: str | Path, shard: int, out: str | Path,
                 settings: CurationSettings) -> dict[str, Any]:
    from rewardops.curation.retrieval import ExampleRetriever
    from rewardops.curation.stage2 import Stage2Config, Stage2Filter
    from rewardops.data.shards import read_pairs

    models = Path(models)
    embedder = _embedder()
    best, gold = load_scorer(models / "best_rm", embedder), load_scorer(models / "gold_rm", embedder)
    examples = ExampleRetriever(list(read_pairs(latest_iteration(state) / "gold")), embedder)
    config = Stage2Config(band=settings.stage2_band, judge_disagreements=settings.stage2_judge_disagreements)
    flt = Stage2Filter(best, gold, config, judges=make_judges(settings) if settings.stage2_judges else None,
                       examples=examples)
    return flt.run(pool, out, only=[shard], progress=False)


def merge_shards(parts: list[str | Path], out: str | Path, output: str = "kept") -> dict[str, int]:
    """Concatenate `<part>/<output>/part-*.parquet` of every per-shard folder into `out`."""
    from rewardops.data.shards import shard_paths

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for part in sorted(Path(p) for p in parts):
        folder = part / output
        if not folder.is_dir():
            continue
        for src in shard_paths(folder):
            shutil.copyfile(src, out / f"part-{n:05d}.parquet")
            n += 1
    return {"shards": n}


def merge_curated(state: str | Path, parts: list[str | Path], out: str | Path, shard_size: int = 100_000) -> dict[str, int]:
    """The training set: final stage-1 gold + silver, then every stage-2 `kept` pair stage 1 did not
    already label (streamed; only stage 1's ids are held in memory)."""
    from rewardops.data.shards import ShardWriter, read_pairs

    latest = latest_iteration(state)
    counts = {"gold": 0, "silver": 0, "stage2_kept": 0, "stage2_already_in_stage1": 0}
    seen: set[str] = set()
    with ShardWriter(Path(out), shard_size=shard_size) as writer:
        for name in ("gold", "silver"):
            for pair in read_pairs(latest / name):
                if pair.id not in seen:
                    seen.add(pair.id)
                    writer.write(pair)
                    counts[name] += 1
        for part in sorted(Path(p) for p in parts):
            if not (part / "kept").is_dir():
                continue
            for pair in read_pairs(part / "kept"):
                if pair.id in seen:
                    counts["stage2_already_in_stage1"] += 1
                else:
                    writer.write(pair)
                    counts["stage2_kept"] += 1
    return counts
