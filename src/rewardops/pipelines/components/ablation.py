"""ablation_arms / ablation_table: the paper's data ablation (§4.3) around the training suite.

`ablation_arms` writes each arm's training set (`rewardops.curation.ablation`); the pipeline trains
one size on each and evaluates it; `ablation_table` names the arms' MLflow runs by arm (children of
the run's suite parent), logs each arm's pairs and noise on its run, and writes the table as JSON,
Markdown and HTML (the KFP UI shows the last two).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def ablation_arms(
    pool: Input[Dataset],
    curated: Input[Dataset],
    recycled: Input[Dataset],
    data_version: str,
    uncurated: Output[Dataset],
    curated_recycled: Output[Dataset],
    true_labels: Output[Dataset],
    arms: Output[Artifact],
    with_truth: bool = False,
):
    """Arm (a) the pool as labelled, (c) curated + recycled and, `with_truth`, (d) the pool with its
    true labels (arm (b) is `curated` itself); `arms` gets each arm's size and noise (JSON)."""
    import json
    from pathlib import Path

    from rewardops.curation.ablation import build_arms
    from rewardops.data.shards import write_pairs
    from rewardops.pipelines.steps import begin_step, finish_dataset

    begin_step("ablation-arms", data_version)
    outs = {"a": uncurated.path, "c": curated_recycled.path}
    if with_truth:
        outs["d"] = true_labels.path
    else:
        write_pairs([], true_labels.path)  # declared output, no arm: the data has no truth
    info = build_arms(pool.path, curated.path, recycled.path, outs,
                      dict(curated.metadata.get("stage2_estimated_noise") or {}),
                      bool(curated.metadata.get("stage2_filtered", True)))
    info["stage2_decision"] = curated.metadata.get("stage2_decision", "")
    Path(arms.path).write_text(json.dumps(info, indent=1))
    for arm, artifact in (("a", uncurated), ("c", curated_recycled), ("d", true_labels)):
        finish_dataset(artifact, data_version, stage=f"ablation-arm-{arm}")
    arms.metadata.update({arm: v["pairs"] for arm, v in info.items() if isinstance(v, dict)})


@dsl.component(base_image=component_image(), install_kfp_package=False)
def ablation_table(
    arms: Input[Artifact],
    model_a: Input[Model],
    report_a: Input[Artifact],
    model_b: Input[Model],
    report_b: Input[Artifact],
    model_c: Input[Model],
    report_c: Input[Artifact],
    data_version: str,
    table: Output[Artifact],
    summary: Output[Markdown],
    summary_html: Output[HTML],
    model_d: Input[Model] = None,
    report_d: Input[Artifact] = None,
):
    """The ablation table (pairs, estimated and true noise, world held-out accuracy ± SE, the paired
    difference to arm a, the other benchmarks) from the arms' evaluation reports."""
    import json
    from pathlib import Path

    from rewardops.curation.ablation import table_rows, tag_arm_runs
    from rewardops.pipelines.steps import begin_step

    begin_step("ablation-table", data_version)
    facts = json.loads(Path(arms.path).read_text())
    arm_outputs = {"a": (model_a, report_a), "b": (model_b, report_b), "c": (model_c, report_c)}
    if model_d is not None and report_d is not None:
        arm_outputs["d"] = (model_d, report_d)
    reports = {arm: Path(rep.path) for arm, (_, rep) in arm_outputs.items()}
    rows = table_rows(facts, reports)
    from rewardops.evaluation.report import ablation_html, ablation_markdown

    note = facts.get("stage2_decision", "")
    md = ablation_markdown(rows) + (f"\nStage 2: {note}\n" if note else "")
    Path(summary.path).write_text(md, encoding="utf-8")
    sizes = sorted({str(m.metadata.get("size")) for m, _ in arm_outputs.values() if m.metadata.get("size")})
    title = "Data ablation" + (f" of {', '.join(sizes)}" if sizes else "") + ": what curation buys"
    Path(summary_html.path).write_text(ablation_html(rows, title=title, decision=note), encoding="utf-8")
    run_ids = {arm: m.metadata.get("mlflow_run_id") or "" for arm, (m, _) in arm_outputs.items()}
    try:  # the table stands without MLflow; the runs are named and annotated when it answers
        tagged, problem = tag_arm_runs(rows, run_ids), ""
    except Exception as exc:  # noqa: BLE001 - an unreachable tracking server: say so, keep the table
        tagged, problem = {}, f"MLflow: could not name the arms' runs ({type(exc).__name__}: {str(exc)[:300]})"
        print(problem, flush=True)
    Path(table.path).write_text(json.dumps({"rows": rows, "stage2_decision": note, "mlflow_runs": tagged,
                                            "mlflow_problem": problem}, indent=1))
