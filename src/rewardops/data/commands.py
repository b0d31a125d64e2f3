"""CLI commands of the data area: `generate`, `ingest`, `preprocess`.

Each command writes its dataset and `report.json` into `--out`, shows progress while it works
and ends with a summary table (per source: rows in, kept, duplicates, contaminated, quarantined).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from rewardops.data.readers import FORMATS, SourceFault
from rewardops.data.report import RunReport
from rewardops.data.schema import PreferencePair
from rewardops.data.validation import DEFAULT_MAX_ROW_BYTES, ValidationError
from rewardops.errors import ConfigError, RewardOpsError

console = Console(stderr=True)
FORMAT_NAMES = ", ".join(FORMATS)
app = typer.Typer()


@dataclass(frozen=True)
class CliServices:
    """What the data commands need from a layer above data, handed down by the shell that assembles
    the CLI (`rewardops.cli`, as the root context's `obj`): the data area never imports evaluation.

    `benchmark_prompts(names, data_dir, sources, world_n)`: benchmark -> its distinct first-turn
    prompts, read as `rewardops eval` reads the benchmarks (`sources`: NAME=PATH_OR_HF_ID strings)."""

    benchmark_prompts: Callable[[str, Path | None, list[str], int], dict[str, list[str]]] | None = None


def _progress(known_total: bool) -> Progress:
    columns = [SpinnerColumn(), TextColumn("[bold]{task.description}")]
    if known_total:
        columns += [BarColumn(), MofNCompleteColumn()]
    else:
        columns += [TextColumn("{task.completed:,.0f} rows")]
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=False)


def summary_table(report: RunReport, title: str) -> Table:
    table = Table(title=title)
    for col in ("source", "rows in", "kept", "duplicates", "contaminated", "quarantined"):
        table.add_column(col, justify="left" if col == "source" else "right", overflow="fold")
    rows = [(name, c.to_dict()) for name, c in sorted(report.per_source.items())]
    rows.append(("[bold]total", report.totals().to_dict()))
    for name, d in rows:
        table.add_row(name, f"{d['rows_in']:,}", f"{d['kept']:,}", f"{d['duplicates']:,}",
                      f"{d['contaminated']:,}", f"{sum(d['quarantined'].values()):,}")
    return table


def reasons_table(report: RunReport) -> Table | None:
    """Quarantined rows by source and reason, or None when nothing was quarantined."""
    table = Table(title="quarantined, by reason")
    for col in ("source", "reason", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left", overflow="fold")
    for name, counts in sorted(report.per_source.items()):
        for reason, k in sorted(counts.quarantined.items()):
            table.add_row(name, reason, f"{k:,}")
    return table if table.row_count else None


def _finish(report: RunReport, out: Path, title: str, started: float) -> None:
    stdout = Console()
    stdout.print(summary_table(report, f"{title} ({time.perf_counter() - started:.1f}s)"))
    if (reasons := reasons_table(report)) is not None:
        stdout.print(reasons)
    if (hits := report.info.get("contaminated_by_benchmark")) is not None:
        table = Table(title="contaminated pairs, by benchmark")
        table.add_column("benchmark")
        table.add_column("prompts", justify="right")
        table.add_column("pairs dropped", justify="right")
        per = (report.info.get("decontamination") or {}).get("prompts_per_benchmark", {})
        for name, k in hits.items():
            table.add_row(name, f"{per.get(name, 0):,}", f"{k:,}")
        stdout.print(table)
    console.print(f"wrote {out}/ (report: {out / 'report.json'})")


def generate_to(out: str | Path, n: int, noise: float, seed: int, shard_size: int = 100_000,
                show_progress: bool = True) -> RunReport:
    """Generate `n` world pairs into shards under `out`, with report.json."""
    from rewardops.data.shards import ShardWriter
    from rewardops.outputs import atomic_output

    from rewardops.data.world import generate_world

    out = Path(out)
    report = RunReport(stage="generate", info={"n": n, "noise": noise, "seed": seed})
    with atomic_output(out, kind="dataset") as tmp:
        with _progress(True) as bar, ShardWriter(tmp, shard_size=shard_size) as writer:
            task = bar.add_task("generating", total=n, visible=show_progress)
            pairs: Iterator[PreferencePair] = generate_world(n, noise=noise, seed=seed)
            for i, pair in enumerate(pairs, start=1):
                writer.write(pair)
                counts = report.source(pair.source)
                counts.rows_in += 1
                counts.kept += 1
                if i % 1000 == 0:
                    bar.update(task, completed=i)
            bar.update(task, completed=writer.count)
        report.write(tmp)
    return report


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    n: Annotated[int, typer.Option("--n", min=0, help="Number of pairs.")] = 1_000,
    noise: Annotated[float, typer.Option("--noise", min=0.0, max=1.0, help="Share of flipped labels.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1)] = 100_000,
) -> None:
    """Generate the preference world: pairs whose correct label is known by construction."""
    started = time.perf_counter()
    report = generate_to(out, n, noise, seed, shard_size)
    _finish(report, out, "generate", started)


@app.command()
def ingest(
    src: Annotated[list[str], typer.Argument(help="Files (.json, .jsonl, .jsonl.gz, .parquet), folders of them, or Hugging Face dataset ids (org/name[:split]).")],
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    format: Annotated[Optional[str], typer.Option("--format", help=f"Force a format: {FORMAT_NAMES}. Default: detect.")] = None,  # noqa: A002
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first bad row instead of quarantining it.")] = False,
    max_row_bytes: Annotated[int, typer.Option("--max-row-bytes", min=1)] = DEFAULT_MAX_ROW_BYTES,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1)] = 100_000,
    keep_partial: Annotated[bool, typer.Option("--keep-partial", help="When a file is damaged (corrupt or truncated compression, unreadable Parquet, broken JSON), keep the rows read before the damage (listed in report.json's file_faults) instead of writing nothing.")] = False,
) -> None:
    """Read preference data, validate every row (bad rows go to quarantine.jsonl), write shards."""
    from rewardops.data.ingest import ingest as run_ingest

    if format is not None and format not in FORMATS:
        raise ConfigError(f"--format {format!r}: unknown format; choose one of {FORMAT_NAMES}")
    started = time.perf_counter()
    with _progress(False) as bar:
        tasks: dict[str, int] = {}

        def progress(source: str, rows: int) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(source, total=None)
            bar.advance(tasks[source], rows)

        try:
            report = run_ingest(src, out, fmt=format, strict=strict, max_row_bytes=max_row_bytes,
                                shard_size=shard_size, progress=progress, keep_partial=keep_partial)
        except ValidationError as e:
            raise e.with_hint(f"strict mode stops at the first bad row; nothing was written to {out}. Repair "
                              "the row, or drop --strict to quarantine bad rows") from None
        except SourceFault as e:
            raise e.with_hint(f"nothing was written to {out}; repair or remove the file, or rerun with "
                              "--keep-partial to keep the rows read before the damage") from None
    _finish(report, out, "ingest", started)


@app.command()
def preprocess(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Dataset folders (or shard files) to pre-process.")],
    out: Annotated[Path, typer.Option("--out", help="Output dataset folder.")],
    decontaminate: Annotated[Optional[list[Path]], typer.Option("--decontaminate", help="Benchmark prompt files or folders (text: one per line; JSON/JSONL/Parquet records). Repeatable.")] = None,
    decontaminate_benchmarks: Annotated[Optional[str], typer.Option("--decontaminate-benchmarks", help="Decontaminate against these benchmarks' prompts, read as `rewardops eval` reads them: 'all', 'all+world' or a comma list (rewardbench, rewardbench2, ppe-preference, ppe-correctness, rmb, rm-bench, judgebench, world).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="With --decontaminate-benchmarks: the folder holding one sub-folder per benchmark (as for `rewardops eval --data-dir`).")] = None,
    benchmark_source: Annotated[Optional[list[str]], typer.Option("--benchmark-source", help="With --decontaminate-benchmarks: NAME=PATH_OR_HF_ID for one benchmark (as `rewardops eval --source`). Repeatable.")] = None,
    world_n: Annotated[int, typer.Option("--world-n", min=1, help="With 'world' among the benchmarks and no world/ folder: the held-out generated items, as `rewardops eval --world-n`.")] = 256,
    ngram: Annotated[int, typer.Option("--ngram", min=1, help="n-gram length for decontamination.")] = 13,
    no_dedup: Annotated[bool, typer.Option("--no-dedup", help="Skip exact de-duplication.")] = False,
    shard_size: Annotated[int, typer.Option("--shard-size", min=1)] = 100_000,
) -> None:
    """Structural check, global exact dedup and 13-gram decontamination, streamed over shards."""
    from rewardops.data.decontaminate import load_prompts
    from rewardops.data.preprocess import PROMPT_FILES
    from rewardops.data.preprocess import preprocess as run_preprocess
    from rewardops.data.shards import count_pairs

    started = time.perf_counter()
    if (data_dir is not None or benchmark_source) and not decontaminate_benchmarks:
        raise ConfigError("--data-dir and --benchmark-source only go with --decontaminate-benchmarks NAME,...")
    total = sum(count_pairs(p) for p in inputs)
    prompts: dict[str, list[str]] | None = None
    if decontaminate:
        prompts = {PROMPT_FILES: list(load_prompts(decontaminate))}
    if decontaminate_benchmarks:
        # The benchmarks are read by the evaluation layer, above data: the shell that assembles the
        # CLI hands that reader down (CliServices); this module never imports evaluation.
        services = ctx.find_object(CliServices)
        if services is None or services.benchmark_prompts is None:
            raise ConfigError("--decontaminate-benchmarks needs the benchmark readers; run it as `rewardops preprocess`")
        try:
            found = services.benchmark_prompts(decontaminate_benchmarks, data_dir, list(benchmark_source or []), world_n)
        except RewardOpsError as e:
            raise e.with_hint(e.hint or "fix --decontaminate-benchmarks (and --data-dir / --benchmark-source), "
                              "or pass the prompts as files with --decontaminate") from None
        prompts = {**(prompts or {}), **found}
    if prompts is not None:
        counts = ", ".join(f"{k} {len(v):,}" for k, v in prompts.items())
        console.print(f"decontaminating against benchmark prompts ({ngram}-grams): {counts}")
    with _progress(True) as bar:
        task = bar.add_task("preprocessing", total=total)
        report = run_preprocess(inputs, out, prompts=prompts, n=ngram, dedup=not no_dedup,
                                shard_size=shard_size, progress=lambda k: bar.advance(task, k),
                                expected_pairs=max(total, 1))
    _finish(report, out, "preprocess", started)
