"""Build a Kubeflow Trainer v2 `TrainJob` for one reward-model size of the training catalog.

The TrainJob references a ClusterTrainingRuntime (`deepspeed-distributed`: OpenMPI launcher plus
DeepSpeed, for catalog entries with `deepspeed: true`; `torch-distributed`: torchrun, otherwise;
cluster-specific names from REWARDOPS_DEEPSPEED_RUNTIME / REWARDOPS_TORCH_RUNTIME) and overrides
the trainer container: image, the one pod command `rewardops train --config-json <resolved config>`
under `mpirun -x ...` or `torchrun`, `numNodes`, accelerators per node (requests == limits, the
resource name from REWARDOPS_ACCELERATOR), tolerations / node selector for the GPU pods, and the
env every node needs (MLflow URI, S3 endpoint, NCCL_*, lineage). S3 credentials never appear in
the manifest: they are `valueFrom.secretKeyRef` references to a Secret in the job's namespace,
and mpirun forwards them by name (`-x AWS_SECRET_ACCESS_KEY`). Every manifest is checked against
the Trainer CRD schema before it leaves this module.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rewardops.k8s.images import training_image
from rewardops.errors import ConfigError
from rewardops.k8s.schema import PLACEMENT_MANAGER, TrainJobPolicy, validate_trainjob

if TYPE_CHECKING:
    from rewardops.training.config import TrainConfig

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "trainjobs"
# framework -> (default ClusterTrainingRuntime name, env var the Helm chart's client ConfigMap sets
# when the cluster names it differently, e.g. release-scoped names). deepspeed runs under the
# runtime's OpenMPI launcher, torch under torchrun.
FRAMEWORKS = {
    "deepspeed": ("deepspeed-distributed", "REWARDOPS_DEEPSPEED_RUNTIME"),
    "torch": ("torch-distributed", "REWARDOPS_TORCH_RUNTIME"),
}
# framework -> the runtime's replicated jobs whose pods run training ranks and so get the trainer's
# GPUs: with the MPI runtime's runLauncherAsNode the launcher is node 0 (Trainer v2.3.0
# pkg/runtime/framework/plugins/mpi/mpi.go, isNode), so it needs the GPU placement as much as `node`.
TRAINER_JOBS = {"deepspeed": ("node", "launcher"), "torch": ("node",)}
# The client Secrets the chart names (its client ConfigMap; defaults: the chart's values.yaml).
S3_SECRET_ENV, DEFAULT_S3_SECRET = "REWARDOPS_S3_SECRET", "rewardops-s3"
MLFLOW_AUTH_SECRET_ENV, DEFAULT_MLFLOW_AUTH_SECRET = "REWARDOPS_MLFLOW_AUTH_SECRET", "rewardops-mlflow-client"
# The TrainJob launcher's own API credentials: the token Secret of the chart's launcher service
# account (`<release>-trainjob-launcher`; this name for release `rewardops`), mounted into the
# launch step only, at LAUNCHER_TOKEN_DIR (token, ca.crt, namespace). Every other step keeps only
# the pipeline service account, which holds no TrainJob or pod-log rights.
LAUNCHER_TOKEN_SECRET = "rewardops-trainjob-launcher-token"
LAUNCHER_TOKEN_DIR = "/var/run/secrets/rewardops/trainjob-launcher"
MPI_HOSTFILE = "/etc/mpi/hostfile"
# Labels that identify a TrainJob across retries and reruns (see k8s/launcher.py: re-attach).
RUN_ID_LABEL = "rewardops.io/pipeline-run-id"
CONTENT_LABEL = "rewardops.io/content-hash"
SIZE_LABEL = "rewardops.io/size"
# MLflow tags the training run carries, so its model version is found by search, never from logs.
TRAINJOB_TAG = "rewardops.trainjob"
RUN_ID_TAG = "rewardops.pipeline.run_id"
# Where the accelerator settings come from (the Helm chart's client ConfigMap; defaults below).
ACCELERATOR_ENV = "REWARDOPS_ACCELERATOR"  # extended resource name, nvidia.com/gpu by default (amd.com/gpu, ...)
GPUS_PER_NODE_ENV = "REWARDOPS_GPUS_PER_NODE"  # the most GPUs one node offers
GPU_NODE_SELECTOR_ENV = "REWARDOPS_GPU_NODE_SELECTOR"  # key=value[,key=value]
GPU_TOLERATIONS_ENV = "REWARDOPS_GPU_TOLERATIONS"  # JSON list of tolerations; default: tolerate <resource>:NoSchedule
DEFAULT_ACCELERATOR = "nvidia.com/gpu"
DEFAULT_GPUS_PER_NODE = 8
_RESOURCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# Environment the other nodes need besides what the trainer's `env` list sets: exported by mpirun.
MPI_EXPORT_ALWAYS = ("PATH",)


class TrainJobConfigError(ConfigError):
    """A TrainJob that cannot work, caught before anything is sent to the cluster."""


# Where pipeline outputs may go on this cluster: the chart's client ConfigMap sets it to its
# checkpoint bucket (`s3://<objectStore.buckets.checkpoints>`). Unset (a laptop, kfp.local):
# output_root is not confined.
STORAGE_ROOT_ENV = "REWARDOPS_STORAGE_ROOT"


class OutputRootError(TrainJobConfigError):
    """An output destination parameter outside the cluster's storage root (STORAGE_ROOT_ENV)."""


