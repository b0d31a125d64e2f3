"""Benchmark prompts for decontamination, read through the evaluation loaders.

Training data is decontaminated against the first-turn prompt of every item of every benchmark a
run evaluates on (paper App. C.1), found exactly where `rewardops eval` finds them: `--source
NAME=PATH_OR_HF_ID` first, else the benchmark's folder under `--data-dir` (the generated world:
its held-out items, `world_n` of them, as evaluation generates them). What evaluation would skip
(no data) is skipped here too and reported, unless `strict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rewardops.evaluation.benchmarks import WORLD, get, load_world, parse_names
from rewardops.evaluation.items import EvalItem, MissingBenchmarkData
from rewardops.errors import ConfigError

DEFAULT_WORLD_N = 256  # what the end-to-end pipeline evaluates on (its eval_world_n)


@dataclass
class BenchmarkPrompts:
    prompts: dict[str, list[str]] = field(default_factory=dict)  # benchmark -> distinct first-turn prompts
    missing: dict[str, str] = field(default_factory=dict)  # benchmark -> why it has no prompts
    files: dict[str, list[str]] = field(default_factory=dict)


def first_user_turn(item: EvalItem) -> str | None:
    for turn in item.prompt:
        if turn.get("role") in ("user", "human") and isinstance(turn.get("content"), str) and turn["content"].strip():
            return turn["content"]
    return None


def parse_sources(values: Iterable[str]) -> dict[str, str]:
    """NAME=PATH_OR_HF_ID entries (the pipelines' `eval_sources`, the CLI's `--benchmark-source`)."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, source = str(value).partition("=")
        if not sep or not name.strip() or not source.strip():
            raise ConfigError(f"benchmark source {value!r}: use NAME=PATH_OR_HF_ID")
        out[name.strip()] = source.strip()
    return out


def benchmark_prompts(
    names: str | Iterable[str],
    data_dir: str | Path | None = None,
    sources: Mapping[str, str] | None = None,
    world_n: int = DEFAULT_WORLD_N,
    strict: bool = True,
) -> BenchmarkPrompts:
    """The prompts of each named benchmark ('all', 'all+world' or a comma list, as `rewardops eval`).

    `strict`: a benchmark without data raises `MissingBenchmarkData` naming it and where it was
    looked for; otherwise it is skipped and listed in `missing` (as evaluation would skip it)."""
    wanted = parse_names(names) if isinstance(names, str) else [n for n in names if n]
    sources = dict(sources or {})
    out = BenchmarkPrompts()
    for name in wanted:
        bench = get(name)
        try:
            if name == WORLD.name:
                source = sources.get(name) or (Path(data_dir) / WORLD.folder if data_dir else None)
                loaded = load_world(source, n=world_n)
            else:
                source = sources.get(name)
                if source is None:
                    if data_dir is None:
                        raise MissingBenchmarkData(
                            f"{name}: no data dir and no source {name}=...; get it from {bench.get_it}"
                        )
                    source = str(bench.locate(Path(data_dir)))
                loaded = bench.load(source)
        except (MissingBenchmarkData, FileNotFoundError) as exc:
            if strict:
                raise MissingBenchmarkData(str(exc)) from exc
            out.missing[name] = str(exc)
            continue
        seen: set[str] = set()
        prompts = []
        for item in loaded.items:
            text = first_user_turn(item)
            if text is not None and text not in seen:
                seen.add(text)
                prompts.append(text)
        out.prompts[name] = prompts
        out.files[name] = list(loaded.files)
    return out
