"""The benchmarks: where their files live, how to get them, how to load and how to score them.

Each `Benchmark` knows its default folder under `--data-dir`, the official place to download it,
its record parser (loaders.py) and how to turn per-response scores into the official numbers
(scorers.py). A source may also be given explicitly: a file, a folder, a `save_to_disk` folder,
or a Hugging Face dataset id (several ids comma-separated, e.g. the five PPE-Correctness sets).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardops.evaluation import scorers
from rewardops.evaluation.items import EvalItem, LoadedBenchmark, MissingBenchmarkData
from rewardops.evaluation.loaders import (
    Parser,
    collect,
    parse_judgebench,
    parse_ppe_correctness,
    parse_ppe_preference,
    parse_rewardbench,
    parse_rewardbench2,
    parse_rmb,
    parse_rmbench,
)
from rewardops.evaluation.sources import (
    is_saved_dataset,
    read_file,
    read_hub_dataset,
    read_saved_dataset,
    record_files,
)
from rewardops.errors import ConfigError

log = logging.getLogger("rewardops.evaluation")

Scores = dict[str, list[float]]  # item id -> one score per response, in response order


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str  # the column name in the summary table (paper Table 1)
    folder: str  # default folder under --data-dir
    get_it: str  # where the official files come from
    hub: tuple[tuple[str, str], ...]  # (dataset id, split) pairs for a hub source
    parser: Parser
    score_fn: Callable[[list[EvalItem], Scores], dict[str, Any]]
    file_filter: Callable[[list[Path]], list[Path]] = field(default=lambda files: files)
    in_paper_average: bool = True

    def locate(self, data_dir: Path) -> Path:
        path = Path(data_dir) / self.folder
        if not path.exists() or (path.is_dir() and not is_saved_dataset(path) and not record_files(path)):
            raise MissingBenchmarkData(
                f"{self.name}: no benchmark files at {path}. Get them from {self.get_it} and put them there "
                f"(or pass --source {self.name}=PATH_OR_HF_ID)."
            )
        return path

    def load(self, source: str | Path) -> LoadedBenchmark:
        path = Path(source)
        out = LoadedBenchmark(items=[])
        if path.exists():
            if is_saved_dataset(path):
                split = self.hub[0][1] if self.hub else None
                return collect(read_saved_dataset(path, split), self.parser, out)
            files = self.file_filter(record_files(path))
            if not files:
                raise MissingBenchmarkData(f"{self.name}: no .json/.jsonl/.parquet files under {path}")
            for file in files:
                collect(read_file(file), self.parser, out)
            return out
        if str(source).startswith((".", "/", "~")):
            raise MissingBenchmarkData(f"{self.name}: {source} does not exist. Get the files from {self.get_it}.")
        splits = dict(self.hub)
        for dataset_id in str(source).split(","):
            collect(read_hub_dataset(dataset_id, splits.get(dataset_id, "test")), self.parser, out)
        return out

    def score(self, items: list[EvalItem], scores: Scores) -> dict[str, Any]:
        return self.score_fn(items, scores)


# ------------------------------------------------------------------ scoring adapters


def _score_rewardbench(items: list[EvalItem], scores: Scores) -> dict[str, Any]:
    return scorers.rewardbench_v1((it.subset, scores[it.id][0], scores[it.id][1]) for it in items)


def _score_rewardbench2(items: list[EvalItem], scores: Scores) -> dict[str, Any]:
    return scorers.rewardbench_v2(
        (it.subset, it.meta["source_id"], scores[it.id], it.meta["num_correct"]) for it in items
    )


def _score_ppe_preference(items: list[EvalItem], scores: Scores) -> dict[str, Any]:
    return scorers.ppe_preference((scores[it.id][0], scores[it.id][1], it.meta["winner"]) for it in items)


def _score_ppe_correctness(items: list[EvalItem], scores: Scores) -> dict[str, Any]:
    tasks: dict[str, list[scorers.PpeRow]] = defaultdict(list)
    for it in items:
        tasks[it.subset].append((scores[it.id], it.meta["correct"], it.meta.get("sampled_conflict_pairs")))
    return scorers.ppe_correctness(tasks)


def _score_rmb(items: list[EvalItem], scores: Scores) -> dict[str, Any]:
    rows = []
    for it in items:
        s = scores[it.id]
        correct = scorers.pair_correct(s[0], s[1]) if it.meta["kind"] == "pairwise" else scorers.rmb_bon_correct(s[0], s[1:])
        rows.append(scorers.RmbRow(it.meta["kind"], it.meta["goal"], it.subset, correct))
    return scorers.rmb(rows)


def _score_rmbench(items: list[EvalItem], scores: Scores) -> dict[str, Any]:
    return scorers.rm_bench((it.subset, scores[it.id][:3], scores[it.id][3:]) for it in items)


def _score_judgebench(items: list[EvalItem], scores: Scores) -> dict[str, Any]:
    """The headline is the GPT-4o response split: SRv2 Table 2's numbers are fractions of that
    split's category sizes (Math 82.1 = 46/56, Coding 59.5 = 25/42, Reasoning 66.3 = 65/98,
    Knowledge 62.3 = 96/154), not of the Claude split's. The Claude split is reported beside it."""
    splits: dict[str, list[EvalItem]] = defaultdict(list)
    for it in items:
        splits[it.meta["split"]].append(it)
    per_split = {
        name: scorers.judgebench((it.subset, scores[it.id][0], scores[it.id][1], it.meta["label"]) for it in group)
        for name, group in sorted(splits.items())
    }
    headline = "gpt" if "gpt" in per_split else next(iter(per_split), None)
    result = dict(per_split[headline]) if headline else {"overall": float("nan")}
    result["headline_split"] = headline
    result["splits"] = per_split
    result["subsets"] = result.get("categories", {})
    return result


