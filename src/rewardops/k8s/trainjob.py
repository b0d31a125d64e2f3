"""Build a Kubeflow Trainer v2 `TrainJob` for one reward-model size of the training catalog.

The TrainJob references a ClusterTrainingRuntime (`deepspeed-distributed`: OpenMPI launcher plus
DeepSpeed, for catalog entries with `deepspeed: true`; `torch-distributed`: torchrun, otherwise) and
overrides the trainer container: image, command
(`rewardops train --size ...` under mpirun or torchrun), `numNodes`, GPUs per node through
`resourcesPerNode`, and env with the MLflow and data URIs. S3 credentials never appear in the
manifest: they are `valueFrom.secretKeyRef` references to a Secret in the job's namespace.
Every manifest is checked against the Trainer CRD schema before it leaves this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardops.k8s.images import training_image
from rewardops.k8s.schema import validate_trainjob

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "trainjobs"
GPU_RESOURCE = "nvidia.com/gpu"
# framework -> (default ClusterTrainingRuntime name, env var the Helm chart's client ConfigMap sets
# when the cluster names it differently). deepspeed runs under the runtime's OpenMPI launcher,
# torch under torchrun.
FRAMEWORKS = {
    "deepspeed": ("deepspeed-distributed", "REWARDOPS_DEEPSPEED_RUNTIME"),
    "torch": ("torch-distributed", "REWARDOPS_TORCH_RUNTIME"),
}
MPI_HOSTFILE = "/etc/mpi/hostfile"


def runtime_name(framework: str) -> str:
    """The ClusterTrainingRuntime for `framework` on this cluster (see FRAMEWORKS)."""
    default, env = FRAMEWORKS[framework]
    return os.environ.get(env) or default


class TrainJobConfigError(ValueError):
    """A TrainJob that cannot work, caught before anything is sent to the cluster."""


@dataclass(frozen=True)
class S3Credentials:
    """Where the pods find S3 (or MinIO) credentials: keys of a Secret in the job's namespace."""

    secret_name: str
    access_key_id_key: str = "AWS_ACCESS_KEY_ID"
    secret_access_key_key: str = "AWS_SECRET_ACCESS_KEY"
    endpoint_url: str | None = None  # MinIO or another S3-compatible store
    region: str | None = None

    def env(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = [
            {"name": "AWS_ACCESS_KEY_ID",
             "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": self.access_key_id_key}}},
            {"name": "AWS_SECRET_ACCESS_KEY",
             "valueFrom": {"secretKeyRef": {"name": self.secret_name, "key": self.secret_access_key_key}}},
        ]
        if self.endpoint_url:
            # boto3 reads AWS_ENDPOINT_URL; MLflow's artifact client reads MLFLOW_S3_ENDPOINT_URL.
            entries += [{"name": "AWS_ENDPOINT_URL", "value": self.endpoint_url},
                        {"name": "MLFLOW_S3_ENDPOINT_URL", "value": self.endpoint_url}]
        if self.region:
            entries.append({"name": "AWS_DEFAULT_REGION", "value": self.region})
        return entries

    @property
    def secret_keys(self) -> tuple[str, str]:
        return (self.access_key_id_key, self.secret_access_key_key)


@dataclass(frozen=True)
class TrainJobRequest:
    """Everything a TrainJob needs, in the words of a RewardOps user."""

    name: str
    train_args: Sequence[str]  # arguments after the `rewardops` executable, e.g. ["train", "--size", ...]
    framework: str = "deepspeed"  # deepspeed (mpirun) | torch (torchrun)
    runtime: str | None = None  # ClusterTrainingRuntime name; default: runtime_name(framework)
    num_nodes: int = 1
    gpus_per_node: int = 1
    procs_per_node: int | None = None  # default: one process per GPU (1 on a CPU node)
    image: str = field(default_factory=training_image)
    namespace: str = "default"
    cpu_per_node: str | None = None
    memory_per_node: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str | None = None
    data_uris: Mapping[str, str] = field(default_factory=dict)  # env name -> URI
    env: Mapping[str, str] = field(default_factory=dict)
    s3: S3Credentials | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    active_deadline_seconds: int | None = None

    @property
    def runtime_ref(self) -> str:
        return self.runtime or runtime_name(self.framework)


