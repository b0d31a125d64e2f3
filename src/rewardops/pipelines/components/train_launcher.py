"""train_launcher: train one catalog size as a Kubeflow Trainer TrainJob (multi-node DeepSpeed)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def train_launcher(
    dataset: Input[Dataset],
    size: str,
    data_version: str,
    output_root: str,
    model: Output[Model],
    metrics: Output[Metrics],
    overrides: dict = {},
    nodes: int = 0,
    gpus_per_node: int = -1,
    profile: str = "final",
    run_id: str = "",
    namespace: str = "",
    cleanup: str = "keep",
    timeout_hours: float = 168.0,
    ablation_arm: str = "",
):
    """Attach to or create the TrainJob for `size` (its nodes and GPUs from the catalog or the plan,
    any TrainConfig setting from `overrides`, e.g. {"lr": 1e-5}), wait for it while streaming
    node-0's log and `trainerStatus` progress, and fail with the job's reason if it fails. A retry
    or a rerun on the same data re-attaches to the same job (running: follow; succeeded: reuse;
    failed: replace). `run_id` is the KFP run (dsl.PIPELINE_JOB_ID_PLACEHOLDER); the job's name, labels
    and MLflow tags carry it. The trained model stays in object storage at
    `<output_root>/<size>/<data version>`; its registered version is found in MLflow by the job's
    tag. `ablation_arm`: one arm of the data ablation (its own job and output; registered as
    `rewardops-ablation-<size>`). Namespace, S3 Secret, runtimes, accelerator and MLflow come from the Helm chart's client
    ConfigMap env (REWARDOPS_TRAINJOB_NAMESPACE, REWARDOPS_S3_SECRET, REWARDOPS_ACCELERATOR, ...)."""
    import json
    import os

    from rewardops.k8s.launcher import launch_size
    from rewardops.pipelines.steps import begin_step, log_metrics

    begin_step(f"train-launcher-{size}", data_version, run_id=run_id)
    launch = launch_size(size, data_uri=dataset.uri.replace("minio://", "s3://", 1),  # KFP's MinIO scheme -> S3
                         data_version=data_version, output_root=output_root, overrides=overrides, nodes=nodes,
                         gpus_per_node=gpus_per_node, profile=profile, run_id=run_id, namespace=namespace,
                         cleanup=cleanup, timeout_hours=timeout_hours, ablation_arm=ablation_arm)
    os.makedirs(model.path, exist_ok=True)
    with open(os.path.join(model.path, "model.json"), "w") as f:
        json.dump(launch.pointer(), f, indent=1)
    model.metadata.update({"size": size, "data_version": data_version, "pipeline_run_id": run_id, **launch.metadata()})
    log_metrics(metrics, launch.metric_values())