def _uri_parts(uri: str) -> tuple[str, str, list[str]] | None:
    """(scheme, bucket, path segments) of `scheme://bucket/a/b`, or None when it is not such a URI."""
    from urllib.parse import unquote

    match = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(/[^?#]*)?", uri)
    if not match:
        return None
    segments = [unquote(seg) for seg in (match.group(3) or "").split("/") if seg]
    return match.group(1).lower(), match.group(2), segments


def confine_output_root(value: str, env: Mapping[str, str] | None = None, setting: str = "output_root") -> str:
    """`value` (a pipeline parameter naming where outputs are written) when it lies under the
    cluster's storage root (STORAGE_ROOT_ENV in `env`, default os.environ); raises `OutputRootError`
    naming `setting` and the allowed root otherwise: another scheme or bucket, a local path, a
    `..` / `.` segment (also percent-encoded), a backslash, a query or fragment, or userinfo. With
    no root set it returns `value` unchanged. Called before any write or request."""
    env = os.environ if env is None else env
    root = (env.get(STORAGE_ROOT_ENV) or "").strip()
    if not root:
        return value
    allowed = _uri_parts(root)
    if allowed is None or not allowed[1]:
        raise OutputRootError(f"{STORAGE_ROOT_ENV}={root!r} (the chart's client ConfigMap) is not a "
                              "scheme://bucket[/prefix] URI; fix the chart's objectStore.buckets.checkpoints")
    text = str(value)
    found = _uri_parts(text)
    why = None
    if found is None:
        why = "a local path or not a URI" if "://" not in text else "a query or fragment is not a destination"
    elif found[0] != allowed[0]:
        why = f"scheme {found[0]}:// is not {allowed[0]}://"
    elif "@" in found[1]:
        why = "credentials in a URI are not accepted"
    elif found[1] != allowed[1]:
        why = f"bucket {found[1]!r} is not {allowed[1]!r}"
    elif any(seg in (".", "..") or "\\" in seg or "/" in seg for seg in found[2]):
        why = "'.', '..' and encoded separators are not accepted in the path"
    elif found[2][:len(allowed[2])] != allowed[2]:
        why = f"the path is not under /{'/'.join(allowed[2])}"
    if why:
        raise OutputRootError(f"{setting}={text!r} is outside this cluster's storage root {root!r} "
                              f"({STORAGE_ROOT_ENV}, from the chart's client ConfigMap): {why}; give a URI under "
                              f"{root.rstrip('/')}/")
    return text


@dataclass(frozen=True)
class Accelerator:
    """Which extended resource a GPU is on this cluster, how many one node has, and where GPU pods go."""

    resource: str = DEFAULT_ACCELERATOR
    max_per_node: int = DEFAULT_GPUS_PER_NODE
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] | None = None  # None: tolerate the resource's NoSchedule taint

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Accelerator:
        env = os.environ if env is None else env
        resource = env.get(ACCELERATOR_ENV) or DEFAULT_ACCELERATOR
        text = env.get(GPUS_PER_NODE_ENV) or str(DEFAULT_GPUS_PER_NODE)
        try:
            max_per_node = int(text)
        except ValueError as exc:
            raise TrainJobConfigError(f"{GPUS_PER_NODE_ENV}={text!r}: give the number of GPUs one node has") from exc
        selector: dict[str, str] = {}
        for item in filter(None, (env.get(GPU_NODE_SELECTOR_ENV) or "").split(",")):
            if "=" not in item:
                raise TrainJobConfigError(f"{GPU_NODE_SELECTOR_ENV}: {item!r} is not key=value")
            key, value = item.split("=", 1)
            selector[key.strip()] = value.strip()
        tolerations = None
        if env.get(GPU_TOLERATIONS_ENV):
            try:
                tolerations = tuple(json.loads(env[GPU_TOLERATIONS_ENV]))
            except (ValueError, TypeError) as exc:
                raise TrainJobConfigError(f"{GPU_TOLERATIONS_ENV}: not a JSON list of tolerations ({exc})") from exc
        accelerator = cls(resource, max_per_node, selector, tolerations)
        accelerator.check()
        return accelerator

    def check(self) -> None:
        if not _RESOURCE_NAME.match(self.resource):
            raise TrainJobConfigError(
                f"accelerator {self.resource!r} is not an extended resource name (vendor-domain/name, e.g. "
                f"nvidia.com/gpu or amd.com/gpu); set {ACCELERATOR_ENV} / the chart's accelerator value")
        if self.max_per_node < 1:
            raise TrainJobConfigError(f"{GPUS_PER_NODE_ENV}={self.max_per_node}: a GPU node has at least one GPU")

    def pod_tolerations(self) -> list[dict[str, Any]]:
        if self.tolerations is not None:
            return [dict(t) for t in self.tolerations]
        return [{"key": self.resource, "operator": "Exists", "effect": "NoSchedule"}]


def runtime_name(framework: str) -> str:
    """The ClusterTrainingRuntime for `framework` on this cluster (see FRAMEWORKS)."""
    default, env = FRAMEWORKS[framework]
    return os.environ.get(env) or default


def chart_policy(env: Mapping[str, str] | None = None) -> TrainJobPolicy:
    """What TrainJobs may reference on this cluster: the chart's training image, its runtimes and the
    client Secrets its ConfigMap names (S3 key pair, MLflow client credentials). Never a privileged
    Secret: MinIO's root, MLflow's admin/flask and PostgreSQL's stay out of TrainJobs."""
    env = os.environ if env is None else env
    return TrainJobPolicy(
        images=frozenset({training_image()}),
        runtimes=frozenset(env.get(var) or default for default, var in FRAMEWORKS.values()),
        secrets=frozenset({env.get(S3_SECRET_ENV) or DEFAULT_S3_SECRET,
                           env.get(MLFLOW_AUTH_SECRET_ENV) or DEFAULT_MLFLOW_AUTH_SECRET}))


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


MLFLOW_CREDENTIAL_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def mlflow_credentials_env(secret_name: str) -> list[dict[str, Any]]:
    """MLflow's client credentials from the chart's Secret (REWARDOPS_MLFLOW_AUTH_SECRET), by reference:
    optional keys, since basic auth holds a username/password and oauth2-proxy a token."""
    return [{"name": key, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key, "optional": True}}}
            for key in MLFLOW_CREDENTIAL_KEYS]