def dns_label(text: str, max_len: int = 63) -> str:
    """`text` as an RFC 1035 label (lowercase, starts with a letter, <= max_len); long names keep a hash."""
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    label = re.sub(r"-{2,}", "-", label)
    if not label or not label[0].isalpha():
        label = f"rm-{label}".rstrip("-")
    if len(label) > max_len:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        label = f"{label[: max_len - 9].rstrip('-')}-{digest}"
    return label


def _check(request: TrainJobRequest) -> None:
    problems = []
    if request.framework not in FRAMEWORKS:
        problems.append(f"framework {request.framework!r}: use one of {', '.join(FRAMEWORKS)}")
    if request.num_nodes < 1:
        problems.append(f"num_nodes={request.num_nodes}: a TrainJob needs at least one node")
    if request.gpus_per_node < 0:
        problems.append(f"gpus_per_node={request.gpus_per_node}: cannot be negative")
    if request.procs_per_node is not None and request.procs_per_node < 1:
        problems.append(f"procs_per_node={request.procs_per_node}: must be at least 1")
    if not request.train_args:
        problems.append("train_args is empty: the trainer container would have nothing to run")
    reserved = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} if request.s3 else set()
    clash = reserved & (set(request.env) | set(request.data_uris))
    if clash:
        problems.append(f"env sets {sorted(clash)} in plain text; S3 keys come from the Secret {request.s3.secret_name!r}")
    if problems:
        raise TrainJobConfigError(f"TrainJob {request.name!r}:\n  - " + "\n  - ".join(problems))


def _command(request: TrainJobRequest) -> list[str]:
    if request.framework == "deepspeed":
        # The deepspeed-distributed runtime writes the hostfile (one line per node, numProcPerNode
        # slots); mpirun starts every rank and DeepSpeed reads its rank from the OpenMPI env.
        return ["mpirun", "--hostfile", MPI_HOSTFILE, "rewardops", *request.train_args]
    # torchrun reads PET_NNODES / PET_NPROC_PER_NODE / PET_NODE_RANK / PET_MASTER_* set by the runtime.
    return ["torchrun", "--no-python", "rewardops", *request.train_args]


def _env(request: TrainJobRequest) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if request.mlflow_tracking_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": request.mlflow_tracking_uri})
    if request.mlflow_experiment:
        env.append({"name": "MLFLOW_EXPERIMENT_NAME", "value": request.mlflow_experiment})
    env += [{"name": k, "value": str(v)} for k, v in sorted(request.data_uris.items())]
    env += [{"name": k, "value": str(v)} for k, v in sorted(request.env.items())]
    if request.s3:
        env += request.s3.env()
    return env


def build_trainjob(request: TrainJobRequest) -> dict[str, Any]:
    """The TrainJob manifest for `request`, validated against the Trainer CRD schema."""
    _check(request)
    procs = request.procs_per_node or max(request.gpus_per_node, 1)
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    if request.gpus_per_node:
        limits[GPU_RESOURCE] = request.gpus_per_node
    if request.cpu_per_node:
        requests["cpu"] = request.cpu_per_node
    if request.memory_per_node:
        requests["memory"] = limits["memory"] = request.memory_per_node
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    trainer: dict[str, Any] = {
        "image": request.image,
        "command": _command(request),
        "numNodes": request.num_nodes,
        "numProcPerNode": procs,
        "env": _env(request),
    }
    if resources:
        trainer["resourcesPerNode"] = resources
    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": request.runtime_ref},
        "trainer": trainer,
    }
    if request.active_deadline_seconds:
        spec["activeDeadlineSeconds"] = request.active_deadline_seconds
    labels = {"app.kubernetes.io/part-of": "rewardops", "app.kubernetes.io/component": "reward-model-training",
              **request.labels}
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "TrainJob",
        "metadata": {"name": dns_label(request.name), "namespace": request.namespace, "labels": labels},
        "spec": spec,
    }
    validate_trainjob(manifest)
    return manifest


