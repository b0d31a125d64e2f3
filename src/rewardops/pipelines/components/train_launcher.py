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
):
    """Attach to or create the TrainJob for `size` (its nodes and GPUs from the catalog or the plan,
    any TrainConfig setting from `overrides`, e.g. {"lr": 1e-5}), wait for it while streaming
    node-0's log and `trainerStatus` progress, and fail with the job's reason if it fails. A retry
    or a rerun on the same data re-attaches to the same job (running: follow; succeeded: reuse;
    failed: replace). `run_id` is the KFP run (dsl.PIPELINE_JOB_ID_PLACEHOLDER); the job's name, labels
    and MLflow tags carry it. The trained model stays in object storage at
    `<output_root>/<size>/<data version>`; its registered version is found in MLflow by the job's
    tag. Namespace, S3 Secret, runtimes, accelerator and MLflow come from the Helm chart's client
    ConfigMap env (REWARDOPS_TRAINJOB_NAMESPACE, REWARDOPS_S3_SECRET, REWARDOPS_ACCELERATOR, ...)."""
    import json
    import os
    import re

    from rewardops.k8s.launcher import PrintReporter, TrainJobLauncher, api_client, model_version_for_trainjob
    from rewardops.k8s.trainjob import S3Credentials, build_trainjob, request_for_size
    from rewardops.pipelines.steps import begin_step, log_metrics
    from rewardops.training.config import config_from_json, refuse_cluster_settings

    refuse_cluster_settings(overrides)  # endpoints are the cluster's, before any request
    begin_step(f"train-launcher-{size}", data_version, run_id=run_id)
    settings = dict(overrides)
    if nodes > 0:  # the suite's plan may reshape a size: the TrainJob gets these nodes / GPUs
        settings["nodes"] = nodes
    if gpus_per_node >= 0:
        settings["gpus_per_node"] = gpus_per_node
    data_uri = dataset.uri.replace("minio://", "s3://", 1)  # KFP's MinIO scheme; the trainer reads S3
    # a short, path- and name-safe tag of the data version: "dvc:3f2a9c0d1e.dir" -> "3f2a9c0d1e"
    version_tag = re.sub(r"[^a-z0-9]", "", data_version.split(":")[-1].lower().removesuffix(".dir"))[:12] or "data"
    output_uri = f"{output_root.rstrip('/')}/{size}/{version_tag}"
    secret = os.environ.get("REWARDOPS_S3_SECRET")
    s3 = S3Credentials(secret, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
                       region=os.environ.get("AWS_DEFAULT_REGION")) if secret else None
    ns = namespace or os.environ.get("REWARDOPS_TRAINJOB_NAMESPACE", "default")
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking_uri and settings.get("mlflow", True):
        raise SystemExit("MLFLOW_TRACKING_URI is not set for this step: the TrainJob's pods would log to a file inside "
                         "the pod and the model version could not be found. Set mlflow in the Helm chart (its client "
                         "ConfigMap carries the URI) or pass overrides {\"mlflow\": false}")
    request = request_for_size(size, data_uri=data_uri, output_uri=output_uri, namespace=ns, s3=s3, run_id=run_id,
                               data_version=data_version, mlflow_tracking_uri=tracking_uri, overrides=settings,
                               profile=profile, mlflow_auth_secret=os.environ.get("REWARDOPS_MLFLOW_AUTH_SECRET"))
    config = config_from_json(request.train_args[-1])
    manifest = build_trainjob(request)  # every bad input fails above, before any pod exists
    launcher = TrainJobLauncher(api_client(), namespace=ns,
                                poll_interval=float(os.environ.get("REWARDOPS_LAUNCHER_POLL_S", "15")))
    outcome = launcher.run(manifest, reporter=PrintReporter(), s3=s3, cleanup=cleanup, timeout_s=timeout_hours * 3600)
    # The weights stay in object storage; the registered version is looked up in MLflow by the job's tag.
    found = model_version_for_trainjob(outcome.name, config.model_name, tracking_uri, config.experiment) \
        if config.mlflow else None
    mlflow_run, version = found or ("", 0)
    if not found:
        print(f"[trainjob] no registered MLflow version of {config.model_name} for TrainJob {outcome.name}", flush=True)
    pointer = {"output_uri": output_uri, "trainjob": outcome.name, "namespace": ns, "attached": outcome.attached,
               "mlflow_run_id": mlflow_run, "model_uri": f"models:/{config.model_name}/{version}" if version else ""}
    os.makedirs(model.path, exist_ok=True)
    with open(os.path.join(model.path, "model.json"), "w") as f:
        json.dump(pointer, f, indent=1)
    model.metadata.update({"size": size, "data_version": data_version, "trainjob": outcome.name, "namespace": ns,
                           "nodes": request.num_nodes, "gpus_per_node": request.gpus_per_node,
                           "world_size": request.num_nodes * max(request.gpus_per_node, 1),
                           "output_uri": output_uri, "model_uri": pointer["model_uri"],
                           "registered_model": config.model_name, "registered_version": version,
                           "mlflow_run_id": mlflow_run, "pipeline_run_id": run_id, "attached": outcome.attached})
    values = {"seconds": outcome.seconds, "progress": outcome.progress or 0, "log_lines": outcome.log_lines}
    for name, value in outcome.metrics.items():
        try:
            values[name] = float(value)
        except ValueError:
            pass
    log_metrics(metrics, values)
