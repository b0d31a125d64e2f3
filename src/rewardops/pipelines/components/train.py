"""train: train one catalog size in this task's own process (CPU demo sizes, or a single GPU node)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def train(
    dataset: Input[Dataset],
    size: str,
    data_version: str,
    model: Output[Model],
    metrics: Output[Metrics],
    overrides: dict = {},
    profile: str = "final",
    max_steps: int = 0,
    run_id: str = "",
    same_as: Input[Model] = None,
    ablation_arm: str = "",
):
    """`rewardops.training.run` for `size` on the Dataset, `overrides` (any TrainConfig setting, e.g.
    {"lr": 1e-5}) applied over the catalog; the Model folder holds checkpoints and the exported
    Hugging Face model. `same_as`: a model of this run that may have been trained on the same pairs
    with the same settings (the ablation's arm (c) when stage 2 recycled nothing is arm (b)): then
    its model is this step's, not trained twice. `ablation_arm`: the model registers as a version of
    `rewardops-ablation-<size>`, not of the size's model. Multi-node sizes go through `train_launcher`."""
    import os

    from rewardops import training
    from rewardops.pipelines.steps import begin_step, log_metrics, reuse_model, training_key

    training.config.refuse_cluster_settings(overrides)  # endpoints are the cluster's, before any request
    begin_step(f"train-{size}", data_version, run_id=run_id)
    overrides = {**dict(overrides), "data": dataset.path, "out": model.path}
    if ablation_arm:
        from rewardops.naming import ablation_model_name

        overrides["register_name"] = ablation_model_name(size)
        overrides["run_tags"] = {**overrides.get("run_tags", {}), "rewardops.ablation_arm": ablation_arm}
    if max_steps > 0:
        overrides["max_steps"] = max_steps
    if run_id:
        overrides["run_tags"] = {**overrides.get("run_tags", {}), "rewardops.pipeline.run_id": run_id}
    config = training.load_config(size, overrides, profile=profile)
    # the ablation's arms compare trainings (a full read of the pairs); the sizes' trainings need not
    key = training_key(config) if ablation_arm or same_as is not None else ""
    if reuse_model(model, same_as, key):
        log_metrics(metrics, {"steps": model.metadata.get("steps", 0), "reused": 1})
        return
    result = training.run(config, progress=True)  # one line per step at least every 30 s
    last = result.history[-1] if result.history else {}
    model.metadata.update({
        "size": size, "backbone": config.backbone, "data_version": data_version, "steps": result.steps,
        "export_dir": os.path.relpath(result.export_dir, model.path) if result.export_dir else "",
        "mlflow_run_id": result.run_id or "", "registered_model": config.model_name,
        "registered_version": result.registered_version or 0, **({"training_key": key} if key else {}), **result.launch,
    })
    log_metrics(metrics, {"steps": result.steps, **{k.replace("/", "_"): v for k, v in last.items()},
                          **({"eval_accuracy": result.eval["accuracy"]} if result.eval else {})})