def request_for_size(
    size: str,
    *,
    data_uri: str,
    output_uri: str,
    run_name: str | None = None,
    namespace: str = "default",
    runtime: str | None = None,
    image: str | None = None,
    mlflow_tracking_uri: str | None = None,
    mlflow_experiment: str | None = None,
    eval_data_uri: str | None = None,
    data_version: str | None = None,
    s3: S3Credentials | None = None,
    overrides: Sequence[str] = (),
    profile: str = "final",
    cpu_per_node: str | None = None,
    memory_per_node: str | None = None,
    active_deadline_seconds: int | None = None,
) -> TrainJobRequest:
    """A TrainJobRequest for catalog size `size`: its nodes, GPUs per node and DeepSpeed choice.

    `overrides` are `key=value` training settings (as `rewardops train --set`); `nodes` and
    `gpus_per_node` among them also change the TrainJob's shape. Raises `TrainJobConfigError` for an
    unknown size or a setting the training config rejects (e.g. a global batch the world size does
    not divide).
    """
    from rewardops.training.config import ConfigError, parse_overrides, resolve_config, validate

    try:
        config = resolve_config(size, parse_overrides(list(overrides)), profile=profile)
        config.out = output_uri
        # DeepSpeed lives in the training image, not necessarily where the pipeline is submitted.
        probe = dataclasses.replace(config, deepspeed=False, zero_stage=0)
        validate(probe, world_size=config.nodes * max(config.gpus_per_node, 1), check_paths=False)
    except ConfigError as exc:
        raise TrainJobConfigError(f"size {size!r}: {exc}") from exc
    framework = "deepspeed" if config.deepspeed else "torch"
    args = ["train", "--size", size, "--data", data_uri, "--out", output_uri, "--profile", profile]
    if eval_data_uri:
        args += ["--set", f"eval_data={eval_data_uri}"]
    if mlflow_tracking_uri:
        args += ["--set", f"tracking_uri={mlflow_tracking_uri}"]
    for item in overrides:
        args += ["--set", item]
    data_uris = {"REWARDOPS_TRAIN_DATA": data_uri, "REWARDOPS_OUTPUT_URI": output_uri}
    if eval_data_uri:
        data_uris["REWARDOPS_EVAL_DATA"] = eval_data_uri
    env = {"REWARDOPS_SIZE": size}
    if data_version:
        env["REWARDOPS_DATA_VERSION"] = data_version
    labels = {"rewardops.io/size": dns_label(size)}
    if data_version:
        labels["rewardops.io/data-version"] = dns_label(data_version)[:63]
    return TrainJobRequest(
        name=run_name or f"rm-{size}",
        train_args=args,
        framework=framework,
        runtime=runtime,
        num_nodes=config.nodes,
        gpus_per_node=config.gpus_per_node,
        image=image or training_image(),
        namespace=namespace,
        cpu_per_node=cpu_per_node,
        memory_per_node=memory_per_node,
        mlflow_tracking_uri=mlflow_tracking_uri,
        mlflow_experiment=mlflow_experiment or config.experiment,
        data_uris=data_uris,
        env=env,
        s3=s3,
        labels=labels,
        active_deadline_seconds=active_deadline_seconds,
    )


def trainjob_for_size(size: str, **kwargs: Any) -> dict[str, Any]:
    """`build_trainjob(request_for_size(size, **kwargs))`."""
    return build_trainjob(request_for_size(size, **kwargs))


def size_plan(sizes: Sequence[str] | None = None, demo: bool = False) -> list[dict[str, Any]]:
    """`[{size, nodes, gpus_per_node, framework}]` for catalog sizes (default: the eight paper sizes,
    or the demo ladder with `demo=True`): the items a training-suite ParallelFor fans out over."""
    from rewardops.training.config import ConfigError, catalog_sizes, resolve_config

    known = catalog_sizes()
    chosen = list(sizes) if sizes is not None else [s for s in known if resolve_config(s).demo == demo]
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise TrainJobConfigError(f"unknown size(s) {', '.join(unknown)}; the catalog has: {', '.join(known)}")
    plan = []
    for size in chosen:
        try:
            config = resolve_config(size)
        except ConfigError as exc:
            raise TrainJobConfigError(f"size {size!r}: {exc}") from exc
        plan.append({"size": size, "nodes": config.nodes, "gpus_per_node": config.gpus_per_node,
                     "framework": "deepspeed" if config.deepspeed else "torch"})
    return plan
