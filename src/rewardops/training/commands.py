"""`rewardops train` and `rewardops train-sizes`: the CLI of the training area."""

from __future__ import annotations

import json
from typing import Optional

import typer

from rewardops.training.config import ConfigError, catalog_sizes, load_catalog, parse_overrides, resolve_config


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        size: str = typer.Option(..., "--size", help="catalog entry (training/catalog.yaml), e.g. demo-tiny-qwen3 or qwen3-0.6b"),
        data: str = typer.Option(..., "--data", help="folder of preference-pair Parquet shards"),
        out: str = typer.Option(..., "--out", help="output folder: checkpoints, metrics, exported model, MLflow store"),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after this many optimizer steps"),
        eval_data: Optional[str] = typer.Option(None, "--eval-data", help="held-out pairs for a final accuracy"),
        profile: str = typer.Option("final", "--profile", help="final (constant LR) or dev (linear decay + warmup, GBS 256)"),
        set_: list[str] = typer.Option([], "--set", help="override any setting: --set lr=1e-5 --set zero_stage=3"),
        no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
    ) -> None:
        """Train a Bradley-Terry reward model for one catalog size."""
        from rewardops.training.trainer import train

        try:
            overrides = parse_overrides(set_)
            overrides.update({"data": data, "out": out})
            if max_steps is not None:
                overrides["max_steps"] = max_steps
            if eval_data:
                overrides["eval_data"] = eval_data
            config = resolve_config(size, overrides, profile=profile)
            result = train(config, progress=not no_progress)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        last = result.history[-1] if result.history else {}
        summary = {
            "steps": result.steps,
            "loss": last.get("train/loss"),
            "accuracy": last.get("train/accuracy"),
            "export": str(result.export_dir) if result.export_dir else None,
            "eval": result.eval and {"accuracy": result.eval["accuracy"], "pairs": result.eval["pairs"]},
            "counts": result.counts,
            "mlflow_run": result.run_id,
            "registered_version": result.registered_version,
        }
        typer.echo(json.dumps(summary, indent=1))

    @app.command("train-sizes")
    def sizes_cmd() -> None:
        """List the training catalog: the paper's eight models and the CPU demo ladder."""
        catalog = load_catalog()
        for name in catalog_sizes(catalog):
            c = resolve_config(name, catalog=catalog)
            ds = f"ZeRO-{c.zero_stage}" if c.deepspeed else "DDP"
            typer.echo(
                f"{name:20} {c.backbone:34} lr {c.lr:.0e} gbs {c.global_batch:6} {ds:6} "
                f"{c.nodes}x{c.gpus_per_node} max_len {c.max_length} data {c.data_subset}"
            )
