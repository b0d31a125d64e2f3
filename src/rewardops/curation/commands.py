"""`rewardops annotate`, `rewardops curate seed|stage1|final-rms|gold-rm|stage2|merge`, `rewardops review export|import|tui`.

Each `curate` command parses the settings once (`--settings` plus its short options) and calls
one function of `rewardops.curation.steps`, the same function the KFP components call; dvc.yaml
runs these commands with `--settings params.yaml:curation`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from rewardops.curation import builders
from rewardops.errors import ConfigError, DataError

# The published folder of each curation set (the DVC stage's outs; `flipped` holds the recycled set).
PUBLISHED = {"curated": "curated", "recycled": "flipped", "no_verdict": "no_verdict", "discarded": "discarded"}

SETTINGS = typer.Option(None, "--settings", help="curation settings: a profile (default, demo), JSON/YAML text, or a "
                        "file PATH[.json|.yaml][:SECTION] (e.g. params.yaml:curation); the options below override it")
ANNOTATOR = typer.Option(None, "--annotator", help="who verifies gold: " + builders.describe(builders.ANNOTATORS))
JUDGE = typer.Option([], "--judge", help="judge spec, repeatable: " + builders.describe(builders.JUDGES))
RM = typer.Option(None, "--rm", help="the loop's RM: " + builders.describe(builders.RMS))
ATTRIBUTES = typer.Option(None, "--attributes", help="attribute generator for pairs lacking them: "
                          + builders.describe(builders.ATTRIBUTE_GENERATORS))
EMBEDDER = typer.Option(None, "--embedder", help="retrieval embedder: a sentence-transformers model, or `hashed` (offline)")
SEED = typer.Option(None, "--seed")
# Label Studio annotator (--annotator labelstudio, the server from LABEL_STUDIO_URL): how long to wait for people, and --resume
WAIT = typer.Option(None, "--wait", help="labelstudio: poll up to SECONDS for people to finish (default: open the tasks and stop)")
POLL = typer.Option(None, "--poll", help="labelstudio: seconds between polls while waiting")
RESUME = typer.Option(False, "--resume", help="labelstudio: collect the tasks an earlier run opened (refuses when none were)")


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _print_summary(title: str, data: dict) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("what")
    table.add_column("value", justify="right")
    for k, v in data.items():
        table.add_row(str(k), json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v))
    _console().print(table)


def _print_rows(title: str, columns: dict[str, dict]) -> None:
    """One column per key (e.g. per iteration), one row per measure: numbers, never raw JSON."""
    from rich.table import Table

    measures = list(dict.fromkeys(k for col in columns.values() for k in col))
    table = Table(title=title)
    table.add_column("")
    for name in columns:
        table.add_column(name, justify="right")
    for m in measures:
        table.add_row(m.replace("_", " "), *(_cell(col.get(m)) for col in columns.values()))
    _console().print(table)


def _cell(value) -> str:  # noqa: ANN001
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 and value != int(value) else f"{value:,.0f}"
    return str(value)


def _settings(text: str | None, **overrides):  # noqa: ANN202 - CurationSettings
    """The settings at the edge: `--settings`, then the command's short options on top (a bad
    setting is a `SettingsError`, reported by the CLI)."""
    from rewardops.curation.settings import CurationSettings

    return CurationSettings.parse(text, where="--settings").with_overrides(where="options", **overrides)


def _run(fn):  # noqa: ANN001, ANN202
    """Run a step (bad input or configuration raises a `RewardOpsError`, which the CLI reports)."""
    return fn()


def _run_with_people(fn, wait: float | None, poll: float | None, resume: bool):  # noqa: ANN001, ANN202
    """`_run` with the Label Studio options set; people not done yet is `AnnotationsPending` (exit
    code 3, with what to do)."""
    from rewardops.curation import labelstudio

    with labelstudio.options(wait_s=wait, poll_s=poll, resume=resume or None,
                             log=lambda msg: _console().print(msg)):
        return _run(fn)


app = typer.Typer()  # `rewardops annotate`; mounts the groups below
curate_app = typer.Typer(help="The two-stage human-AI curation of Skywork-Reward-V2 (paper §3.2-3.3).", no_args_is_help=True)
review_app = typer.Typer(help="Human verification: Label Studio round trip or terminal review.", no_args_is_help=True)
app.add_typer(curate_app, name="curate")
app.add_typer(review_app, name="review")


@app.command("annotate")
def annotate(
    data: Path = typer.Argument(..., help="folder of preference-pair shards"),
    out: Path = typer.Argument(..., help="output folder (same shards, attributes filled)"),
    backend: str = typer.Option("openai", help="'openai' (REWARDOPS_LLM_* env / Secret) or 'local' (in-process HF LM)"),
    model: Optional[str] = typer.Option(None, help="model name (openai) or backbone (local)"),
    max_attempts: int = typer.Option(3, help="tries per pair before it is marked unannotated"),
    overwrite: bool = typer.Option(False, help="re-annotate pairs that already have attributes"),
    shard: list[int] = typer.Option([], help="only these shard indices (fan-out); default all"),
    batch_size: int = typer.Option(256, help="pairs per request wave"),
) -> None:
    """Fill the five preference attributes with an LLM (validated JSON schema; never guessed)."""
    from rich.progress import Progress

    from rewardops.curation.attributes import AttributeAnnotator
    from rewardops.curation.shardrun import run_shards, summarize
    from rewardops.data.shards import count_pairs

    if backend == "openai":
        from rewardops.curation.llm.openai_client import OpenAIChatClient

        llm = OpenAIChatClient.from_env(**({"model": model} if model else {}))
    elif backend == "local":
        from rewardops.curation.llm.local_hf import LocalHFChat

        llm = LocalHFChat(model or "smollm2-135m")
    else:
        raise ConfigError(f"--backend {backend!r}: unknown backend; use openai or local")
    ann = AttributeAnnotator(llm, max_attempts=max_attempts, overwrite=overwrite)

    def fn(pairs, counters):
        before = ann.report.unannotated
        ann.annotate(pairs)
        counters["unannotated"] += ann.report.unannotated - before
        counters["pairs"] += len(pairs)
        return ((".", p) for p in pairs)

    with Progress(console=_console(), transient=True) as bar:
        task = bar.add_task("annotating", total=count_pairs(data))
        run_shards(data, out, ["."], fn, only=shard or None, batch_size=batch_size,
                   on_batch=lambda n: bar.advance(task, n), on_skip=lambda i, m: bar.advance(task, m["input_rows"]))
    summary = {**summarize(out), "this_run": ann.report.as_dict(), "tokens": llm.usage.as_dict()}
    (out / "annotate-summary.json").write_text(json.dumps(summary, indent=1, default=str))
    from rewardops.outputs import seal_output

    seal_output(out)  # a dataset readers verify (re-sealed when a later run adds shards)
    _print_summary(f"annotate -> {out}", summary)


@curate_app.command("seed")
def curate_seed(
    dataset: Path = typer.Argument(..., help="a preprocessed dataset folder"),
    out: Path = typer.Option(..., "--out", help="the curation state: gold/ silver/ pool/ state.json"),
    settings: Optional[str] = SETTINGS,
    annotator: Optional[str] = ANNOTATOR,
    attributes: Optional[str] = ATTRIBUTES,
    gold_n: Optional[int] = typer.Option(None, "--gold-n", help="pairs the annotator verifies: the gold seed"),
    silver_n: Optional[int] = typer.Option(None, "--silver-n", help="next pairs, original labels: the silver seed"),
    pool_shards: Optional[int] = typer.Option(None, "--pool-shards", help="the rest, the pool, in at least this many shards"),
    pool_shard_size: Optional[int] = typer.Option(None, "--pool-shard-size", help="and shards of at most this many pairs"),
    embedder: Optional[str] = EMBEDDER,
    seed: Optional[int] = SEED,
    wait: Optional[float] = WAIT,
    poll: Optional[float] = POLL,
    resume: bool = RESUME,
) -> None:
    """The curation seed: attributes for pairs lacking them, the gold seed verified by people, the silver seed, the
    pool (with its retrieval vectors: stage 1 must use the same `--embedder`)."""
    from rewardops.curation.steps import seed_split

    s = _settings(settings, annotator=annotator, attributes=attributes, gold_n=gold_n, silver_n=silver_n,
                  pool_shards=pool_shards, pool_shard_size=pool_shard_size, embedder=embedder, seed=seed)
    counts = _run_with_people(lambda: seed_split(dataset, out, s), wait, poll, resume)
    _print_summary(f"seed -> {out}", counts)


@curate_app.command("stage1")
def curate_stage1(
    state: Path = typer.Option(..., "--state", help="a curation state (`rewardops curate seed`)"),
    out: Path = typer.Option(..., "--out", help="the state with stage1/iter-XX/ added (a rerun resumes)"),
    settings: Optional[str] = SETTINGS,
    iterations: Optional[int] = typer.Option(None, "--iterations", help="stage-1 iterations"),
    human_per_iteration: Optional[int] = typer.Option(None, "--human-per-iteration",
                                                      help="retrieved pairs routed to people per iteration"),
    annotator: Optional[str] = ANNOTATOR,
    judge: list[str] = JUDGE,
    rm: Optional[str] = RM,
    embedder: Optional[str] = EMBEDDER,
    seed: Optional[int] = SEED,
    wait: Optional[float] = WAIT,
    poll: Optional[float] = POLL,
    resume: bool = RESUME,
) -> None:
    """Stage 1: RM on silver -> calibrated gold confidences -> error-driven retrieval -> people/judges -> grow gold/silver."""
    from rewardops.curation.steps import stage1 as run_stage1

    s = _settings(settings, iterations=iterations, human_per_iteration=human_per_iteration, annotator=annotator,
                  judges=judge or None, rm=rm, embedder=embedder, seed=seed)
    reports = _run_with_people(lambda: run_stage1(state, out, s), wait, poll, resume)
    if not reports:
        _print_summary(f"stage 1 -> {out}", {"already done": str(out)})
        return
    _print_rows(f"stage 1 -> {out}", {f"iter {i + 1}": {k: reports[i].get(k) for k in
                                                        ("gold_accuracy", "gold_size", "silver_size", "retrieved",
                                                         "no_verdict", "unreviewed", "rm_temperature",
                                                         "retrieval_truncated")} for i in range(len(reports))})


@curate_app.command("final-rms")
def curate_final_rms(
    state: Path = typer.Argument(..., help="a curation state after stage 1"),
    out: Path = typer.Argument(..., help="writes best_rm/, gold_rm/, replay.json"),
    settings: Optional[str] = SETTINGS,
    rm: Optional[str] = RM,
    judge: list[str] = JUDGE,
) -> None:
    """Train the RMs stage 2 needs once: the best RM (silver, selected and calibrated on gold) and the gold RM."""
    from rewardops.curation.steps import final_models

    s = _settings(settings, rm=rm, judges=judge or None)
    _print_summary(f"final RMs -> {out}", _run(lambda: final_models(state, out, s)))


@curate_app.command("gold-rm")
def curate_gold_rm(
    gold: Path = typer.Option(..., "--gold", help="human-verified pairs (e.g. `rewardops review import`'s gold/)"),
    out: Path = typer.Option(..., "--out", help="the gold RM folder (rm.json, weights, train/, folds/)"),
    settings: Optional[str] = SETTINGS,
    rm: Optional[str] = RM,
    seed: Optional[int] = SEED,
) -> None:
    """Train the gold RM on imported gold (every pair; calibrated on cross-fitted probabilities)."""
    from rewardops.curation.steps import gold_rm as train

    s = _settings(settings, rm=rm, seed=seed)
    _print_summary(f"gold RM -> {out}", _run(lambda: train(gold, out, s)))


@curate_app.command("stage2")
def curate_stage2(
    state: Path = typer.Option(..., "--state", help="the curation state after stage 1 (its pool is filtered)"),
    models: Path = typer.Option(..., "--models", help="`rewardops curate final-rms` output"),
    out: Path = typer.Option(..., "--out", help="one folder per pool shard: shard-XXXXX/{kept,discarded,no_verdict,recycled}"),
    settings: Optional[str] = SETTINGS,
    judge: list[str] = JUDGE,
    band: Optional[float] = typer.Option(None, "--band", help="|p_best - 0.5| <= band is uncertain and goes to the judges"),
    gold_threshold: Optional[float] = typer.Option(None, "--gold-threshold"),
    shard: list[int] = typer.Option([], "--shard", help="only these shard indices (fan-out); default all"),
    pool: Optional[Path] = typer.Option(None, "--pool", help="the seed state holding the pool (default: the one "
                                                             "the state names)"),
) -> None:
    """Stage 2: keep a pair iff the gold RM agrees and (the judges or the best RM agree); resumable per shard."""
    from rewardops.curation import steps

    s = _settings(settings, judges=judge or None, band=band, gold_threshold=gold_threshold)
    if shard:
        parts = [_run(lambda i=i: (steps.stage2_shard(state, models, i, out / f"shard-{i:05d}", s, pool=pool),
                                   out / f"shard-{i:05d}")[1])
                 for i in shard]
    else:
        parts = _run(lambda: steps.stage2(state, models, out, s, pool=pool))
    report = steps.stage2_report(parts, models, s)
    _print_summary(f"stage 2 -> {out}", {"shards": len(parts), **report["counts"],
                                        "decision": report["decision"]["why"],
                                        "true_noise": report["true_noise"]})
    if report["counts"]["no_verdict"]:
        _console().print(f"[yellow]{report['counts']['no_verdict']} pairs had no judge verdict[/yellow]: they are in "
                         "no_verdict/ (not kept, not dropped); run stage 2 on them again once the judges answer")


@curate_app.command("merge")
def curate_merge(
    state: Path = typer.Option(..., "--state", help="the curation state after stage 1"),
    models: Path = typer.Option(..., "--models", help="`rewardops curate final-rms` output"),
    stage2_dir: Path = typer.Option(..., "--stage2", help="`rewardops curate stage2` output"),
    out: Path = typer.Option(..., "--out", help="writes curated/ flipped/ (the recycled set) no_verdict/ discarded/ subsets.json"),
    settings: Optional[str] = SETTINGS,
) -> None:
    """The published sets: curated = stage-1 gold + silver + stage-2 kept (deduplicated); flipped = the recycled set."""
    from rewardops.curation.steps import SHARD_KIND, merge as run_merge
    from rewardops.outputs import is_complete

    s = _settings(settings)
    parts = sorted(p for p in stage2_dir.glob("shard-*") if p.is_dir())
    if not parts or not all(is_complete(p, SHARD_KIND) for p in parts):
        raise DataError(f"{stage2_dir}: no complete stage-2 shard folders").with_hint(
            "run `rewardops curate stage2` (it resumes) first")
    outs = {name: out / PUBLISHED[name] for name in PUBLISHED}
    result = _run(lambda: run_merge(state, models, parts, outs, s, report=out / "subsets.json"))
    _print_summary(f"curation sets -> {out}", {**result["sets"], "curated": result["curated"],
                                               "decision": result["stage2"]["decision"]["why"]})


@review_app.command("export")
def review_export(
    data: Path = typer.Argument(..., help="pairs to verify"),
    out: Path = typer.Argument(..., help="folder for tasks.json + label_config.xml"),
    limit: Optional[int] = typer.Option(None, help="export at most this many pairs"),
    seed: int = typer.Option(0, help="fixes the blind A/B order; give the same --seed to `review import`"),
    graded: bool = typer.Option(False, help="the graded scale (A much better ... B much better) instead of A / B"),
) -> None:
    """Export a batch as a Label Studio project (blind tasks + labeling config)."""
    from itertools import islice

    from rewardops.curation.human import export_label_studio
    from rewardops.data.shards import read_pairs

    pairs = list(islice(read_pairs(data), limit))
    tasks, config = export_label_studio(pairs, out, seed=seed, graded=graded)
    _print_summary("review export", {"tasks": str(tasks), "label_config": str(config), "pairs": len(pairs)})


@review_app.command("import")
def review_import(
    export: Path = typer.Argument(..., help="Label Studio JSON export of the finished project"),
    data: Path = typer.Argument(..., help="the pairs that were exported"),
    out: Path = typer.Argument(..., help="writes gold/, undecidable/, pending/"),
    seed: int = typer.Option(0, help="the --seed of `review export` (it fixed the blind A/B order)"),
) -> None:
    """Import finished annotations: decided -> gold; undecidable -> discarded; unannotated -> pending."""
    from rewardops.curation.human import import_label_studio
    from rewardops.data.shards import read_pairs, write_pairs

    res = import_label_studio(export, list(read_pairs(data)), seed=seed)
    for name, pairs in (("gold", res.gold), ("undecidable", res.undecidable), ("pending", res.pending)):
        write_pairs(pairs, out / name)
    _print_summary("review import", {"gold": len(res.gold), "undecidable": len(res.undecidable),
                                     "pending": len(res.pending), **dict(res.counts)})


@review_app.command("tui")
def review_tui(
    data: Path = typer.Argument(..., help="pairs to verify (a small batch)"),
    out: Path = typer.Argument(..., help="writes gold/, undecidable/, pending/"),
    limit: int = typer.Option(20, help="review at most this many pairs"),
    seed: int = typer.Option(0),
) -> None:
    """Review a small batch in the terminal (a / b / u = cannot decide / q = stop)."""
    from itertools import islice

    from rewardops.curation.human import TerminalAnnotator, apply_human_verdict
    from rewardops.data.shards import read_pairs, write_pairs

    pairs = list(islice(read_pairs(data), limit))
    ann = TerminalAnnotator(seed=seed)
    answers = ann.verify(pairs)
    gold = [apply_human_verdict(p, a, "terminal") for p, a in zip(pairs, answers) if a is not None]
    undecidable = [p for p, a in zip(pairs, answers) if a is None]
    for p in undecidable:
        p.lineage.append("human:terminal:undecidable")
    pending = pairs[len(answers):]
    for name, sel in (("gold", gold), ("undecidable", undecidable), ("pending", pending)):
        write_pairs(sel, out / name)
    _print_summary("review", {"gold": len(gold), "undecidable": len(undecidable), "pending": len(pending)})
