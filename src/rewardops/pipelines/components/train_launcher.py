"""train_launcher: train one catalog size as a Kubeflow Trainer TrainJob (multi-node DeepSpeed)."""

from typing import List

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
    overrides: List[str] = [],
    nodes: int = 0,
    gpus_per_node: int = -1,
    profile: str = "final",
    namespace: str = "",
    cleanup: str = "on-success",
    timeout_hours: float = 168.0,
):
    """Create a TrainJob for `size` (its nodes and GPUs from the catalog), wait for it while
    streaming node-0's log and `trainerStatus` progress, and fail with the job's reason if it
    fails. The trained model stays in object storage at `<output_root>/<size>/<data version>`;
    the Model artifact points there. Namespace, S3 Secret, runtimes and MLflow come from the
    Helm chart's client ConfigMap env (REWARDOPS_TRAINJOB_NAMESPACE, REWARDOPS_S3_SECRET, ...)."""
    import json
    import os
    import re

    from rewardops.k8s.launcher import PrintReporter, TrainJobLauncher, api_client
    from rewardops.pipelines.steps import begin_step, log_metrics
    from rewardops.k8s.trainjob import S3Credentials, build_trainjob, request_for_size

    begin_step(f"train-launcher-{size}", data_version)
    overrides = list(overrides)
    if nodes > 0:  # the suite's plan may reshape a size: the TrainJob gets these nodes / GPUs
        overrides.append(f"nodes={nodes}")
    if gpus_per_node >= 0:
        overrides.append(f"gpus_per_node={gpus_per_node}")
    data_uri = dataset.uri.replace("minio://", "s3://", 1)  # KFP's MinIO scheme; the trainer reads S3
    # a short, path- and name-safe tag of the data version: "dvc:3f2a9c0d1e.dir" -> "3f2a9c0d1e"
    version_tag = re.sub(r"[^a-z0-9]", "", data_version.split(":")[-1].lower().removesuffix(".dir"))[:12] or "data"
    output_uri = f"{output_root.rstrip('/')}/{size}/{version_tag}"
    secret = os.environ.get("REWARDOPS_S3_SECRET")
    s3 = S3Credentials(secret, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
                       region=os.environ.get("AWS_DEFAULT_REGION")) if secret else None
    ns = namespace or os.environ.get("REWARDOPS_TRAINJOB_NAMESPACE", "default")
    run = os.environ.get("KFP_RUN_ID", "")[:8]
    request = request_for_size(size, data_uri=data_uri, output_uri=output_uri, namespace=ns, s3=s3,
                               run_name=f"rm-{size}-{version_tag}-{run}".rstrip("-"), data_version=data_version,
                               mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI"),
                               overrides=overrides, profile=profile)
    manifest = build_trainjob(request)
    launcher = TrainJobLauncher(api_client(), namespace=ns,
                                poll_interval=float(os.environ.get("REWARDOPS_LAUNCHER_POLL_S", "15")))
    outcome = launcher.run(manifest, reporter=PrintReporter(), s3=s3, cleanup=cleanup,
                           timeout_s=timeout_hours * 3600)
    # The weights stay in object storage; the artifact records where, and how to load them:
    # the registered MLflow version `rewardops train` printed in its closing summary on node 0.
    summary = outcome.train_summary() or {}
    name, version = f"rewardops-rm-{size}", int(summary.get("registered_version") or 0)
    pointer = {"output_uri": output_uri, "trainjob": outcome.name, "namespace": ns, "summary": summary,
               "model_uri": f"models:/{name}/{version}" if version else ""}
    os.makedirs(model.path, exist_ok=True)
    with open(os.path.join(model.path, "model.json"), "w") as f:
        json.dump(pointer, f, indent=1)
    model.metadata.update({"size": size, "data_version": data_version, "trainjob": outcome.name, "namespace": ns,
                           "nodes": request.num_nodes, "gpus_per_node": request.gpus_per_node,
                           "output_uri": output_uri, "model_uri": pointer["model_uri"], "registered_model": name,
                           "registered_version": version, "mlflow_run_id": summary.get("mlflow_run") or ""})
    values = {"seconds": outcome.seconds, "progress": outcome.progress or 0, "log_lines": outcome.log_lines}
    for name, value in outcome.metrics.items():
        try:
            values[name] = float(value)
        except ValueError:
            pass
    log_metrics(metrics, values)