@dataclass(frozen=True)
class TrainJobRequest:
    """Everything a TrainJob needs, in the words of a RewardOps user; `config` is the resolved
    training config the pods run (`request_for_size` sets it), so no caller parses `train_args`."""

    name: str
    train_args: Sequence[str]  # arguments after the `rewardops` executable, e.g. ["train", "--config-json", ...]
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
    env: Mapping[str, str] = field(default_factory=dict)  # plain settings every node gets (NCCL_*, lineage)
    s3: S3Credentials | None = None
    mlflow_auth_secret: str | None = None  # Secret with MLflow client credentials (REWARDOPS_MLFLOW_AUTH_SECRET)
    labels: Mapping[str, str] = field(default_factory=dict)
    active_deadline_seconds: int | None = None
    accelerator: Accelerator = field(default_factory=Accelerator)
    config: TrainConfig | None = None

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


def label_value(text: str) -> str:
    """`text` as a Kubernetes label value (<= 63 chars of [A-Za-z0-9-_.], alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")
    return value


def _check(request: TrainJobRequest) -> None:
    problems = []
    if request.framework not in FRAMEWORKS:
        problems.append(f"framework {request.framework!r}: use one of {', '.join(FRAMEWORKS)}")
    if request.num_nodes < 1:
        problems.append(f"num_nodes={request.num_nodes}: a TrainJob needs at least one node")
    if request.gpus_per_node < 0:
        problems.append(f"gpus_per_node={request.gpus_per_node}: cannot be negative")
    try:
        request.accelerator.check()
    except TrainJobConfigError as exc:
        problems.append(str(exc))
    if request.gpus_per_node > request.accelerator.max_per_node:
        problems.append(
            f"gpus_per_node={request.gpus_per_node} is more than one node has ({request.accelerator.max_per_node} "
            f"{request.accelerator.resource}, {GPUS_PER_NODE_ENV} / the chart's gpusPerNode value): lower gpus_per_node "
            f"and raise nodes (size_plan reshapes the catalog's sizes this way)")
    if request.procs_per_node is not None and request.procs_per_node < 1:
        problems.append(f"procs_per_node={request.procs_per_node}: must be at least 1")
    if not request.train_args:
        problems.append("train_args is empty: the trainer container would have nothing to run")
    reserved = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} if request.s3 else set()
    clash = reserved & set(request.env)
    if clash:
        problems.append(f"env sets {sorted(clash)} in plain text; S3 keys come from the Secret {request.s3.secret_name!r}")
    plain_credentials = set(MLFLOW_CREDENTIAL_KEYS) & set(request.env)
    if plain_credentials:
        problems.append(f"env sets {sorted(plain_credentials)} in plain text; MLflow credentials come from a Secret "
                        "(REWARDOPS_MLFLOW_AUTH_SECRET)")
    if problems:
        raise TrainJobConfigError(f"TrainJob {request.name!r}:\n  - " + "\n  - ".join(problems))


def _env(request: TrainJobRequest) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if request.mlflow_tracking_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": request.mlflow_tracking_uri})
    env += [{"name": k, "value": str(v)} for k, v in sorted(request.env.items())]
    if request.s3:
        env += request.s3.env()  # credentials by secretKeyRef: the values never appear in the manifest
    if request.mlflow_auth_secret:
        env += mlflow_credentials_env(request.mlflow_auth_secret)
    return env


def mpi_exports(env: list[dict[str, Any]]) -> list[str]:
    """`-x NAME` for every variable the trainer env sets (values stay where they are: in the launcher's
    environment, from the Secret for credentials) and PATH, so mpirun hands them to every node's ranks."""
    names = [*MPI_EXPORT_ALWAYS, *(e["name"] for e in env)]
    args: list[str] = []
    for name in dict.fromkeys(names):
        args += ["-x", name]
    return args


