"""Resource requests, caching, retries, GPU placement and run identity for pipeline tasks, in one place.

Caching is on for every step (the data version input keeps it honest) except `register`, whose
outcome depends on the registry's current champion. CPU/memory sizes are requests for the CPU
component image; GPUs belong to the TrainJob (train_launcher) or to `evaluate` on a cluster:
`with_gpu` takes the accelerator resource name, tolerations and node selector from the same
settings as the TrainJobs (REWARDOPS_ACCELERATOR, REWARDOPS_GPU_TOLERATIONS,
REWARDOPS_GPU_NODE_SELECTOR; rewardops.k8s.trainjob.Accelerator). On a cluster every task gets
the KFP run id as KFP_RUN_ID (the pod's `pipeline/runid` label through the downward API), which
the lineage tags read; `retry` marks steps that can fail transiently (a lost node, an API blip).
"""

import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from kfp.dsl import PipelineTask

from rewardops.k8s.trainjob import DEFAULT_MLFLOW_AUTH_SECRET, DEFAULT_S3_SECRET

SIZES = {
    "light": ("500m", "1", "1Gi", "2Gi"),
    "data": ("1", "2", "4Gi", "8Gi"),
    "curation": ("2", "4", "8Gi", "16Gi"),
    "train-cpu": ("2", "4", "8Gi", "16Gi"),
}


# Env every cluster task gets from the Helm chart's client ConfigMap (`<release>-rewardops-client`;
# `rewardops-client` for a release named rewardops), and the S3 key pair from its Secret.
CLIENT_CONFIGMAP = "rewardops-client"
CLIENT_KEYS = (
    "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_DEFAULT_REGION", "REWARDOPS_S3_SECRET",
    "REWARDOPS_DVC_REMOTE", "REWARDOPS_CHECKPOINT_URI", "REWARDOPS_TRAINJOB_NAMESPACE", "REWARDOPS_DEEPSPEED_RUNTIME",
    "REWARDOPS_TORCH_RUNTIME", "REWARDOPS_JUDGE_BASE_URL", "REWARDOPS_JUDGE_MODEL",
    "REWARDOPS_ACCELERATOR", "REWARDOPS_GPUS_PER_NODE", "REWARDOPS_GPU_NODE_SELECTOR", "REWARDOPS_GPU_TOLERATIONS",
    "REWARDOPS_MLFLOW_AUTH_SECRET", "REWARDOPS_PIPELINE_SERVICE_ACCOUNT", "REWARDOPS_TRAINING_IMAGE",
)
# ConfigMap key -> env var in the pod: the chart names the judge server REWARDOPS_JUDGE_*, the
# curation library's OpenAI-compatible client reads REWARDOPS_LLM_*.
CLIENT_ENV = {key: key for key in CLIENT_KEYS} | {
    "REWARDOPS_JUDGE_BASE_URL": "REWARDOPS_LLM_BASE_URL", "REWARDOPS_JUDGE_MODEL": "REWARDOPS_LLM_MODEL"}
S3_SECRET = DEFAULT_S3_SECRET
S3_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# MLflow's client reads its credentials from the environment (basic-auth: username/password;
# oauth2-proxy: a token): the chart's `mlflow.auth.clientCredentialsSecret` (default name below).
MLFLOW_AUTH_SECRET = DEFAULT_MLFLOW_AUTH_SECRET
MLFLOW_AUTH_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
RUN_ID_ENV = "KFP_RUN_ID"
RUN_ID_FIELD = "metadata.labels['pipeline/runid']"  # the label KFP v2 puts on every pod of a run
_cluster_env = {"on": False}


def cluster_env(task: PipelineTask) -> PipelineTask:
    """ConfigMap and Secret env for a task on the cluster (needs the kfp-kubernetes package)."""
    from kfp import kubernetes

    kubernetes.use_config_map_as_env(task, CLIENT_CONFIGMAP, CLIENT_ENV, optional=True)
    kubernetes.use_secret_as_env(task, S3_SECRET, {k: k for k in S3_KEYS}, optional=True)
    kubernetes.use_secret_as_env(task, MLFLOW_AUTH_SECRET, {k: k for k in MLFLOW_AUTH_KEYS}, optional=True)
    kubernetes.use_field_path_as_env(task, RUN_ID_ENV, RUN_ID_FIELD)
    return task


def retry(task: PipelineTask, attempts: int = 2) -> PipelineTask:
    """Retry a step that can fail transiently; train_launcher re-attaches to its TrainJob on retry."""
    task.set_retry(num_retries=attempts, backoff_duration="60s", backoff_factor=2.0, backoff_max_duration="3600s")
    return task


def kfp_kubernetes_available() -> bool:
    try:
        from kfp import kubernetes  # noqa: F401
    except ImportError:
        return False
    return True


def sized(task: PipelineTask, kind: str, cache: bool = True) -> PipelineTask:
    cpu_request, cpu_limit, memory_request, memory_limit = SIZES[kind]
    task.set_cpu_request(cpu_request).set_cpu_limit(cpu_limit)
    task.set_memory_request(memory_request).set_memory_limit(memory_limit)
    task.set_caching_options(enable_caching=cache)
    if _cluster_env["on"]:
        cluster_env(task)
    return task


def with_gpu(task: PipelineTask, count: int = 1) -> PipelineTask:
    """`count` accelerators (the configured resource name) and, with kfp-kubernetes, the GPU nodes'
    tolerations and node selector. KFP sets the limit; Kubernetes makes an extended resource's
    request equal to it."""
    from rewardops.k8s.trainjob import Accelerator

    accelerator = Accelerator.from_env()
    task.set_accelerator_type(accelerator.resource).set_accelerator_limit(count)
    if kfp_kubernetes_available():
        from kfp import kubernetes

        for toleration in accelerator.pod_tolerations():
            kubernetes.add_toleration(task, key=toleration.get("key"), operator=toleration.get("operator", "Equal"),
                                      value=toleration.get("value"), effect=toleration.get("effect"),
                                      toleration_seconds=toleration.get("tolerationSeconds"))
        for key, value in accelerator.node_selector.items():
            kubernetes.add_node_selector(task, key, value)
    return task


class _CheapStack:
    """`inspect`, except that `stack()` skips reading every frame's source file.

    KFP calls `inspect.stack()` in every `set_cpu_*` / `set_memory_*` / `set_accelerator_*` only to
    name the caller in an error message; with torch-sized `sys.modules` that costs ~0.15 s a call,
    so a pipeline with 40 sized tasks took 20 s to build. Frames without source context give the
    same caller name.
    """

    def __getattr__(self, name: str):
        return getattr(inspect, name)

    @staticmethod
    def stack(context: int = 1) -> list[tuple]:
        frames, frame = [], sys._getframe(1)
        while frame is not None:
            frames.append((frame, frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name, None, None))
            frame = frame.f_back
        return frames


@contextmanager
def fast_task_config(cluster: bool = False) -> Iterator[None]:
    """While a pipeline is built: cheap `inspect.stack`, and cluster env on every sized task when
    `cluster` (and kfp-kubernetes is installed; without it the IR carries no Kubernetes config)."""
    from kfp.dsl import pipeline_task

    original = pipeline_task.inspect
    pipeline_task.inspect = _CheapStack()
    _cluster_env["on"] = cluster and kfp_kubernetes_available()
    try:
        yield
    finally:
        pipeline_task.inspect = original
        _cluster_env["on"] = False
