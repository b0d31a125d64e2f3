"""`rewardops annotate`, `rewardops curate stage1|stage2|final-rms`, `rewardops review export|import|tui`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from rewardops.curation.builders import JUDGE_HELP, RM_HELP


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


def _fail(msg: str) -> None:
    _console().print(f"[red]error:[/red] {msg}")
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    curate = typer.Typer(help="The two-stage human-AI curation of Skywork-Reward-V2 (spec §3-4).", no_args_is_help=True)
    review = typer.Typer(help="Human verification: Label Studio round trip or terminal review.", no_args_is_help=True)
    app.add_typer(curate, name="curate")
    app.add_typer(review, name="review")

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
            from rewardops.curation.llm.openai_client import LLMConfigError, OpenAIChatClient

            try:
                llm = OpenAIChatClient.from_env(**({"model": model} if model else {}))
            except LLMConfigError as exc:
                _fail(str(exc))
        elif backend == "local":
            from rewardops.curation.llm.local_hf import LocalHFChat

            llm = LocalHFChat(model or "smollm2-135m")
        else:
            _fail(f"unknown backend {backend!r}: use openai or local")
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
        _print_summary(f"annotate -> {out}", summary)

    @curate.command("stage1")
    def stage1(
        gold: Path = typer.Option(..., help="seed gold (human-verified) pairs"),
        silver: Path = typer.Option(..., help="seed silver pairs (training set)"),
        pool: Path = typer.Option(..., help="unverified pool D_un (attributes annotated)"),
        out: Path = typer.Option(..., help="output: iter-XX/{gold,silver,...} data versions"),
        iterations: int = typer.Option(3),
        human_per_iteration: int = typer.Option(16, help="retrieved pairs routed to humans per iteration"),
        annotator: str = typer.Option("simulated", help="'simulated[:ERR]' (a SIMULATION, needs the world's truth) or 'terminal'"),
        judge: list[str] = typer.Option(["simulated:0.2"], help=JUDGE_HELP),
        samples: int = typer.Option(3, help="self-consistency samples per judge model"),
        merge: str = typer.Option("majority", help="cross-model merge: majority | unanimous"),
        rm: str = typer.Option("embedding-bt", help=RM_HELP),
        embedding_model: Optional[str] = typer.Option(None, help="sentence-transformers model (default all-MiniLM-L6-v2)"),
        mlflow: bool = typer.Option(True, help="log per-iteration metrics to MLflow"),
        tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI (default MLFLOW_TRACKING_URI / local)"),
        seed: int = typer.Option(0),
    ) -> None:
        """Stage 1: RM on silver -> gold accuracy -> error-driven retrieval -> humans/judges -> grow gold/silver."""
        from contextlib import nullcontext

        from rewardops.curation.builders import build_ensemble, build_trainer
        from rewardops.curation.human import SimulatedAnnotator, TerminalAnnotator
        from rewardops.curation.retrieval import SentenceTransformerEmbedder
        from rewardops.curation.stage1 import Stage1Config, Stage1Loop

        kind, _, arg = annotator.partition(":")
        if kind == "simulated":
            ann = SimulatedAnnotator(error_rate=float(arg or 0.05), seed=seed)
        elif kind == "terminal":
            ann = TerminalAnnotator(seed=seed)
        else:
            _fail(f"unknown annotator {annotator!r}: use simulated[:ERR] or terminal (Label Studio: `rewardops review`)")
        embedder = SentenceTransformerEmbedder(embedding_model)
        try:
            judges = build_ensemble(judge, samples, merge, seed)
            trainer = build_trainer(rm, embedder, seed)
        except ValueError as exc:
            _fail(str(exc))
        cm = nullcontext(None)
        if mlflow:
            from rewardops.tracking.mlflow_tracker import start_tracker

            cm = start_tracker("rewardops-curation", f"stage1-{out.name}", tracking_uri=tracking_uri,
                               tags={"stage": "1", "annotator": ann.name, "judges": judges.name, "rm": rm})
        with cm as tracker:
            if tracker is not None:
                tracker.log_params({"iterations": iterations, "human_per_iteration": human_per_iteration, "samples": samples,
                                    "merge": merge, "rm": rm, "annotator": ann.name, "judges": judges.name})
            loop = Stage1Loop(trainer, embedder, ann, judges,
                              Stage1Config(iterations=iterations, human_per_iteration=human_per_iteration), tracker=tracker)
            reports = loop.run(gold, silver, pool, out)
        last = reports[-1] if reports else None
        _print_summary(f"stage 1 -> {out}", {f"iter {r.iteration}": {"gold_acc": round(r.gold_accuracy, 4), "gold": r.gold_size,
                                                                    "silver": r.silver_size, "retrieved": r.retrieved}
                                             for r in reports} | ({"latest": str(out / "latest")} if last else {}))

    @curate.command("final-rms")
    def final_rms(
        stage1_dir: Path = typer.Argument(..., help="a stage-1 output folder"),
        out: Path = typer.Argument(..., help="writes best_rm/ and gold_rm/"),
        rm: str = typer.Option("embedding-bt", help=RM_HELP),
        embedding_model: Optional[str] = typer.Option(None),
    ) -> None:
        """Train the two RMs stage 2 needs: the best RM (silver, selected on gold) and the gold RM."""
        from rewardops.curation.builders import build_trainer
        from rewardops.curation.retrieval import SentenceTransformerEmbedder
        from rewardops.curation.stage1 import train_final_models

        embedder = SentenceTransformerEmbedder(embedding_model) if rm == "embedding-bt" else None
        best, gold = train_final_models(build_trainer(rm, embedder), stage1_dir, out)
        _print_summary("final RMs", {"best_rm": str(out / "best_rm"), "gold_rm": str(out / "gold_rm"), "kind": best.name})

    @curate.command("stage2")
    def stage2(
        pool: Path = typer.Option(..., help="the large pool (shards)"),
        best_rm: Path = typer.Option(..., help="folder of the current best RM"),
        gold_rm: Path = typer.Option(..., help="folder of the gold RM (trained on all human-verified pairs)"),
        out: Path = typer.Option(..., help="output: kept/ discarded/ no_verdict/ recycled/ + manifest.json"),
        gold: Optional[Path] = typer.Option(None, help="gold pairs: retrieved as examples for the judges"),
        judge: list[str] = typer.Option([], help=JUDGE_HELP + "; none: the best RM alone decides uncertain pairs"),
        samples: int = typer.Option(3),
        merge: str = typer.Option("majority"),
        band: float = typer.Option(0.1, help="|p_best - 0.5| <= band is uncertain and goes to the judges"),
        gold_threshold: float = typer.Option(0.5),
        judge_disagreements: bool = typer.Option(True, help="also judge pairs the best RM confidently rejects (paper)"),
        recycle: bool = typer.Option(True, help="write discarded pairs flipped to recycled/"),
        shard: list[int] = typer.Option([], help="only these shard indices (fan-out); default all"),
        batch_size: int = typer.Option(1024),
        embedding_model: Optional[str] = typer.Option(None),
        seed: int = typer.Option(0),
    ) -> None:
        """Stage 2: keep a pair iff the gold RM agrees and (the judges or the best RM agree); resumable per shard."""
        from rewardops.curation.adapters import load_scorer
        from rewardops.curation.builders import build_ensemble
        from rewardops.curation.stage2 import Stage2Config, Stage2Filter

        embedder = None
        if (gold is not None and judge) or any((p / "embedding_bt.json").exists() for p in (best_rm, gold_rm)):
            from rewardops.curation.retrieval import SentenceTransformerEmbedder

            embedder = SentenceTransformerEmbedder(embedding_model)
        examples = None
        if gold is not None and judge:
            from rewardops.curation.retrieval import ExampleRetriever
            from rewardops.data.shards import read_pairs

            examples = ExampleRetriever(list(read_pairs(gold)), embedder)
        try:
            judges = build_ensemble(judge, samples, merge, seed) if judge else None
        except ValueError as exc:
            _fail(str(exc))
        f = Stage2Filter(load_scorer(best_rm, embedder), load_scorer(gold_rm, embedder),
                         Stage2Config(band=band, gold_threshold=gold_threshold, judge_disagreements=judge_disagreements,
                                      recycle=recycle, batch_size=batch_size), judges=judges, examples=examples)
        summary = f.run(pool, out, only=shard or None)
        _print_summary(f"stage 2 -> {out}", {k: summary[k] for k in ("shards_done", "input_rows", "outputs", "counters")})

    @review.command("export")
    def review_export(
        data: Path = typer.Argument(..., help="pairs to verify"),
        out: Path = typer.Argument(..., help="folder for tasks.json + label_config.xml"),
        limit: Optional[int] = typer.Option(None, help="export at most this many pairs"),
        seed: int = typer.Option(0),
    ) -> None:
        """Export a batch as a Label Studio project (tasks + labeling config)."""
        from itertools import islice

        from rewardops.curation.human import export_label_studio
        from rewardops.data.shards import read_pairs

        pairs = list(islice(read_pairs(data), limit))
        tasks, config = export_label_studio(pairs, out, seed=seed)
        _print_summary("review export", {"tasks": str(tasks), "label_config": str(config), "pairs": len(pairs)})

    @review.command("import")
    def review_import(
        export: Path = typer.Argument(..., help="Label Studio JSON export of the finished project"),
        data: Path = typer.Argument(..., help="the pairs that were exported"),
        out: Path = typer.Argument(..., help="writes gold/, undecidable/, pending/"),
    ) -> None:
        """Import finished annotations: decided -> gold; undecidable -> discarded; unannotated -> pending."""
        from rewardops.curation.human import LabelStudioFormatError, import_label_studio
        from rewardops.data.shards import read_pairs, write_pairs

        try:
            res = import_label_studio(export, list(read_pairs(data)))
        except LabelStudioFormatError as exc:
            _fail(str(exc))
        for name, pairs in (("gold", res.gold), ("undecidable", res.undecidable), ("pending", res.pending)):
            write_pairs(pairs, out / name)
        _print_summary("review import", {"gold": len(res.gold), "undecidable": len(res.undecidable),
                                         "pending": len(res.pending), **dict(res.counts)})

    @review.command("tui")
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