def _command(request: TrainJobRequest, env: list[dict[str, Any]]) -> list[str]:
    if request.framework == "deepspeed":
        # The deepspeed-distributed runtime writes the hostfile (one line per node, numProcPerNode
        # slots); mpirun starts every rank, and `rewardops train` finds its rank in OMPI_COMM_WORLD_*.
        return ["mpirun", "--hostfile", MPI_HOSTFILE, *mpi_exports(env), "rewardops", *request.train_args]
    # torchrun reads PET_NNODES / PET_NPROC_PER_NODE / PET_NODE_RANK / PET_MASTER_* set by the runtime;
    # every node's container gets the same `env` list, so nothing needs exporting.
    return ["torchrun", "--no-python", "rewardops", *request.train_args]


def _placement_patch(request: TrainJobRequest) -> dict[str, Any]:
    """Tolerations and node selector for every pod that gets the trainer's GPUs (TRAINER_JOBS), as a
    Trainer v2.3 runtime patch. Only GPU jobs get one: a CPU job schedules wherever the runtime says."""
    pod_spec: dict[str, Any] = {"tolerations": request.accelerator.pod_tolerations()}
    if request.accelerator.node_selector:
        pod_spec["nodeSelector"] = dict(request.accelerator.node_selector)
    jobs = [{"name": job, "template": {"spec": {"template": {"spec": copy.deepcopy(pod_spec)}}}}
            for job in TRAINER_JOBS[request.framework]]
    return {"manager": PLACEMENT_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": jobs}}}}


def build_trainjob(request: TrainJobRequest, policy: TrainJobPolicy | None = None) -> dict[str, Any]:
    """The TrainJob manifest for `request`, validated against the Trainer CRD schema and `policy`
    (default: `chart_policy()`, what the chart lets a TrainJob reference)."""
    _check(request)
    procs = request.procs_per_node or max(request.gpus_per_node, 1)
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    if request.gpus_per_node:
        # requests == limits: the scheduler places exactly what the pod may use
        limits[request.accelerator.resource] = requests[request.accelerator.resource] = request.gpus_per_node
    if request.cpu_per_node:
        requests["cpu"] = request.cpu_per_node
    if request.memory_per_node:
        requests["memory"] = limits["memory"] = request.memory_per_node
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests
    env = _env(request)
    trainer: dict[str, Any] = {
        "image": request.image,
        "command": _command(request, env),
        "numNodes": request.num_nodes,
        "numProcPerNode": procs,
        "env": env,
    }
    if resources:
        trainer["resourcesPerNode"] = resources
    spec: dict[str, Any] = {
        "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": request.runtime_ref},
        "trainer": trainer,
    }
    if request.gpus_per_node:
        spec["runtimePatches"] = [_placement_patch(request)]
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
    validate_trainjob(manifest, policy=policy or chart_policy())
    return manifest