def _score_world(items: list[EvalItem], scores: Scores) -> dict[str, Any]:
    result = scorers.world((it.subset, scores[it.id][0], scores[it.id][1], it.meta.get("truth")) for it in items)
    families = [(it.meta["family"], scores[it.id][0], scores[it.id][1], it.meta.get("truth")) for it in items if it.meta.get("family")]
    if families:
        result["families"] = scorers.world(families)["subsets"]
    return result


def _rmbench_files(files: list[Path]) -> list[Path]:
    """Per-domain files when present; total_dataset.json only on its own (it repeats them)."""
    domain_files = [f for f in files if f.name.endswith("_filtered.json")]
    return domain_files or files


# ------------------------------------------------------------------ the registry

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(
            "rewardbench", "RB v1", "reward-bench",
            "https://huggingface.co/datasets/allenai/reward-bench (split 'filtered')",
            (("allenai/reward-bench", "filtered"),), parse_rewardbench, _score_rewardbench,
        ),
        Benchmark(
            "rewardbench2", "RB v2", "reward-bench-2",
            "https://huggingface.co/datasets/allenai/reward-bench-2 (split 'test')",
            (("allenai/reward-bench-2", "test"),), parse_rewardbench2, _score_rewardbench2,
        ),
        Benchmark(
            "ppe-preference", "PPE Pref", "ppe-preference",
            "https://huggingface.co/datasets/lmarena-ai/PPE-Human-Preference-V1 (split 'test')",
            (("lmarena-ai/PPE-Human-Preference-V1", "test"),), parse_ppe_preference, _score_ppe_preference,
        ),
        Benchmark(
            "ppe-correctness", "PPE Corr", "ppe-correctness",
            "https://huggingface.co/datasets/lmarena-ai/PPE-{MMLU-Pro,MATH,GPQA,MBPP-Plus,IFEval}-Best-of-K "
            "(one file per task, named after it, e.g. mmlu-pro.parquet)",
            tuple((f"lmarena-ai/PPE-{t}-Best-of-K", "train") for t in ("MMLU-Pro", "MATH", "GPQA", "MBPP-Plus", "IFEval")),
            parse_ppe_correctness, _score_ppe_correctness,
        ),
        Benchmark(
            "rmb", "RMB", "rmb",
            "https://github.com/Zhou-Zoey/RMB-Reward-Model-Benchmark (folder RMB_dataset/: Pairwise_set/, BoN_set/)",
            (), parse_rmb, _score_rmb,
        ),
        Benchmark(
            "rm-bench", "RM-Bench", "rm-bench",
            "https://github.com/THU-KEG/RM-Bench (data/{chat,code,math,safety-refuse,safety-response}_filtered.json)",
            (("THU-KEG/RM-Bench", "train"),), parse_rmbench, _score_rmbench, _rmbench_files,
        ),
        Benchmark(
            "judgebench", "JudgeBench", "judgebench",
            "https://github.com/ScalerLab/JudgeBench (data/dataset=judgebench,response_model=*.jsonl)",
            (("ScalerLab/JudgeBench", "gpt"),), parse_judgebench, _score_judgebench,
        ),
    ]
}

