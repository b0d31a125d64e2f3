"""The `rewardops` command line.

Each area of the library owns its commands in `rewardops/<area>/commands.py`, as module-level Typer
apps: the area's `app` holds its top-level commands (`rewardops train`) and mounts its command
groups (`curate_app` as `rewardops curate`). This file merges every area's `app` into the root the
same way, so areas never edit each other's CLI code.

It is also the one place errors are reported: a `RewardOpsError` (bad input, a setting that cannot
work, a service that refuses) becomes one `error:` line plus a `hint:` line and exit code 2; any
other exception is a bug and keeps its traceback.

And it is the shell above evaluation that hands the data layer what it needs from there: the
benchmark prompts of `rewardops preprocess --decontaminate-benchmarks` (`CliServices`), so the data
area never imports evaluation.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import typer
import typer.core
from rich.console import Console
from rich.markup import escape

from rewardops.data.commands import CliServices
from rewardops.errors import RewardOpsError

AREAS = ("data", "training", "evaluation", "curation", "tracking", "pipelines")  # each: `commands.app`


def report_error(exc: RewardOpsError) -> None:
    """Print a user-fixable error: `<label>: <message>` and, when the error has one, `hint: <hint>`."""
    console = Console(stderr=True)
    # soft_wrap: a path in the message stays one piece (copy-pastable), whatever the width
    style = "red" if exc.label == "error" else "yellow"  # "waiting for people" is not a failure
    console.print(f"[{style}]{escape(exc.label)}:[/{style}] {escape(str(exc))}", soft_wrap=True, highlight=False)
    if exc.hint:
        console.print(f"[bold]hint:[/bold] {escape(exc.hint)}", soft_wrap=True, highlight=False)


class RootGroup(typer.core.TyperGroup):
    """The root command: every subcommand runs inside `invoke`, so a `RewardOpsError` raised by any
    of them is reported here, once."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RewardOpsError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None


def _benchmark_prompts(names: str, data_dir: Path | None, sources: list[str], world_n: int) -> dict[str, list[str]]:
    """The first-turn prompts of each named benchmark, read as `rewardops eval` reads them."""
    from rewardops.evaluation.prompts import benchmark_prompts, parse_sources

    return benchmark_prompts(names, data_dir=data_dir, sources=parse_sources(sources), world_n=world_n).prompts


SERVICES = CliServices(benchmark_prompts=_benchmark_prompts)

app = typer.Typer(
    name="rewardops",
    cls=RootGroup,
    help="RewardOps: curate preference data, train and evaluate Bradley-Terry reward models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"obj": SERVICES},
)


def _mount_areas() -> None:
    """Every area's commands, then its groups, on the root: `rewardops --help` lists the commands of
    every area in `AREAS` order, then the groups in the same order."""
    for area in AREAS:
        area_app = importlib.import_module(f"rewardops.{area}.commands").app
        app.registered_commands.extend(area_app.registered_commands)
        app.registered_groups.extend(area_app.registered_groups)


_mount_areas()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