def request_for_size(
    size: str,
    *,
    data_uri: str,
    output_uri: str,
    run_id: str = "",
    namespace: str = "default",
    runtime: str | None = None,
    image: str | None = None,
    mlflow_tracking_uri: str | None = None,
    eval_data_uri: str | None = None,
    data_version: str | None = None,
    s3: S3Credentials | None = None,
    overrides: Mapping[str, Any] | None = None,
    profile: str = "final",
    cpu_per_node: str | None = None,
    memory_per_node: str | None = None,
    active_deadline_seconds: int | None = None,
    accelerator: Accelerator | None = None,
    nccl_env: Mapping[str, str] | None = None,
    mlflow_auth_secret: str | None = None,
    variant: str = "",
) -> TrainJobRequest:
    """A TrainJobRequest for catalog size `size`: its nodes, GPUs per node and DeepSpeed choice.

    `overrides` is a mapping of training settings (any `TrainConfig` field; `nodes` and
    `gpus_per_node` also reshape the TrainJob). The config is resolved here, once, and travels to
    every rank as `rewardops train --config-json ...`. The job's name carries the KFP run id and a
    hash of what it trains (config, image, runtime): the launcher re-attaches to a job with the same
    hash instead of training twice; `variant` (e.g. a data-ablation arm, whose training set differs
    while the pipeline's data version does not) is part of that hash. Raises `TrainJobConfigError` for an unknown size, a setting the
    training config rejects (e.g. a global batch the world size does not divide) or a plan larger
    than a node.
    """
    from rewardops.training.config import ConfigError, load_config, validate

    overrides = {**dict(overrides or {}), "data": data_uri, "out": output_uri}
    if eval_data_uri:
        overrides["eval_data"] = eval_data_uri
    try:
        config = load_config(size, overrides, profile=profile)
        # DeepSpeed lives in the training image, not necessarily where the pipeline is submitted.
        probe = dataclasses.replace(config, deepspeed=False, zero_stage=0)
        validate(probe, world_size=config.nodes * max(config.gpus_per_node, 1), check_paths=False)
    except ConfigError as exc:
        raise TrainJobConfigError(f"size {size!r}: {exc}") from exc
    framework = "deepspeed" if config.deepspeed else "torch"
    image = image or training_image()
    runtime_ref = runtime or runtime_name(framework)
    # What the job trains, independent of the run that asks: a rerun on the same data version (or the
    # same data URI when there is none) finds the first run's job by this hash.
    what = config.to_dict()
    if data_version:
        what["data"] = data_version
    if variant:
        what["variant"] = variant
    content = hashlib.sha256(json.dumps({"config": what, "image": image, "runtime": runtime_ref},
                                        sort_keys=True).encode()).hexdigest()[:16]
    name = dns_label("-".join(filter(None, ["rm", size, content[:8], run_id[:8]])))
    config.run_tags = {**config.run_tags, TRAINJOB_TAG: name, **({RUN_ID_TAG: run_id} if run_id else {})}
    env = dict(nccl_env if nccl_env is not None else {k: v for k, v in os.environ.items() if k.startswith("NCCL_")})
    if data_version:
        env["REWARDOPS_DATA_DVC_HASH"] = data_version  # lineage tag of the MLflow run
    if run_id:
        env["REWARDOPS_PIPELINE_RUN_ID"] = run_id
    labels = {SIZE_LABEL: dns_label(size), CONTENT_LABEL: content}
    if run_id:
        labels[RUN_ID_LABEL] = label_value(run_id)
    if data_version:
        labels["rewardops.io/data-version"] = label_value(data_version)
    return TrainJobRequest(
        name=name,
        train_args=["train", "--no-progress", "--config-json", config.to_json()],
        framework=framework,
        runtime=runtime,
        num_nodes=config.nodes,
        gpus_per_node=config.gpus_per_node,
        image=image,
        namespace=namespace,
        cpu_per_node=cpu_per_node,
        memory_per_node=memory_per_node,
        mlflow_tracking_uri=mlflow_tracking_uri,
        env=env,
        s3=s3,
        mlflow_auth_secret=mlflow_auth_secret,
        labels=labels,
        active_deadline_seconds=active_deadline_seconds,
        accelerator=accelerator or Accelerator.from_env(),
        config=config,
    )


