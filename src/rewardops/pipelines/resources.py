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
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kfp.dsl import PipelineTask

from rewardops.k8s.trainjob import (DEFAULT_MLFLOW_AUTH_SECRET, DEFAULT_S3_SECRET, LAUNCHER_TOKEN_DIR, LAUNCHER_TOKEN_SECRET,
                                    STORAGE_ROOT_ENV)

SIZES = {
    "light": ("500m", "1", "1Gi", "2Gi"),
    "data": ("1", "2", "4Gi", "8Gi"),
    "curation": ("2", "4", "8Gi", "16Gi"),
    "train-cpu": ("2", "4", "8Gi", "16Gi"),
}



@dataclass(frozen=True)
class StepCost:
    """What one curation step costs, measured by `bench/bench_scale.py` at 80k-1.28M pairs (2-core dev
    machine under load 10-22; offline parts: hashed embedder and RM, heuristic attributes, simulated
    people and judges; bench/RESULTS.md, "Curation at scale"). Time is linear in the pairs a step
    reads; memory is flat except merge's digest tables (`bytes_per_pair`)."""

    memory_gib: float  # measured flat peak RSS, rounded up with headroom (a sentence-transformers model where it embeds)
    s_per_pair: float  # wall seconds per pair on one 2-core pod
    fanned_out: bool  # one pod per pool shard (ParallelFor) or one pod for the whole pool
    bytes_per_pair: float = 0.0  # memory that does grow: merge's uint64 digest sets of ids and content keys


STEP_COSTS = {
    "seed": StepCost(memory_gib=1.0, s_per_pair=100e-6, fanned_out=False),  # 1.28M: 128 s, 260 MB
    "prepare": StepCost(memory_gib=2.0, s_per_pair=350e-6, fanned_out=True),  # heuristic attributes + hashed vectors: 75 s / 213k
    "stage1-iteration": StepCost(memory_gib=2.0, s_per_pair=10e-6, fanned_out=False),  # scan 9 s / 1.28M; 543 MB
    "stage2": StepCost(memory_gib=1.0, s_per_pair=110e-6, fanned_out=True),  # 23 s / 213k shard; 279 MB
    "merge": StepCost(memory_gib=1.0, s_per_pair=180e-6, fanned_out=False, bytes_per_pair=64.0),  # 226 s / 1.28M; 514 MB
}
DESIGN_POOL = 40_000_000  # the pool size compiled pipelines are sized for (the paper's)
# MiniLM-class embedding of one pair on 2 CPU cores: ~25 ms (measured on the dev machine: 40M
# pairs would take 10-12 days). On a GPU pod: 0.25 ms (4,000 pairs/s) is an ESTIMATE, not measured
# here (no GPU was lent); `plan` says which figure it used.
CPU_EMBED_S_PER_PAIR, GPU_EMBED_S_PER_PAIR = 25e-3, 0.25e-3


def shard_size_of(kind: str, pool_pairs: int = DESIGN_POOL) -> tuple[str, str, str, str]:
    """(cpu request, cpu limit, memory request, memory limit) of a fanned-out or whole-pool curation
    step from its measured peak (`STEP_COSTS`; merge also from the pool size): limit = twice the request."""
    cost = STEP_COSTS[kind]
    gib = max(1, math.ceil(cost.memory_gib + cost.bytes_per_pair * pool_pairs / 2**30))
    return "2", "4", f"{gib}Gi", f"{2 * gib}Gi"


