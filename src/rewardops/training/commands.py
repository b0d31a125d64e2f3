"""`rewardops train` and `rewardops train-sizes`: the CLI of the training area.

`rewardops train` is also the pod command of every TrainJob (under mpirun or torchrun): there it
gets the resolved config once, as `--config-json`, and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from rewardops.training.config import (
    ConfigError,
    catalog_sizes,
    config_from_json,
    load_catalog,
    load_config,
    parse_overrides,
)

app = typer.Typer()


@app.command("train")
def train_cmd(
    size: Optional[str] = typer.Option(None, "--size", help="catalog entry (rewardops train-sizes), e.g. demo-tiny-qwen3 or qwen3-0.6b"),
    data: Optional[str] = typer.Option(None, "--data", help="folder of preference-pair Parquet shards"),
    out: Optional[str] = typer.Option(None, "--out", help="output folder: checkpoints, metrics, exported model, MLflow store"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after this many optimizer steps"),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="held-out pairs for a final accuracy"),
    profile: str = typer.Option("final", "--profile", help="final (constant LR) or dev (linear decay + warmup, GBS 256)"),
    set_: list[str] = typer.Option([], "--set", help="override any setting: --set lr=1e-5 --set zero_stage=3"),
    config_json: Optional[str] = typer.Option(None, "--config-json", help="a resolved config (TrainConfig.to_json()); how a TrainJob pod gets its settings"),
    config_file: Optional[Path] = typer.Option(None, "--config", help="a file holding a resolved config as JSON"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
) -> None:
    """Train a Bradley-Terry reward model for one catalog size (every rank of a launch runs this)."""
    from rewardops.training import run

    config = _config(size, data, out, max_steps, eval_data, profile, set_, config_json, config_file)
    result = run(config, progress=not no_progress)
    if result.rank != 0:
        return
    last = result.history[-1] if result.history else {}
    summary = {
        "steps": result.steps,
        "loss": last.get("train/loss"),
        "accuracy": last.get("train/accuracy"),
        "export": str(result.export_dir) if result.export_dir else None,
        "eval": result.eval and {"accuracy": result.eval["accuracy"], "pairs": result.eval["pairs"]},
        "counts": result.counts,
        **result.launch,
        "mlflow_run": result.run_id,
        "registered_version": result.registered_version,
    }
    typer.echo(json.dumps(summary, indent=1))


@app.command("train-sizes")
def sizes_cmd() -> None:
    """List the training catalog: the paper's eight models and the CPU demo ladder."""
    catalog = load_catalog()
    for name in catalog_sizes(catalog):
        c = load_config(name, catalog=catalog)
        ds = f"ZeRO-{c.zero_stage}" if c.deepspeed else "DDP"
        typer.echo(
            f"{name:20} {c.backbone:34} lr {c.lr:.0e} gbs {c.global_batch:6} {ds:6} "
            f"{c.nodes}x{c.gpus_per_node} max_len {c.max_length} data {c.data_subset}"
        )


def _config(size, data, out, max_steps, eval_data, profile, set_, config_json, config_file):
    """Either a resolved config (--config-json / --config, nothing else) or a catalog size plus overrides."""
    if config_json is not None or config_file is not None:
        extra = [name for name, value in (("--size", size), ("--data", data), ("--out", out), ("--max-steps", max_steps),
                                          ("--eval-data", eval_data), ("--set", set_)) if value]
        if extra or (config_json is not None and config_file is not None):
            raise ConfigError(f"--config-json / --config carry the whole resolved config; drop {', '.join(extra) or 'one of them'}")
        if config_file is not None:
            try:
                text = config_file.read_text()
            except OSError as exc:
                raise ConfigError(f"--config {config_file}: cannot read it ({exc})") from exc
            return config_from_json(text, source=str(config_file))
        return config_from_json(config_json)
    missing = [name for name, value in (("--size", size), ("--data", data), ("--out", out)) if not value]
    if missing:
        raise ConfigError(f"pass {', '.join(missing)} (or a resolved config with --config-json)")
    overrides = parse_overrides(set_)
    overrides.update({"data": data, "out": out})
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    if eval_data:
        overrides["eval_data"] = eval_data
    return load_config(size, overrides, profile=profile)
