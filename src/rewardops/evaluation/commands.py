"""`rewardops eval`: score a reward model on the seven benchmarks (and the generated world)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

console = Console(stderr=True)


def _sources(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, source = value.partition("=")
        if not sep or not name or not source:
            raise typer.BadParameter(f"--source {value!r}: use NAME=PATH_OR_HF_ID")
        out[name.strip()] = source.strip()
    return out


def results_table(summary: dict) -> Table:
    from rewardops.evaluation.report import table_rows

    header, row = table_rows(summary)
    table = Table(title="Reward-model benchmarks (SRv2 Table 1 layout, %)")
    for col in header:
        table.add_column(col, justify="left" if col == "Model" else "right", no_wrap=True)
    table.add_row(*row)
    return table


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_command(
        model: Annotated[str, typer.Option("--model", help="HF model folder, backbone name, or MLflow URI (runs:/ID/path, models:/name/version, models:/name@alias).")],
        out: Annotated[Path, typer.Option("--out", help="Output folder for results.json files, summary and plots.")],
        benchmarks: Annotated[str, typer.Option("--benchmarks", help="'all' (the seven), 'all+world', or a comma list of: rewardbench, rewardbench2, ppe-preference, ppe-correctness, rmb, rm-bench, judgebench, world.")] = "all",
        data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="Folder holding one sub-folder per benchmark (reward-bench/, reward-bench-2/, ppe-preference/, ppe-correctness/, rmb/, rm-bench/, judgebench/, world/).")] = None,
        source: Annotated[list[str], typer.Option("--source", help="NAME=PATH_OR_HF_ID: a benchmark's file, folder, saved dataset or Hugging Face id (repeatable).")] = [],  # noqa: B006
        strict: Annotated[bool, typer.Option("--strict", help="Fail when any requested benchmark's data is missing (default: skip it and go on).")] = False,
        batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Most sequences per forward pass.")] = 32,
        max_batch_tokens: Annotated[Optional[int], typer.Option("--max-batch-tokens", min=1, help="Padded-token budget per forward pass (default 16384 CPU, 131072 GPU).")] = None,
        max_length: Annotated[int, typer.Option("--max-length", min=8, help="Longer inputs are left-truncated (counted in results).")] = 16_384,
        device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: cuda if available).")] = None,
        dtype: Annotated[Optional[str], typer.Option("--dtype", help="float32 / bfloat16 / float16 (default bf16 on GPU, fp32 on CPU).")] = None,
        cache: Annotated[Optional[Path], typer.Option("--cache", help="Score cache (SQLite). Default ~/.cache/rewardops/eval-scores.sqlite.")] = None,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not read or write the score cache.")] = False,
        mlflow_run_id: Annotated[Optional[str], typer.Option("--mlflow-run-id", help="Log to this MLflow run (default: the run an MLflow model URI belongs to).")] = None,
        no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="Do not log to MLflow.")] = False,
        limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Score only the first N items of each benchmark (a smoke run; the numbers are then not official).")] = None,
        world_n: Annotated[int, typer.Option("--world-n", min=1, help="Generated held-out pairs for the 'world' benchmark when no world/ folder is given.")] = 512,
    ) -> None:
        """Evaluate a reward model, scored exactly as each benchmark's official code scores it."""
        from rewardops.evaluation.benchmarks import parse_names
        from rewardops.evaluation.modelref import ModelIntegrityError
        from rewardops.outputs import OutputError
        from rewardops.evaluation.runner import (
            BenchmarkDataError,
            EvalConfig,
            default_cache_path,
            run_eval,
        )

        logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])
        try:
            names = parse_names(benchmarks)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        cfg = EvalConfig(
            model=model,
            benchmarks=names,
            out=out,
            data_dir=data_dir,
            sources=_sources(source),
            strict=strict,
            batch_size=batch_size,
            max_batch_tokens=max_batch_tokens,
            max_length=max_length,
            device=device,
            dtype=dtype,
            cache_path=None if no_cache else (cache or default_cache_path()),
            mlflow_run_id=mlflow_run_id,
            log_mlflow=not no_mlflow,
            world_n=world_n,
            limit=limit,
        )
        try:
            outcome = run_eval(cfg)
        except BenchmarkDataError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        except FileNotFoundError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
        except ModelIntegrityError as exc:  # a registered model changed after registration
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True, markup=False)
            raise typer.Exit(2) from None
        except OutputError as exc:  # --out overlaps, is locked by another run, or is not ours to replace
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
        for name, why in outcome.missing.items():
            console.print(f"[yellow]skipped {name}:[/yellow] {why}")
        for name, result in outcome.results.items():
            if result["quarantined"]:
                console.print(f"[yellow]{name}: {len(result['quarantined'])} malformed record(s) quarantined[/yellow] (listed in {out / name / 'results.json'})")
        stats = outcome.engine.stats
        console.print(
            f"scored {stats.sequences:,} responses: {stats.cached:,} from cache, {stats.forwarded_sequences:,} forwarded "
            f"({stats.real_tokens:,} tokens, {stats.truncated:,} truncated), {stats.forward_seconds:.1f}s in the model"
        )
        out_console = Console()
        out_console.width = max(out_console.width, 120)  # one row of ten columns: never fold it
        out_console.print(results_table(outcome.summary))
        if outcome.mlflow_run_id:
            console.print(f"logged to MLflow run {outcome.mlflow_run_id}")
        console.print(f"results in {out}")
