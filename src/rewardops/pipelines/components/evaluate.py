"""evaluate: score a trained reward model on the RM benchmarks (and the generated world)."""

from typing import List

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Metrics, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def evaluate(
    model: Input[Model],
    data_version: str,
    report: Output[Artifact],
    summary: Output[Markdown],
    summary_html: Output[HTML],
    metrics: Output[Metrics],
    benchmarks: str = "all+world",
    sources: List[str] = [],
    data_dir: str = "",
    world_n: int = 256,
    max_length: int = 16384,
):
    """`rewardops eval`: the report folder (results per benchmark, summary.json/.md, plots), the
    summary table with its plots embedded as Markdown and HTML (shown by the KFP UI), and the
    scores in percent as metrics; logged to the model's MLflow training run when it has one.
    `sources` are NAME=PATH entries."""
    from pathlib import Path

    from rewardops.evaluation.benchmarks import parse_names
    from rewardops.evaluation.report import embedded_reports
    from rewardops.evaluation.runner import EvalConfig, run_eval
    from rewardops.pipelines.steps import begin_step, log_metrics

    begin_step("evaluate", data_version)
    # A TrainJob-trained model is in object storage, reachable as its registered MLflow version;
    # an in-process one is the exported folder inside the artifact.
    folder = model.metadata.get("model_uri") or str(Path(model.path) / model.metadata.get("export_dir", ""))
    if not str(folder).startswith("models:/") and not Path(folder).exists():
        raise FileNotFoundError(f"model artifact {model.uri}: no exported model at {folder} and no registered version")
    config = EvalConfig(
        model=str(folder), benchmarks=parse_names(benchmarks), out=Path(report.path),
        data_dir=Path(data_dir) if data_dir else None,
        sources=dict(item.split("=", 1) for item in sources), world_n=world_n, max_length=max_length,
        mlflow_run_id=model.metadata.get("mlflow_run_id") or None, show_progress=False,
    )
    import logging

    class _OneLineForMissing(logging.Filter):  # the runner's "skipping <bench>" lines: one line below instead
        def filter(self, record: logging.LogRecord) -> bool:
            return not str(record.msg).startswith("skipping ")

    quiet = _OneLineForMissing()
    logging.getLogger("rewardops.evaluation").addFilter(quiet)
    try:
        outcome = run_eval(config)
    finally:
        logging.getLogger("rewardops.evaluation").removeFilter(quiet)
    if outcome.missing:
        print(f"[evaluate] not scored, no files given: {', '.join(outcome.missing)}; add them with "
              f"sources (eval_sources=NAME=PATH; the preprocess step says where each comes from)", flush=True)
    found = outcome.summary
    percent = {k: 100 * v for k, v in (found.get("scores") or {}).items() if v is not None}
    if found.get("score_percent") is None:
        raise RuntimeError(f"evaluation of {folder} scored no benchmark (missing: {found.get('missing')})")
    size = model.metadata.get("size", "")
    title = f"Evaluation of {size}" if size else None
    md, page = embedded_reports(Path(report.path), found, title)
    Path(summary.path).write_text(md, encoding="utf-8")
    Path(summary_html.path).write_text(page, encoding="utf-8")
    # registry score and per-benchmark scores, in percent: what `register` records on the version
    info = {"model": str(folder), "size": size, "score": found["score_percent"], "score_basis": found["score_basis"],
            "scores_percent": percent, "benchmarks_present": found.get("benchmarks_present")}
    report.metadata.update(info)
    summary.metadata.update({"size": size, "score": found["score_percent"]})
    log_metrics(metrics, {"score": found["score_percent"], **percent})