def trainjob_for_size(size: str, **kwargs: Any) -> dict[str, Any]:
    """`build_trainjob(request_for_size(size, **kwargs))`."""
    return build_trainjob(request_for_size(size, **kwargs))


def fit_to_node(world: int, gpus_per_node: int, max_per_node: int) -> tuple[int, int]:
    """(nodes, gpus per node) for `world` ranks with at most `max_per_node` GPUs on a node: the
    largest per-node count <= the limit that divides the world, so the world (and the global batch's
    divisibility) stays the same."""
    if gpus_per_node <= max_per_node:
        return world // max(gpus_per_node, 1), gpus_per_node
    per_node = max(d for d in range(1, max_per_node + 1) if world % d == 0)
    return world // per_node, per_node


def size_plan(sizes: Sequence[str] | None = None, demo: bool = False,
              accelerator: Accelerator | None = None) -> list[dict[str, Any]]:
    """`[{size, nodes, gpus_per_node, framework}]` for catalog sizes (default: the eight paper sizes,
    or the demo ladder with `demo=True`): the items a training-suite ParallelFor fans out over. A
    size that wants more GPUs per node than the accelerator settings allow is reshaped to more
    nodes of fewer GPUs (same world size)."""
    from rewardops.training.config import ConfigError, catalog_sizes, load_config

    accelerator = accelerator or Accelerator.from_env()
    known = catalog_sizes()
    chosen = list(sizes) if sizes is not None else [s for s in known if load_config(s).demo == demo]
    unknown = [s for s in chosen if s not in known]
    if unknown:
        raise TrainJobConfigError(f"unknown size(s) {', '.join(unknown)}; the catalog has: {', '.join(known)}")
    plan = []
    for size in chosen:
        try:
            config = load_config(size)
        except ConfigError as exc:
            raise TrainJobConfigError(f"size {size!r}: {exc}") from exc
        world = config.nodes * max(config.gpus_per_node, 1)
        nodes, gpus = (fit_to_node(world, config.gpus_per_node, accelerator.max_per_node) if config.gpus_per_node
                       else (config.nodes, 0))
        plan.append({"size": size, "nodes": nodes, "gpus_per_node": gpus,
                     "framework": "deepspeed" if config.deepspeed else "torch"})
    return plan