PAPER_BENCHMARKS = tuple(BENCHMARKS)  # the seven of SRv2 Table 1, in its column order

# ------------------------------------------------------------------ the generated world


def _world_item(pair: Any) -> EvalItem:
    convo = tuple({"role": m.role, "content": m.content} for m in pair.conversation)
    return EvalItem(
        id=pair.id,
        subset=pair.task_category or "unknown",
        prompt=convo,
        responses=(pair.chosen, pair.rejected),
        meta={"truth": pair.truth_chosen_better, "family": (pair.meta or {}).get("family")},
    )


WORLD_EVAL_SEED = 7_000_003  # never a training seed; and only items of the held-out split


def load_world(source: str | Path | None, n: int = 512, noise: float = 0.0, seed: int = WORLD_EVAL_SEED) -> LoadedBenchmark:
    """Held-out generated pairs: a pair-dataset folder (rewardops.data.shards), or, with no folder,
    the first `n` pairs of `generate_world(seed=WORLD_EVAL_SEED)` that fall in the world's held-out
    split (`world_split(pair) == "eval"`: their underlying items never appear in training pairs)."""
    if source is not None and Path(source).exists():
        from rewardops.data.shards import read_pairs, shard_paths

        items = [_world_item(p) for p in read_pairs(source)]
        return LoadedBenchmark(items=items, files=[str(s) for s in shard_paths(source)])
    from rewardops.data.world import generate_world, world_split

    items: list[EvalItem] = []
    start, chunk = 0, max(64, 12 * n)
    while len(items) < n and start < 200 * max(n, 1) + 10_000:
        for pair in generate_world(chunk, noise, seed, start):
            if world_split(pair) == "eval":
                items.append(_world_item(pair))
                if len(items) == n:
                    break
        start += chunk
    note = f"generated {len(items)} held-out pairs: generate_world(noise={noise}, seed={seed}), world_split == 'eval'"
    return LoadedBenchmark(items=items, notes=[note])


WORLD = Benchmark(
    "world", "World", "world",
    "rewardops.data.world.generate_world (held-out seed) or any pair-dataset folder",
    (), lambda record, raw: None, _score_world, in_paper_average=False,  # type: ignore[arg-type,return-value]
)

ALL_NAMES = (*PAPER_BENCHMARKS, WORLD.name)


def get(name: str) -> Benchmark:
    if name == WORLD.name:
        return WORLD
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ConfigError(f"unknown benchmark {name!r}: choose from {', '.join(ALL_NAMES)}") from None


def parse_names(spec: str) -> list[str]:
    """'all' (the seven), 'all+world', or a comma-separated list."""
    spec = spec.strip()
    if spec in ("all", ""):
        return list(PAPER_BENCHMARKS)
    if spec == "all+world":
        return list(ALL_NAMES)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for name in names:
        get(name)
    return names
