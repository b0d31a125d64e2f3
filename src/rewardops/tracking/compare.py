"""`rewardops compare`: sizes x benchmarks from MLflow, like Table 1 of the Skywork-Reward-V2 paper.

A suite is an MLflow parent run (tag `rewardops.suite=<name>`, see `start_tracker`) whose child
runs are one per size. Each child's `eval/<benchmark>` metrics (percent, written by
`rewardops eval`) fill one row, named by its size; the columns are the benchmarks the suite has
(the seven of the paper, or those present, the generated world included), and the last column is
the registry score `eval/score`. Two suites are set side by
side as `A -> B (delta)`. Output: a rich table on the terminal, and Markdown, CSV and PNG files.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SuiteTable", "ablation_rows", "benchmark_columns", "latest_suite", "load_suite", "write_outputs"]

AVERAGE = "score"  # the registry score (rewardops.evaluation.report.registry_score), percent


def benchmark_columns(present: set[str] | None = None) -> list[tuple[str, str]]:
    """(metric suffix, column title): the seven paper benchmarks in Table 1's order, or, given the
    benchmarks `present` in a suite, those of them there are plus the world; then the score."""
    from rewardops.evaluation.benchmarks import BENCHMARKS, PAPER_BENCHMARKS, WORLD

    if present is None:
        columns = [(name, BENCHMARKS[name].title) for name in PAPER_BENCHMARKS]
    else:
        columns = [(name, BENCHMARKS[name].title) for name in PAPER_BENCHMARKS if name in present]
        if WORLD.name in present:
            columns.append((WORLD.name, WORLD.title))
    return [*columns, (AVERAGE, "Avg.")]


@dataclass
class SuiteTable:
    suite: str
    parent_run_id: str
    rows: dict[str, dict[str, float]] = field(default_factory=dict)  # size -> benchmark -> value
    run_ids: dict[str, str] = field(default_factory=dict)
    ablation: dict[str, dict[str, float]] = field(default_factory=dict)  # arm run name -> its ablation/* metrics

    def value(self, size: str, benchmark: str) -> float | None:
        v = self.rows.get(size, {}).get(benchmark)
        return None if v is None or math.isnan(v) else v

    def columns(self, other: SuiteTable | None = None) -> list[tuple[str, str]]:
        """The benchmarks this suite (and `other`) have, then Avg. (see `benchmark_columns`)."""
        present = {b for row in self.rows.values() for b in row}
        if other is not None:
            present |= {b for row in other.rows.values() for b in row}
        return benchmark_columns(present)

    def partial_average(self, size: str) -> tuple[float, int] | None:
        """The registry score over the benchmarks present, and how many, when the run has no score."""
        from rewardops.evaluation.report import registry_score

        found = registry_score(self.rows.get(size, {}))
        return (found.value, len(found.basis)) if found else None


def _find_parent(client: Any, suite: str, experiment_ids: list[str]) -> tuple[str, str]:
    from rewardops.tracking.mlflow_tracker import SUITE_PARENT_TAG, SUITE_TAG

    query = f"tags.`{SUITE_TAG}` = '{suite}' and tags.`{SUITE_PARENT_TAG}` = 'true'"
    found = client.search_runs(experiment_ids, query, order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        return found[0].info.run_id, found[0].info.experiment_id
    try:  # a run id given directly
        run = client.get_run(suite)
        return run.info.run_id, run.info.experiment_id
    except Exception:  # noqa: BLE001 - not a run id
        pass
    known = sorted({r.data.tags.get(SUITE_TAG, "") for r in client.search_runs(
        experiment_ids, f"tags.`{SUITE_PARENT_TAG}` = 'true'", max_results=200)} - {""})
    raise LookupError(f"no suite {suite!r} in MLflow (no parent run tagged {SUITE_TAG}={suite}, and not a run id); "
                      f"suites: {', '.join(known) or 'none'}")


def latest_suite(client: Any, experiment: str | None = None) -> str:
    """The newest suite (parent run) in the experiment, or in any experiment."""
    from rewardops.tracking.mlflow_tracker import SUITE_PARENT_TAG, SUITE_TAG

    ids = _experiment_ids(client, experiment)
    # an interrupted or failed suite (KILLED, FAILED, or RUNNING still) is not "the newest results"
    found = client.search_runs(ids, f"tags.`{SUITE_PARENT_TAG}` = 'true' and attributes.status = 'FINISHED'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        found = client.search_runs(ids, f"tags.`{SUITE_PARENT_TAG}` = 'true'", order_by=["attributes.start_time DESC"],
                                   max_results=1)
    if not found:
        raise LookupError("no suite in MLflow yet (no parent run tagged rewardops.suite.parent=true); "
                          "train sizes with REWARDOPS_SUITE=<name>, or run `rewardops run demo --local`")
    return found[0].data.tags[SUITE_TAG]


def _experiment_ids(client: Any, experiment: str | None) -> list[str]:
    if experiment:
        exp = client.get_experiment_by_name(experiment)
        if exp is None:
            names = sorted(e.name for e in client.search_experiments())
            raise LookupError(f"no MLflow experiment named {experiment!r}; experiments: {', '.join(names) or 'none'}")
        return [exp.experiment_id]
    return [e.experiment_id for e in client.search_experiments()]


def load_suite(client: Any, suite: str, experiment: str | None = None) -> SuiteTable:
    """Read a suite's child runs; the newest run per size that has eval metrics wins."""
    experiment_ids = _experiment_ids(client, experiment)
    parent_id, experiment_id = _find_parent(client, suite, experiment_ids)
    children = client.search_runs(
        [experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'", order_by=["attributes.start_time DESC"]
    )
    from rewardops.evaluation.benchmarks import ALL_NAMES

    table = SuiteTable(suite=suite, parent_run_id=parent_id)
    wanted = {*ALL_NAMES, AVERAGE}
    # a size whose training the suite reused from an earlier run (a cached pipeline step) is that run
    from rewardops.evaluation.report import SAME_RUN_TAG
    from rewardops.tracking.mlflow_tracker import SUITE_RUN_TAG

    parent = client.get_run(parent_id)
    referenced = []
    for key, run_id in sorted(parent.data.tags.items()):
        if key.startswith(SUITE_RUN_TAG):
            try:
                referenced.append(client.get_run(run_id))
            except Exception:  # noqa: BLE001 - deleted since: the children still count
                pass
    for run in [*referenced, *children]:
        # a data-ablation arm is its own row (`a-uncurated`, ...): the arms share one size
        size = run.data.tags.get("rewardops.arm") or run.data.tags.get("rewardops.size") or run.info.run_name or run.info.run_id
        values = {
            key.removeprefix("eval/"): float(value)
            for key, value in run.data.metrics.items()
            if key.startswith("eval/") and key.removeprefix("eval/") in wanted
        }
        if not values or size in table.rows:
            continue
        table.rows[size] = values
        table.run_ids[size] = run.info.run_id
        if run.data.tags.get("rewardops.arm"):
            table.ablation[size] = {k.removeprefix("ablation/"): float(v) for k, v in run.data.metrics.items()
                                    if k.startswith("ablation/")}
            for same in filter(None, run.data.tags.get(SAME_RUN_TAG, "").split(",")):  # arms this run also was
                table.rows.setdefault(same, dict(values))
                table.run_ids.setdefault(same, run.info.run_id)
                table.ablation.setdefault(same, dict(table.ablation[size]))
    if not table.rows:
        raise LookupError(f"suite {suite!r} (run {parent_id}) has no child runs with eval/ metrics yet")
    # the sizes first (newest first, as found), then the ablation's arms in their order (a, b, c, d)
    order = [k for k in table.rows if k not in table.ablation] + sorted(table.ablation)
    table.rows = {k: table.rows[k] for k in order}
    return table


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _sizes(a: SuiteTable, b: SuiteTable | None) -> list[str]:
    sizes = list(a.rows)
    if b is not None:
        sizes += [s for s in b.rows if s not in a.rows]
    return sizes


def cell(a: SuiteTable, b: SuiteTable | None, size: str, bench: str) -> str:
    va = a.value(size, bench)
    if b is None:
        if va is None and bench == AVERAGE and (partial := a.partial_average(size)) is not None:
            return f"{partial[0]:.1f}"  # runs logged before eval/score existed
        return _fmt(va)
    vb = b.value(size, bench)
    if va is None or vb is None:
        return f"{_fmt(va)} -> {_fmt(vb)}"
    return f"{va:.1f} -> {vb:.1f} ({vb - va:+.1f})"


def title(a: SuiteTable, b: SuiteTable | None) -> str:
    return f"{a.suite}" if b is None else f"{a.suite} -> {b.suite}"


def markdown(a: SuiteTable, b: SuiteTable | None = None) -> str:
    cols = a.columns(b)
    lines = [
        f"Reward models of suite {title(a, b)}, by size (percent; Avg. = the registry score: the mean of the "
        "paper benchmarks present, of the seven when all ran, else of the world)",
        "",
        "| Size | " + " | ".join(t for _, t in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for size in _sizes(a, b):
        lines.append(f"| {size} | " + " | ".join(cell(a, b, size, n) for n, _ in cols) + " |")
    return "\n".join(lines) + "\n"


def write_csv(path: Path, a: SuiteTable, b: SuiteTable | None = None) -> None:
    cols = a.columns(b)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if b is None:
            writer.writerow(["size", *[n for n, _ in cols], "average_present", "benchmarks_present", "run_id"])
            for size in _sizes(a, None):
                partial = a.partial_average(size)
                writer.writerow([
                    size, *[_csv(a.value(size, n)) for n, _ in cols],
                    _csv(partial[0] if partial else None), partial[1] if partial else 0, a.run_ids.get(size, ""),
                ])  # fmt: skip
            return
        header = ["size"]
        for n, _ in cols:
            header += [f"{n}:{a.suite}", f"{n}:{b.suite}", f"{n}:delta"]
        writer.writerow(header)
        for size in _sizes(a, b):
            row: list[str] = [size]
            for n, _ in cols:
                va, vb = a.value(size, n), b.value(size, n)
                row += [_csv(va), _csv(vb), _csv(None if va is None or vb is None else vb - va)]
            writer.writerow(row)


def _csv(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def plot_png(path: Path, a: SuiteTable, b: SuiteTable | None = None) -> None:
    """A Table-1-style heatmap: values (one suite) or deltas (two suites), each cell annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cols = a.columns(b)
    sizes = _sizes(a, b)
    grid = np.full((len(sizes), len(cols)), np.nan)
    for i, size in enumerate(sizes):
        for j, (n, _) in enumerate(cols):
            va = a.value(size, n)
            if b is None:
                grid[i, j] = np.nan if va is None else va
            else:
                vb = b.value(size, n)
                grid[i, j] = np.nan if va is None or vb is None else vb - va
    fig, ax = plt.subplots(figsize=(1.3 * len(cols) + 2.5, 0.55 * len(sizes) + 1.6))
    if b is None:
        finite = np.isfinite(grid).any()
        low, high = (float(np.nanmin(grid)), float(np.nanmax(grid))) if finite else (0.0, 100.0)
        image = ax.imshow(grid, cmap="YlGn", aspect="auto", vmin=low - 5, vmax=high + 20)  # light: text stays legible
    else:
        bound = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
        image = ax.imshow(grid, cmap="RdYlGn", aspect="auto", vmin=-bound or -1, vmax=bound or 1)
    fig.colorbar(image, ax=ax, label="score (percent)" if b is None else "change (percentage points)")
    ax.set_ylabel("size, then the ablation's arms" if a.ablation else "size")
    ax.set_xticks(range(len(cols)), [t for _, t in cols], rotation=30, ha="right")
    ax.set_yticks(range(len(sizes)), sizes)
    for i, size in enumerate(sizes):
        for j, (n, _) in enumerate(cols):
            text = cell(a, b, size, n) if b is None else ("-" if np.isnan(grid[i, j]) else f"{grid[i, j]:+.1f} pp")
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black")
    if b is None:
        ax.set_title(f"Suite {a.suite}: scores in percent", fontsize=10)
    else:  # long suite names on two lines, and the unit of the deltas
        ax.set_title(f"{b.suite}\nminus {a.suite}\n(percentage points)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.2)  # nothing clipped
    plt.close(fig)


def ablation_rows(table: SuiteTable) -> list[dict[str, Any]]:
    """The suite's data-ablation arms (runs tagged `rewardops.arm`) as rows of the table the run
    printed (`rewardops.evaluation.report.ablation_markdown`), rebuilt from their MLflow metrics."""
    from rewardops.evaluation.report import ABLATION_ARMS

    rows = []
    for name in sorted(table.ablation):
        m, arm = table.ablation[name], name.split("-", 1)[0]
        row: dict[str, Any] = {"arm": arm, "name": name, "label": ABLATION_ARMS.get(arm, name),
                               "pairs": int(m["pairs"]) if "pairs" in m else "?",
                               "estimated_noise": m.get("estimated_noise"), "true_noise": m.get("true_noise"),
                               "benchmarks": {k: v / 100 for k, v in table.rows.get(name, {}).items() if k != AVERAGE},
                               "score": table.value(name, AVERAGE)}
        if "world_accuracy" in m:
            row["world"] = {"accuracy": m["world_accuracy"], "se": m.get("world_se"), "n": m.get("world_n")}
        if "world_vs_a" in m:
            row["world_vs_a"] = {"delta": m["world_vs_a"], "se": m.get("world_vs_a_se", 0.0)}
        rows.append(row)
    return rows


def write_outputs(out: str | Path, a: SuiteTable, b: SuiteTable | None = None) -> dict[str, Path]:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = "compare" if b is None else f"compare-{a.suite}-vs-{b.suite}"
    paths = {"md": folder / f"{stem}.md", "csv": folder / f"{stem}.csv", "png": folder / f"{stem}.png"}
    paths["md"].write_text(markdown(a, b), encoding="utf-8")
    write_csv(paths["csv"], a, b)
    plot_png(paths["png"], a, b)
    if b is None and a.ablation:
        from rewardops.evaluation.report import ablation_markdown

        paths["ablation"] = folder / "ablation.md"
        paths["ablation"].write_text(ablation_markdown(ablation_rows(a), title=f"Data ablation of suite {a.suite}"),
                                     encoding="utf-8")
    return paths


def rich_table(a: SuiteTable, b: SuiteTable | None = None) -> Any:
    from rich.table import Table

    cols = a.columns(b)
    table = Table(title=f"Suite {title(a, b)} by size (percent)")
    table.add_column("Size")
    for _, t in cols:
        table.add_column(t, justify="right")
    for size in _sizes(a, b):
        table.add_row(size, *[cell(a, b, size, n) for n, _ in cols])
    return table
