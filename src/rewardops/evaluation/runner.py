"""One evaluation run: load the benchmarks, score them through the engine, write the reports,
log to MLflow. `rewardops eval` is a thin wrapper around `run_eval`."""

from __future__ import annotations

import logging
import os
import time
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardops.evaluation import report
from rewardops.evaluation.benchmarks import WORLD, get, load_world
from rewardops.evaluation.engine import DEFAULT_MAX_LENGTH, ScoreEngine, open_engine
from rewardops.evaluation.items import LoadedBenchmark, MissingBenchmarkData
from rewardops.outputs import atomic_output
from rewardops.errors import DataError

log = logging.getLogger("rewardops.evaluation")


def default_cache_path() -> Path:
    root = os.environ.get("REWARDOPS_CACHE") or Path.home() / ".cache" / "rewardops"
    return Path(root) / "eval-scores.sqlite"


@dataclass
class EvalConfig:
    model: str
    benchmarks: list[str]
    out: Path
    data_dir: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)  # benchmark -> file, folder or HF id
    strict: bool = False
    batch_size: int = 32
    max_batch_tokens: int | None = None
    max_length: int = DEFAULT_MAX_LENGTH
    device: str | None = None
    dtype: str | None = None
    cache_path: Path | None = field(default_factory=default_cache_path)  # None: no cache
    mlflow_run_id: str | None = None  # default: the run an MLflow model URI belongs to
    log_mlflow: bool = True
    limit: int | None = None  # score only the first N items of each benchmark (smoke runs; not official)
    world_n: int = 512
    world_noise: float = 0.0
    show_progress: bool = True


@dataclass
class EvalOutcome:
    summary: dict[str, Any]
    results: dict[str, dict[str, Any]]
    missing: dict[str, str]
    engine: ScoreEngine
    mlflow_run_id: str | None = None


class BenchmarkDataError(DataError):
    """--strict and a benchmark's data is missing."""


def load_all(cfg: EvalConfig) -> tuple[dict[str, LoadedBenchmark], dict[str, str]]:
    loaded: dict[str, LoadedBenchmark] = {}
    missing: dict[str, str] = {}
    for name in cfg.benchmarks:
        bench = get(name)
        try:
            if name == WORLD.name:
                source = cfg.sources.get(name) or (cfg.data_dir / WORLD.folder if cfg.data_dir else None)
                loaded[name] = load_world(source, n=cfg.world_n, noise=cfg.world_noise)
            else:
                source = cfg.sources.get(name)
                if source is None:
                    if cfg.data_dir is None:
                        raise MissingBenchmarkData(f"{name}: no --data-dir and no --source {name}=...; get it from {bench.get_it}")
                    source = str(bench.locate(cfg.data_dir))
                loaded[name] = bench.load(source)
        except (MissingBenchmarkData, FileNotFoundError) as exc:
            if cfg.strict:
                raise BenchmarkDataError(str(exc)) from exc
            log.warning("skipping %s", exc)
            missing[name] = str(exc)
            continue
        if cfg.limit is not None and len(loaded[name].items) > cfg.limit:
            loaded[name].notes.append(f"--limit {cfg.limit}: scored the first {cfg.limit} of {len(loaded[name].items)} items; not an official score")
            loaded[name].items = loaded[name].items[: cfg.limit]
        if not loaded[name].items:
            msg = f"{name}: no valid records ({len(loaded[name].quarantined)} quarantined)"
            if cfg.strict:
                raise BenchmarkDataError(msg)
            missing[name] = msg
            del loaded[name]
    return loaded, missing


def run_eval(cfg: EvalConfig) -> EvalOutcome:
    loaded, missing = load_all(cfg)  # before the model: a --strict failure costs nothing
    # an MLflow model is downloaded to a temporary folder (never into --out, which is uploaded
    # back to the run) and removed once the weights are in memory
    with tempfile.TemporaryDirectory(prefix="rewardops-eval-model-") as tmp:
        engine, ref = open_engine(
            cfg.model,
            cache_path=cfg.cache_path,
            device=cfg.device,
            dtype=cfg.dtype,
            batch_size=cfg.batch_size,
            max_batch_tokens=cfg.max_batch_tokens,
            max_length=cfg.max_length,
            download_dir=Path(tmp),
            show_progress=cfg.show_progress,
        )
    # The results folder is written atomically (rewardops.outputs): a killed or failed evaluation
    # leaves the previous results as they were, and a finished one carries a verifiable manifest.
    # A results folder from before manifests (it has summary.json) may be replaced.
    with atomic_output(cfg.out, kind="evaluation", replace_unmanaged=(Path(cfg.out) / "summary.json").is_file()) as out:
        summary, results = _score_all(cfg, loaded, missing, engine, out)
    run_id = cfg.mlflow_run_id or ref.run_id
    if run_id and cfg.log_mlflow:
        report.log_to_mlflow(run_id, cfg.out, summary, results)
    return EvalOutcome(summary, results, missing, engine, run_id if cfg.log_mlflow else None)


def _score_all(cfg: EvalConfig, loaded: dict[str, LoadedBenchmark], missing: dict[str, str], engine: Any,
               out: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, Any]] = {}
    for name, data in loaded.items():
        before = engine.stats.as_dict()
        started = time.monotonic()
        n = sum(len(it.responses) for it in data.items)
        print(f"[eval] {name}: scoring {len(data.items)} items ({n} responses)", flush=True)
        scores = engine.score_items(data.items, label=name)
        after = engine.stats.as_dict()
        result = get(name).score(data.items, scores)
        result.update(
            n_items=len(data.items),
            n_responses=sum(len(it.responses) for it in data.items),
            files=data.files,
            notes=data.notes,
            quarantined=[str(q) for q in data.quarantined],
            engine={k: after[k] - before[k] for k in ("cached", "forwarded_sequences", "real_tokens", "padded_tokens", "truncated", "forward_batches")},
        )
        results[name] = result
        print(f"[eval] {name}: done in {time.monotonic() - started:.0f}s", flush=True)
        report.write_benchmark(out, name, result, data.items, scores)
    summary = report.summarize(cfg.model, engine.fingerprint, results, missing, engine.stats.as_dict())
    report.write_json(out / "summary.json", summary)
    (out / "summary.md").write_text(report.markdown_table(summary), encoding="utf-8")
    report.write_plots(out, summary, results)
    return summary, results
