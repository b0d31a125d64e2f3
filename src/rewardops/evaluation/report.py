"""What an evaluation leaves behind: results.json per benchmark, a summary across benchmarks with
the paper's seven-benchmark average (SRv2 Table 1), PNG plots, and the same logged to MLflow.

Layout under --out:
  summary.json, summary.md            the Table-1 row and the run's metadata
  <benchmark>/results.json            per subset and overall, quarantined records, engine stats
  <benchmark>/scores.jsonl            every item's rewards, for audits and re-scoring
  plots/*.png                         best-of-N curves, per-benchmark bars, RM-Bench difficulty
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewardops.evaluation.benchmarks import ALL_NAMES, BENCHMARKS, PAPER_BENCHMARKS, WORLD, get
from rewardops.evaluation.items import EvalItem

# ------------------------------------------------------------------------------ the registry score
#
# The one number the model registry compares versions on, whichever route produced it (KFP
# `register`, `rewardops registry promote`, the DVC `eval` stage): `registry_score`, in percent,
# logged as SCORE_METRIC next to the per-benchmark `eval/<benchmark>` metrics (percent too).

SCORE_METRIC = "eval/score"
BENCHMARK_METRIC = "eval/{}"  # eval/rewardbench, ..., eval/world (percent)


@dataclass(frozen=True)
class RegistryScore:
    value: float  # percent
    basis: tuple[str, ...]  # the benchmarks averaged, in ALL_NAMES order

    @property
    def complete(self) -> bool:
        """True when the basis is the paper's seven (the value is then SRv2 Table 1's Avg)."""
        return set(PAPER_BENCHMARKS) <= set(self.basis)

    def describe(self) -> str:
        if self.complete:
            return "average of the seven paper benchmarks"
        paper = [b for b in self.basis if b in PAPER_BENCHMARKS]
        if paper:
            return f"average over {len(paper)}/7 paper benchmarks ({', '.join(paper)})"
        return f"average over {', '.join(self.basis)} (no paper benchmark)"


def registry_score(scores: Mapping[str, float | None], among: Collection[str] | None = None) -> RegistryScore | None:
    """The registry score of per-benchmark scores given in percent (`{benchmark: value}`).

    Rule: the mean over the paper benchmarks present (all seven: the paper's Avg); when none of
    them is present, the mean over the other benchmarks present (the generated world). `among`
    restricts the benchmarks considered (promotion passes the ones both versions have).
    None when nothing is left.
    """
    present = {
        name: float(value) for name, value in scores.items()
        if name in ALL_NAMES and value is not None and not math.isnan(float(value)) and (among is None or name in among)
    }  # fmt: skip
    paper = [n for n in PAPER_BENCHMARKS if n in present]
    basis = paper or [n for n in ALL_NAMES if n in present]
    if not basis:
        return None
    return RegistryScore(sum(present[n] for n in basis) / len(basis), tuple(basis))


def benchmark_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """`{benchmark: percent}` out of MLflow metrics/tags named `eval/<benchmark>`."""
    out: dict[str, float] = {}
    for name in ALL_NAMES:
        value = metrics.get(BENCHMARK_METRIC.format(name))
        try:
            number = float(value) if value is not None else math.nan
        except (TypeError, ValueError):
            continue
        if not math.isnan(number):
            out[name] = number
    return out


def _clean(value: Any) -> Any:
    """JSON-safe: NaN -> None, numpy scalars -> float, int keys -> str."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(data), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def write_benchmark(out: Path, name: str, result: dict[str, Any], items: list[EvalItem], scores: dict[str, list[float]]) -> Path:
    folder = out / name
    if isinstance(result.get("subsets"), dict):  # how many items each bar of the subset plot rests on
        from collections import Counter

        counts = Counter(item.subset for item in items)
        result.setdefault("subset_n", {k: counts[k] for k in result["subsets"] if k in counts})
    write_json(folder / "results.json", result)
    with open(folder / "scores.jsonl", "w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json.dumps({"id": item.id, "subset": item.subset, "scores": scores[item.id]}) + "\n")
    return folder / "results.json"


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def summarize(model: str, fingerprint: str, results: dict[str, dict[str, Any]], missing: dict[str, str], engine: dict[str, Any]) -> dict[str, Any]:
    scores = {name: r.get("overall") for name, r in results.items()}
    score = registry_score({n: None if v is None else 100 * v for n, v in scores.items()})
    paper = [scores[n] for n in PAPER_BENCHMARKS if scores.get(n) is not None and not math.isnan(scores[n])]
    six = [scores[n] for n in PAPER_BENCHMARKS if n != "rewardbench2" and scores.get(n) is not None and not math.isnan(scores[n])]
    return {
        "model": model,
        "fingerprint": fingerprint,
        "scores": scores,
        # the paper's Avg only when all seven are there; a partial mean is labelled as such
        "average_7": sum(paper) / 7 if len(paper) == 7 else None,
        "average_6_without_rb2": sum(six) / 6 if len(six) == 6 else None,
        "average_present": sum(paper) / len(paper) if paper else None,
        "benchmarks_present": [n for n in PAPER_BENCHMARKS if n in results],
        # the registry score (percent) and what it averages: see `registry_score`
        "score_percent": score.value if score else None,
        "score_basis": list(score.basis) if score else [],
        "complete": {name: r.get("complete", True) for name, r in results.items()},
        "limited": sorted(name for name, r in results.items() if any("--limit" in n for n in r.get("notes", []))),
        "quarantined": {name: len(r.get("quarantined", [])) for name, r in results.items()},
        "missing": missing,
        "engine": engine,
    }


def display_name(model: str) -> str:
    """How reports and plots name a model: by its size when it is one of ours (a registered
    `models:/rewardops-rm-<size>...` URI, or an exported folder whose `rewardops_training.json`
    names the size), else a local folder by its name and anything else as given."""
    import re

    from rewardops.naming import size_of

    found = re.match(r"models:/([^/@]+)(?:[/@](.+))?$", model)
    if found:
        size = size_of(found.group(1))
        if size:
            return f"{size} ({found.group(2)})" if found.group(2) else size
        return model
    meta = Path(model).expanduser() / "rewardops_training.json"
    if meta.is_file():
        try:
            recorded = json.loads(meta.read_text())
            size = recorded.get("size") or (recorded.get("config") or {}).get("size")
        except (OSError, ValueError, AttributeError):
            size = None
        if size:
            return str(size)
    return Path(model).name if model.startswith(("/", ".", "~")) else model


def table_rows(summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Header and one row, in the paper's Table-1 column order (plus World when evaluated)."""
    header = ["Model", *(BENCHMARKS[n].title for n in PAPER_BENCHMARKS), "Avg"]
    row = [display_name(summary["model"]), *(_pct(summary["scores"].get(n)) for n in PAPER_BENCHMARKS)]
    avg = summary["average_7"]
    row.append(_pct(avg) if avg is not None else (f"({_pct(summary['average_present'])} over {len(summary['benchmarks_present'])})" if summary["average_present"] is not None else "–"))
    if WORLD.name in summary["scores"]:
        header.append(WORLD.title)
        row.append(_pct(summary["scores"][WORLD.name]))
    return header, row


_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")  # "(" "!" are inert once "[" is escaped
_MD_BREAKS = re.compile(r"[\r\n\t\v\f\u2028\u2029]+")


def md_escape(value: Any) -> str:
    """`value` as literal Markdown text: HTML markup as entities, Markdown syntax backslash-
    escaped, line breaks as spaces. Data (model names, file names, error texts, tags) shown in a
    Markdown report or model card goes through this, so it is shown, never interpreted."""
    text = _MD_BREAKS.sub(" ", html.escape(str(value), quote=False))
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_code(value: Any) -> str:
    """`value` as a Markdown code span (literal: no markup inside is interpreted), fenced with
    more backticks than any run inside it; line breaks as spaces."""
    text = _MD_BREAKS.sub(" ", str(value))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _notes(summary: dict[str, Any]) -> list[str]:
    """The table's notes as plain text (each report escapes them for its own markup)."""
    notes = []
    if summary["average_7"] is None:
        notes.append("Avg is the paper's seven-benchmark mean; with benchmarks missing it is shown in parentheses over those present.")
    for name in summary.get("limited", []):
        notes.append(f"{name}: only the first items were scored (--limit); not an official score")
    for name, why in summary["missing"].items():
        notes.append(f"{name}: not evaluated ({why})")
    for name, done in summary["complete"].items():
        if not done:
            notes.append(f"{name}: some official subsets were absent from the data; the score covers those present")
    for name, n in summary["quarantined"].items():
        if n:
            notes.append(f"{name}: {n} malformed record(s) quarantined (see {name}/results.json)")
    return notes


def markdown_table(summary: dict[str, Any]) -> str:
    header, row = table_rows(summary)
    header, row = [md_escape(h) for h in header], [md_escape(v) for v in row]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(row) + " |"]
    return "\n".join(lines + [""] + [f"- {md_escape(n)}" for n in _notes(summary)]) + "\n"


def _figure_title(stem: str) -> str:
    """The heading of a plot file in the reports: `subsets_world` -> "World by subset"."""
    name = stem[len("subsets_"):] if stem.startswith("subsets_") else None
    if name in (*ALL_NAMES, WORLD.name):
        return f"{get(name).title} by subset"
    return {"benchmarks": "Score per benchmark", "best_of_n": "PPE Correctness: best of N",
            "rm_bench_difficulty": "RM-Bench by difficulty"}.get(stem, stem.replace("_", " "))


def embedded_reports(out: Path, summary: dict[str, Any], title: str | None = None) -> tuple[str, str]:
    """(Markdown, HTML) of the summary table with every PNG under `out/plots` embedded as a data
    URI: single files a KFP UI (Output[Markdown] / Output[HTML]) shows without the folder. Every
    value that comes from data is escaped for the markup it lands in (`md_escape`, `html.escape`)."""
    import base64

    heading = title or f"Evaluation of {display_name(summary['model'])}"
    table = markdown_table(summary)
    images = []
    for png in sorted((out / "plots").glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        images.append((_figure_title(png.stem), f"data:image/png;base64,{data}"))
    md = f"# {md_escape(heading)}\n\nScores in percent.\n\n{table}\n" + "".join(
        f"## {md_escape(t)}\n\n![{md_escape(t)}]({uri})\n\n" for t, uri in images)
    header, row = table_rows(summary)
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    values = "".join(f"<td>{html.escape(v)}</td>" for v in row)
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in _notes(summary))
    figures = "".join(f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='{uri}'/>" for t, uri in images)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(heading) + "</title>"
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(heading)}</h1><p>Scores in percent.</p><table><tr>{cells}</tr><tr>{values}</tr></table>"
        f"<ul>{notes}</ul>{figures}</body></html>"
    )
    return md, page


# ------------------------------------------------------------------------------------ plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_best_of_n(ppe: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves = []
    for task, res in ppe["tasks"].items():
        ns = [int(n) for n in res["best_of_n"]]
        ys = list(res["best_of_n"].values())
        curves.append((ns, ys, list(res["oracle_best_of_n"].values())))
        ax.plot(ns, ys, marker=".", label=task)
    if curves:
        k = min(len(c[0]) for c in curves)
        ns = curves[0][0][:k]
        avg = [sum(c[1][i] for c in curves) / len(curves) for i in range(k)]
        oracle = [sum(c[2][i] for c in curves) / len(curves) for i in range(k)]
        ax.plot(ns, avg, color="black", linewidth=2.5, label="average")
        ax.plot(ns, oracle, color="gray", linestyle="--", label="ground truth (oracle)")
        ax.set_xscale("log", base=2)
    ax.set_xlabel("N (responses sampled)")
    ax.set_ylabel("accuracy of the RM's best-of-N pick")
    ax.set_title("PPE Correctness: best-of-N")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_benchmark_bars(summary: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    names = [n for n in (*PAPER_BENCHMARKS, WORLD.name) if summary["scores"].get(n) is not None]
    values = [100 * summary["scores"][n] for n in names]
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names) + 1), 4))
    bars = ax.bar([get(n).title for n in names], values, color="#4c72b0")
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    if summary["average_7"] is not None:
        ax.axhline(100 * summary["average_7"], color="black", linestyle="--", label=f"7-benchmark avg {100 * summary['average_7']:.1f}")
        ax.legend(fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("score (%)")
    ax.set_title(display_name(summary["model"]))
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_subsets(name: str, result: dict[str, Any], path: Path) -> Path | None:
    """Accuracy per subset (percent), each bar labelled with its item count n, and the 50% line a
    pairwise coin flip scores."""
    subsets = result.get("subsets") or result.get("sections")
    if not subsets:
        return None
    plt = _plt()
    counts = result.get("subset_n") or {}
    labels = [f"{k}\n(n={counts[k]})" if k in counts else str(k) for k in subsets]
    values = [100 * (v if v is not None else float("nan")) for v in subsets.values()]
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(labels) + 2), 4.2))
    bars = ax.bar(range(len(labels)), values, color="#55a868")
    ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.axhline(50, color="gray", linestyle="--", linewidth=1, label="chance (50%)")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{get(name).title} by subset")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the axes, never over a bar
    plt.setp(ax.get_xticklabels(), rotation=35, ha="right", fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # long subset names are never cut off
    plt.close(fig)
    return path


def plot_rm_bench(result: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    import numpy as np

    groups = [*result["domains"], "overall"]
    levels = ("easy", "normal", "hard")
    data = {lvl: [result["domains"][d][lvl] for d in result["domains"]] + [result[lvl]] for lvl in levels}
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(max(5, 1.4 * len(groups) + 1), 4))
    for k, (lvl, color) in enumerate(zip(levels, ("#55a868", "#4c72b0", "#c44e52"))):
        bars = ax.bar(x + (k - 1) * 0.27, [100 * v for v in data[lvl]], 0.27, label=lvl.capitalize(), color=color)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("RM-Bench by difficulty (style bias)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(out: Path, summary: dict[str, Any], results: dict[str, dict[str, Any]]) -> list[Path]:
    plots = out / "plots"
    made = [plot_benchmark_bars(summary, plots / "benchmarks.png")]
    if "ppe-correctness" in results:
        made.append(plot_best_of_n(results["ppe-correctness"], plots / "best_of_n.png"))
    if "rm-bench" in results and results["rm-bench"].get("domains"):
        made.append(plot_rm_bench(results["rm-bench"], plots / "rm_bench_difficulty.png"))
    for name, result in results.items():
        p = plot_subsets(name, result, plots / f"subsets_{name}.png")
        if p is not None:
            made.append(p)
    return made


# ------------------------------------------------------------------------------------ MLflow


def mlflow_metrics(summary: dict[str, Any], results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Flat metric names, in percent like the paper: eval/<benchmark>, eval/<benchmark>/<subset>."""
    metrics: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
            metrics[key.replace(" ", "_")] = 100 * float(value)

    for name, result in results.items():
        put(f"eval/{name}", result.get("overall"))
        for sub, value in (result.get("subsets") or {}).items():
            put(f"eval/{name}/{sub}", value)
        for sec, value in (result.get("sections") or {}).items():
            put(f"eval/{name}/{sec}", value)
        for lvl in ("easy", "normal", "hard"):
            if lvl in result:
                put(f"eval/{name}/{lvl}", result[lvl])
    if summary["average_7"] is not None:
        put("eval/average_7", summary["average_7"])
    if summary["average_6_without_rb2"] is not None:
        put("eval/average_6", summary["average_6_without_rb2"])
    if summary.get("score_percent") is not None:
        metrics[SCORE_METRIC] = float(summary["score_percent"])
    return metrics


def log_to_mlflow(run_id: str, out: Path, summary: dict[str, Any], results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Metrics and every file under `out` onto the model's run (artifact folder `evaluation/`)."""
    import re

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    metrics = mlflow_metrics(summary, results)
    import time

    now = int(time.time() * 1000)
    safe = {re.sub(r"[^\w\-./ ]", "_", k): v for k, v in metrics.items()}
    items = [Metric(k, v, now, 0) for k, v in safe.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])
    client.log_artifacts(run_id, str(out), artifact_path="evaluation")
    return safe


# -- the data ablation table (paper §4.3: one size trained on each arm's data) ----------------------
# The arms (training sets): (d) exists only where every pair's truth is known (the generated world).
ABLATION_ARMS: dict[str, str] = {"a": "uncurated", "b": "curated", "c": "curated+recycled", "d": "true labels"}


# on an arm's MLflow run: the later arms (comma-separated names) whose model is this run's, e.g. arm
# (c) when stage 2 recycled nothing (the same pairs as arm (b), not trained twice)
SAME_RUN_TAG = "rewardops.arm.same_run"


def arm_name(arm: str) -> str:
    """The arm's run and row name, e.g. `a-uncurated` (the `rewardops.arm` tag of its MLflow run)."""
    return f"{arm}-{ABLATION_ARMS[arm].replace(' ', '-')}"


def ablation_scores(report_dir: str | Path, baseline_dir: str | Path | None = None) -> dict[str, Any]:
    """One arm's evaluation, read from its report folder: each benchmark's overall score, the
    registry score, and on the world its held-out accuracy with the binomial standard error and,
    against `baseline_dir` (arm a's report), the paired difference with its standard error (the
    same held-out pairs scored by both models)."""
    from rewardops.evaluation.scorers import pair_correct

    folder = Path(report_dir)
    summary = json.loads((folder / "summary.json").read_text())
    out: dict[str, Any] = {"benchmarks": {k: v for k, v in (summary.get("scores") or {}).items() if v is not None},
                           "score": summary.get("score_percent")}
    world = folder / WORLD.name / "results.json"
    if world.is_file():
        res = json.loads(world.read_text())
        acc, n = float(res["overall"]), int(res.get("n") or 0)
        out["world"] = {"accuracy": acc, "n": n, "se": math.sqrt(acc * (1 - acc) / n) if n else None}

        def correct(path: Path) -> dict[str, int]:
            rows = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
            return {r["id"]: pair_correct(r["scores"][0], r["scores"][1]) for r in rows}

        base = Path(baseline_dir) / WORLD.name / "scores.jsonl" if baseline_dir is not None else None
        if base is not None and base.is_file():
            mine, theirs = correct(folder / WORLD.name / "scores.jsonl"), correct(base)
            diffs = [mine[i] - theirs[i] for i in mine if i in theirs]
            if len(diffs) > 1:
                mean = sum(diffs) / len(diffs)
                var = sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)
                out["world_vs_a"] = {"delta": mean, "se": math.sqrt(var / len(diffs)), "n": len(diffs)}
    return out


def _noise_cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def ablation_lines(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(header, cells) of the ablation table: arm, pairs, estimated and true noise, world held-out
    accuracy ± SE, the paired difference to arm a ± SE, then the other benchmarks and the score."""
    others = [n for n in ALL_NAMES if n != WORLD.name and any(n in r.get("benchmarks", {}) for r in rows)]
    header = ["Arm", "Pairs", "Est. noise", "True noise", "World acc. ± SE", "vs (a) ± SE (paired)",
              *[BENCHMARKS[n].title for n in others], "Score"]
    cells = []
    for r in rows:
        world, delta = r.get("world"), r.get("world_vs_a")
        cells.append([
            f"({r['arm']}) {r['label']}", str(r["pairs"]), _noise_cell(r.get("estimated_noise")),
            _noise_cell(r.get("true_noise")),
            "–" if not world else f"{100 * world['accuracy']:.1f} ± {100 * (world['se'] or 0):.1f}",
            "–" if not delta else f"{100 * delta['delta']:+.1f} ± {100 * delta['se']:.1f}",
            *[_pct(r.get("benchmarks", {}).get(n)) for n in others],
            "–" if r.get("score") is None else f"{r['score']:.1f}",
        ])
    return header, cells


ABLATION_NOTE = ("Same size trained on each arm's data (paper §4.3). Est. noise: stage 2's estimate from the gold "
                 "replay for the stage-2 pairs of the arm (pool for a, kept for b, kept + recycled for c; gold and "
                 "stage-1 silver are outside it); true noise: the whole arm, where the truth is known. World: "
                 "held-out accuracy in percent ± its standard error; the last column before the benchmarks is "
                 "the paired difference to arm (a) on the same pairs.")


def ablation_markdown(rows: list[dict[str, Any]], title: str = "Data ablation") -> str:
    header, cells = ablation_lines(rows)
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines + ["", ABLATION_NOTE, ""])


def ablation_html(rows: list[dict[str, Any]], title: str = "Data ablation", decision: str = "") -> str:
    """The table as one HTML page (the KFP UI's view), styled like the evaluation report; `decision`
    is stage 2's decision, printed under the table."""
    import html

    header, cells = ablation_lines(rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
    said = f"<p><b>Stage 2 decision:</b> {html.escape(decision)}</p>" if decision else ""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
            "<style>body{font-family:sans-serif;max-width:70em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
            f"</style></head><body><h1>{html.escape(title)}</h1><table><tr>{head}</tr>{body}</table>"
            f"{said}<p>{html.escape(ABLATION_NOTE)}</p></body></html>")
