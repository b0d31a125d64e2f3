"""evaluate: score a trained reward model on the RM benchmarks (and the generated world)."""

from typing import List

from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def evaluate(
    model: Input[Model],
    data_version: str,
    report: Output[Artifact],
    metrics: Output[Metrics],
    benchmarks: str = "all+world",
    sources: List[str] = [],
    data_dir: str = "",
    world_n: int = 256,
    max_length: int = 16384,
):
    """`rewardops eval`: results per benchmark, summary.json/.md and plots in the report folder;
    logged to the model's MLflow training run when it has one. `sources` are NAME=PATH entries."""
    from pathlib import Path

    from rewardops.evaluation.benchmarks import parse_names
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
    outcome = run_eval(config)
    summary = outcome.summary
    scores = {k: v for k, v in (summary.get("scores") or {}).items() if v is not None}
    # The number the registry compares versions on: the paper's seven-benchmark average when all
    # seven ran, else the average over the paper benchmarks present, else over whatever ran
    # (the demo's generated world), each under its own metric name.
    if summary.get("average_7") is not None:
        metric, score = "eval/avg7", summary["average_7"]
    elif summary.get("average_present") is not None:
        metric, score = "eval/avg_present", summary["average_present"]
    elif scores:
        metric, score = "eval/avg_" + "+".join(sorted(scores)), sum(scores.values()) / len(scores)
    else:
        raise RuntimeError(f"evaluation of {folder} scored no benchmark (missing: {summary.get('missing')})")
    found = {"model": str(folder), "size": model.metadata.get("size", ""), "score_metric": metric, "score": score,
             "average_7": summary.get("average_7"), "average_present": summary.get("average_present"),
             "benchmarks_present": summary.get("benchmarks_present"), "scores": scores}
    report.metadata.update({k: v for k, v in found.items() if v is not None})
    log_metrics(metrics, {"score": score, **scores,
                          **{k: v for k, v in summary.items() if k.startswith("average") and v is not None}})