def curation_plan(pool_pairs: int, settings: object, pods: int = 0, gpu_embedding: bool = False,
                  neural_embedder: bool = True) -> dict:
    """The curation pipeline's plan for a pool of `pool_pairs`: shards, pods per step, memory per
    pod and estimated wall time (STEP_COSTS; `pods`: most pods a fan-out runs at once, 0: one per
    shard). `neural_embedder`: the settings' embedder is a sentence-transformers model (embedding
    dominates `prepare`); `gpu_embedding`: the prepare pods get a GPU each."""
    from rewardops.curation.steps import pool_layout

    shards, per_shard = pool_layout(pool_pairs, settings)
    parallel = shards if pods <= 0 else min(pods, shards)
    waves = math.ceil(shards / parallel)
    iterations = int(getattr(settings, "iterations", 1))
    steps = []
    for kind in ("seed", "prepare", "stage1-iteration", "stage2", "merge"):
        cost = STEP_COSTS[kind]
        s_per_pair = cost.s_per_pair
        if kind == "prepare" and neural_embedder:
            s_per_pair += GPU_EMBED_S_PER_PAIR if gpu_embedding else CPU_EMBED_S_PER_PAIR
        if cost.fanned_out:
            n_pods, seconds = shards, waves * per_shard * s_per_pair
        else:
            n_pods, seconds = 1, pool_pairs * s_per_pair
        repeat = iterations if kind == "stage1-iteration" else 1
        steps.append({"step": kind, "pods": n_pods, "at_once": parallel if cost.fanned_out else 1,
                      "memory_per_pod": shard_size_of(kind, pool_pairs)[2], "runs": repeat, "est_seconds": seconds * repeat})
    return {"pool_pairs": pool_pairs, "shards": shards, "pairs_per_shard": per_shard, "pods_at_once": parallel,
            "steps": steps, "est_seconds": sum(st["est_seconds"] for st in steps),
            "note": "stage-1 training, people and judges are not included (they scale with gold/silver, not the pool)"
                    + ("; GPU embedding rate is an estimate, not a measurement" if gpu_embedding and neural_embedder else "")}


def format_plan(plan: dict) -> str:
    def dur(s: float) -> str:
        return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"

    lines = [f"pool {plan['pool_pairs']:,} pairs -> {plan['shards']} shard(s) of <= {plan['pairs_per_shard']:,}; "
             f"fan-outs run {plan['pods_at_once']} pod(s) at once",
             f"{'step':<18}{'pods':>6}{'at once':>9}{'memory/pod':>12}{'runs':>6}{'est. time':>12}"]
    for st in plan["steps"]:
        lines.append(f"{st['step']:<18}{st['pods']:>6}{st['at_once']:>9}{st['memory_per_pod']:>12}{st['runs']:>6}"
                     f"{dur(st['est_seconds']):>12}")
    lines.append(f"total (sequential steps, fan-outs in parallel): {dur(plan['est_seconds'])}; {plan['note']}")
    return "\n".join(lines)


# Env every cluster task gets from the Helm chart's client ConfigMap (`<release>-rewardops-client`;
# `rewardops-client` for a release named rewardops), and the S3 key pair from its Secret.
CLIENT_CONFIGMAP = "rewardops-client"
CLIENT_KEYS = (
    "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_DEFAULT_REGION", "REWARDOPS_S3_SECRET",
    "REWARDOPS_DVC_REMOTE", "REWARDOPS_CHECKPOINT_URI", "REWARDOPS_TRAINJOB_NAMESPACE", "REWARDOPS_DEEPSPEED_RUNTIME",
    "REWARDOPS_TORCH_RUNTIME", "REWARDOPS_JUDGE_BASE_URL", "REWARDOPS_JUDGE_MODEL",
    "REWARDOPS_ACCELERATOR", "REWARDOPS_GPUS_PER_NODE", "REWARDOPS_GPU_NODE_SELECTOR", "REWARDOPS_GPU_TOLERATIONS",
    "REWARDOPS_MLFLOW_AUTH_SECRET", "REWARDOPS_PIPELINE_SERVICE_ACCOUNT", "REWARDOPS_TRAINING_IMAGE",
    STORAGE_ROOT_ENV,
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


def launcher_credentials(task: PipelineTask) -> PipelineTask:
    """The TrainJob launcher's token Secret (the chart's `<release>-trainjob-launcher` service
    account) mounted at LAUNCHER_TOKEN_DIR: on the launch task only, on a cluster build. Every other
    step runs with the pipeline service account alone (no TrainJob or pod-log rights)."""
    if _cluster_env["on"]:
        from kfp import kubernetes

        kubernetes.use_secret_as_volume(task, LAUNCHER_TOKEN_SECRET, mount_path=LAUNCHER_TOKEN_DIR)
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
    """Requests and limits of `kind`: a SIZES row, or a curation step of STEP_COSTS (sized from its
    measured flat memory, whatever the shard size)."""
    cpu_request, cpu_limit, memory_request, memory_limit = SIZES[kind] if kind in SIZES else shard_size_of(kind)
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
