"""The `rewardops` command line.

Each area of the library owns its commands in `rewardops/<area>/commands.py`, which exposes
`register(app)`. This file only assembles them, so areas never edit each other's CLI code.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="rewardops",
    help="RewardOps: curate preference data, train and evaluate Bradley-Terry reward models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

AREAS = ("data", "training", "evaluation", "curation", "tracking", "pipelines")


def _register_areas() -> None:
    for area in AREAS:
        importlib.import_module(f"rewardops.{area}.commands").register(app)


_register_areas()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
