"""Run a TrainJob to the end: attach or create it, wait, stream node-0's logs, report progress.

Uses the official `kubernetes` client (`CustomObjectsApi` for the TrainJob and the runtime,
`CoreV1Api` for the Secret, the nodes, the pods and their logs); training/README.md says why not
the Kubeflow SDK's TrainerClient. Before creating anything it checks that the
ClusterTrainingRuntime exists, that the S3 Secret holds the keys the env references and that some
node offers the accelerator in the asked number, because these failures otherwise surface as pods
stuck in a pending state.

Re-attach: a TrainJob is identified by its content-hash label (what it trains; see
`rewardops.k8s.trainjob.request_for_size`). Before creating, the launcher looks for a job with the
same hash: running -> follow it; succeeded -> reuse it; failed -> delete it and create anew. A 409
on create (another attempt won the race) goes round the same loop. So a KFP retry, a rerun of the
pipeline on the same data, or a restarted launcher pod never trains twice nor fails on
AlreadyExists. A node-0 pod replaced mid-wait is picked up again (its log followed anew).

A job being deleted (Foreground deletion: `metadata.deletionTimestamp` set, the object gettable
until its JobSet and pods are gone) is never followed or reused: one with our name is waited out
and then created anew, others are passed over.

Stuck pods fail the task with the cluster's own words after `stuck_after_s`: a container waiting
in an image or config error, or a pod the scheduler cannot place (`PodScheduled=False`, reason
`Unschedulable`, with the scheduler's message, e.g. "0/3 nodes are available: 2 node(s) had
untolerated taint {nvidia.com/gpu: present}"). Every pod of the job is looked at, not only node 0:
the MPI launcher (node 0) is created only once the `node` pods are ready.

A failed job raises `TrainJobFailed` carrying the job's own reason and message (from
`status.conditions`, copied by Trainer from the JobSet: reason `FailedJobs`, "jobset failed due to
one or more job failures (first failed job: ...)") and the last lines of node-0's log. The trained model's version is found in
MLflow by the TrainJob's run tag (`model_version_for_trainjob`), never read from logs.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from rewardops.k8s.schema import TrainJobPolicy, validate_trainjob
from rewardops.k8s.trainjob import (
    ACCELERATOR_ENV,
    CONTENT_LABEL,
    GPUS_PER_NODE_ENV,
    GROUP,
    LAUNCHER_TOKEN_DIR,
    MLFLOW_AUTH_SECRET_ENV,
    PLURAL,
    S3_SECRET_ENV,
    TRAINJOB_TAG,
    VERSION,
    S3Credentials,
    TrainJobConfigError,
    TrainJobRequest,
    build_trainjob,
    chart_policy,
    confine_output_root,
    request_for_size,
)
from rewardops.errors import ServiceError

if TYPE_CHECKING:
    from rewardops.training.config import TrainConfig

JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
RJOB_NAME_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
JOB_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
NODE_CONTAINER = "node"
# Waiting reasons that do not fix themselves; a pod stuck in one of them fails the task.
STUCK_REASONS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError"}


class CleanupPolicy(str, Enum):
    # the default: keep finished jobs (a succeeded one holds no GPUs and is what a rerun re-attaches
    # to; a failed one stays for `kubectl describe` until a retry replaces it); delete a timed-out one
    KEEP = "keep"
    ON_SUCCESS = "on-success"  # also delete a succeeded job (a rerun then trains again)
    ALWAYS = "always"
    NEVER = "never"  # not even a timed-out job


class TrainJobFailed(ServiceError):
    """The TrainJob failed (or could not start); `reason` is the job's condition reason."""

    def __init__(self, name: str, reason: str, message: str, log_tail: list[str] | None = None):
        self.name, self.reason, self.message = name, reason, message
        self.log_tail = log_tail or []
        text = f"TrainJob {name} failed: {reason}: {message}"
        if self.log_tail:
            text += "\nlast lines of node-0:\n  " + "\n  ".join(self.log_tail)
        super().__init__(text)


class TrainJobTimeout(TrainJobFailed):
    pass


class LaunchReporter(Protocol):
    """Where the launcher tells a person what is happening."""

    def state(self, text: str) -> None: ...

    def progress(self, percent: int | None, eta_seconds: int | None, metrics: dict[str, str]) -> None: ...

    def log(self, line: str) -> None: ...


class PrintReporter:
    """Plain lines on stdout: what KFP shows in a task's log pane."""

    def __init__(self, echo: Callable[[str], None] = print):
        self.echo = echo

    def state(self, text: str) -> None:
        self.echo(f"[trainjob] {text}")

    def progress(self, percent: int | None, eta_seconds: int | None, metrics: dict[str, str]) -> None:
        parts = [f"{percent}%" if percent is not None else "progress unknown"]
        if eta_seconds is not None:
            parts.append(f"eta {eta_seconds}s")
        parts += [f"{k}={v}" for k, v in sorted(metrics.items())]
        self.echo("[trainjob] " + " ".join(parts))

    def log(self, line: str) -> None:
        self.echo(f"[node-0] {line}")


@dataclass
class TrainJobOutcome:
    name: str
    namespace: str
    succeeded: bool
    reason: str
    message: str
    progress: int | None = None
    metrics: dict[str, str] = field(default_factory=dict)
    log_lines: int = 0
    seconds: float = 0.0
    deleted: bool = False
    log_tail: list[str] = field(default_factory=list)
    attached: str = "created"  # created | followed (it was running) | reused (it had succeeded)


def api_client(host: str | None = None, token: str | None = None, verify_ssl: bool = True,
               token_dir: str | os.PathLike[str] | None = None) -> k8s.ApiClient:
    """An ApiClient: explicit `host`; else the launcher's mounted token Secret (`token_dir`, default
    LAUNCHER_TOKEN_DIR: its `token` and `ca.crt`) against the in-cluster API server
    (KUBERNETES_SERVICE_HOST/PORT); else the pod's service account; else ~/.kube/config."""
    if host:
        configuration = k8s.Configuration()
        configuration.host = host
        configuration.verify_ssl = verify_ssl
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return k8s.ApiClient(configuration)
    mounted = Path(token_dir or LAUNCHER_TOKEN_DIR)
    if (mounted / "token").is_file():
        from kubernetes.config.incluster_config import InClusterConfigLoader

        configuration = k8s.Configuration()
        try:
            InClusterConfigLoader(token_filename=str(mounted / "token"), cert_filename=str(mounted / "ca.crt"),
                                  environ=os.environ).load_and_set(configuration)
        except k8s_config.ConfigException as exc:
            raise ServiceError(f"the launcher's token Secret is mounted at {mounted} but the API server cannot be "
                               f"reached with it: {exc}") from None
        return k8s.ApiClient(configuration)
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    return k8s.ApiClient()


def mounted_namespace(token_dir: str | os.PathLike[str] | None = None) -> str | None:
    """The namespace of the launcher's mounted token Secret (its `namespace` file), or None."""
    try:
        return (Path(token_dir or LAUNCHER_TOKEN_DIR) / "namespace").read_text().strip() or None
    except OSError:
        return None


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


class _LogFollower(threading.Thread):
    """Follows one pod's log; reconnects after a dropped stream without repeating lines."""

    def __init__(self, core: k8s.CoreV1Api, namespace: str, pod: str, container: str | None,
                 sink: Callable[[str], None], tail: deque[str], retry_s: float = 1.0):
        super().__init__(daemon=True, name=f"logs-{pod}")
        self.core, self.namespace, self.pod, self.container = core, namespace, pod, container
        self.sink, self.tail, self.retry_s = sink, tail, retry_s
        self.lines = 0
        self.finished = threading.Event()  # the container exited and the stream drained
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            seen = 0
            try:
                stream = watch.Watch().stream(self.core.read_namespaced_pod_log, name=self.pod,
                                              namespace=self.namespace, container=self.container,
                                              follow=True, _request_timeout=(10, None))
                for line in stream:
                    seen += 1
                    if seen > self.lines:  # skip what an earlier connection already delivered
                        self.lines = seen
                        self.tail.append(line)
                        self.sink(line)
                    if self.stop.is_set():
                        return
            except Exception:  # dropped connection: decide below whether to reconnect
                pass
            if self._container_done():
                self.finished.set()
                return
            self.stop.wait(self.retry_s)

    def _container_done(self) -> bool:
        try:
            pod = self.core.read_namespaced_pod(self.pod, self.namespace)
        except ApiException:
            return True
        return pod.status is not None and pod.status.phase in ("Succeeded", "Failed")


def _status_message(exc: ApiException) -> str:
    """The API server's own message from a Status body, else the raw body."""
    try:
        return json.loads(exc.body).get("message") or str(exc.body)
    except (TypeError, ValueError):
        return str(exc.body)


def _terminating(job: dict[str, Any]) -> bool:
    return bool((job.get("metadata") or {}).get("deletionTimestamp"))


class TrainJobLauncher:
    def __init__(self, api: k8s.ApiClient, namespace: str = "default", poll_interval: float = 5.0,
                 policy: TrainJobPolicy | None = None):
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.namespace = namespace
        self.poll_interval = poll_interval
        self.policy = policy or chart_policy()

    # -- preflight ---------------------------------------------------------------------------
    def preflight(self, manifest: dict[str, Any], s3: S3Credentials | None = None) -> list[str]:
        """Fail now, with the fix in the message, for what would otherwise leave pods pending.

        Returns the checks it had to skip because the service account may not read that object
        (HTTP 403), so the caller can say so.
        """
        validate_trainjob(manifest, policy=self.policy)
        name = manifest["metadata"]["name"]
        skipped: list[str] = []
        runtime = manifest["spec"]["runtimeRef"]["name"]
        try:
            self.custom.get_cluster_custom_object(GROUP, VERSION, "clustertrainingruntimes", runtime)
        except ApiException as exc:
            if exc.status == 404:
                raise TrainJobFailed(name, "RuntimeNotFound",
                                     f"ClusterTrainingRuntime {runtime!r} is not installed; install Kubeflow Trainer's "
                                     "runtimes (kubectl get clustertrainingruntimes) or pick another runtime") from exc
            if exc.status != 403:
                raise
            skipped.append(f"ClusterTrainingRuntime {runtime!r} (no permission to read it)")
        if s3 is not None:
            try:
                secret = self.core.read_namespaced_secret(s3.secret_name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    raise TrainJobFailed(name, "SecretNotFound",
                                         f"Secret {s3.secret_name!r} not found in namespace {self.namespace!r}; "
                                         f"create it with keys {', '.join(s3.secret_keys)}") from exc
                if exc.status != 403:
                    raise
                skipped.append(f"Secret {s3.secret_name!r} (no permission to read it)")
            else:
                present = set((secret.data or {}) | (secret.string_data or {}))
                missing = [key for key in s3.secret_keys if key not in present]
                if missing:
                    raise TrainJobFailed(name, "SecretKeyMissing",
                                         f"Secret {s3.secret_name!r} has no key(s) {', '.join(missing)}")
        skipped += self._check_accelerator(manifest)
        return skipped

    def _check_accelerator(self, manifest: dict[str, Any]) -> list[str]:
        """Some node must offer the accelerator resource, in at least the per-node count asked for."""
        name = manifest["metadata"]["name"]
        limits = ((manifest["spec"]["trainer"].get("resourcesPerNode") or {}).get("limits") or {})
        wanted = {k: int(v) for k, v in limits.items() if k not in ("cpu", "memory", "ephemeral-storage") and "/" in k}
        if not wanted:
            return []
        try:
            nodes = self.core.list_node().items
        except ApiException as exc:
            if exc.status != 403:
                raise
            return [f"nodes' {', '.join(wanted)} (no permission to list nodes)"]
        for resource, count in wanted.items():
            offered = [int(float((n.status.allocatable or {}).get(resource, 0))) for n in nodes if n.status]
            if not any(offered):
                others = sorted({k for n in nodes if n.status for k in (n.status.allocatable or {}) if "/" in k})
                raise TrainJobFailed(name, "AcceleratorNotOffered",
                                     f"no node offers {resource!r}; set {ACCELERATOR_ENV} (the chart's accelerator "
                                     f"value) to a resource the nodes have: {', '.join(others) or 'none found'}")
            if max(offered) < count:
                raise TrainJobFailed(name, "PlanLargerThanNode",
                                     f"the plan asks {count} {resource} per node but the largest node offers "
                                     f"{max(offered)}; set gpus_per_node <= {max(offered)} (and more nodes) or "
                                     f"{GPUS_PER_NODE_ENV}={max(offered)}")
        return []

    # -- API calls ---------------------------------------------------------------------------
    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create with `fieldValidation=Strict`: a field the cluster's CRD does not know (an older Trainer)
        is refused (400) instead of being dropped with a warning (the server's default, Warn)."""
        try:
            return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, manifest,
                                                               field_validation="Strict")
        except ApiException as exc:
            name = manifest["metadata"]["name"]
            if exc.status == 409:
                raise TrainJobFailed(name, "AlreadyExists",
                                     f"a TrainJob named {name!r} already exists in {self.namespace!r}; delete it "
                                     "or choose another run name") from exc
            if exc.status in (400, 422):
                raise TrainJobFailed(name, "Invalid", f"the API server rejected the TrainJob ({exc.status}): "
                                     f"{_status_message(exc)}; is the cluster's Kubeflow Trainer older than the "
                                     "v2.3.0 CRD RewardOps builds for?") from exc
            if exc.status == 403:
                raise TrainJobFailed(name, "Forbidden", f"{_status_message(exc)}; the step needs the chart's launcher "
                                     "account's token (mounted by the train_launcher task), and the chart's "
                                     "admission policy admits only "
                                     "its own image, runtimes and client Secrets") from exc
            raise

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def delete(self, name: str) -> bool:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                        body=k8s.V1DeleteOptions(propagation_policy="Foreground"))
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise

    def node0_pod(self, name: str, rjob: str = "node") -> k8s.V1Pod | None:
        """Node 0: the MPI launcher for an mpirun job (rjob="launcher"; created only once the `node`
        pods are ready, whose sshd logs are not the training's), else the `node` job's index 0."""
        selector = f"{JOBSET_NAME_LABEL}={name},{RJOB_NAME_LABEL}={rjob},{JOB_INDEX_LABEL}=0"
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
        if pods:
            return max(pods, key=lambda p: p.metadata.creation_timestamp or 0)  # newest after a restart
        return None

    # -- re-attach ------------------------------------------------------------------------------
    def find_same(self, manifest: dict[str, Any]) -> list[dict[str, Any]]:
        """TrainJobs in this namespace that train the same thing (same content hash), newest first."""
        content = manifest["metadata"].get("labels", {}).get(CONTENT_LABEL)
        if not content:
            try:
                return [self.get(manifest["metadata"]["name"])]
            except ApiException as exc:
                if exc.status == 404:
                    return []
                raise
        listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL,
                                                           label_selector=f"{CONTENT_LABEL}={content}")
        items = listed.get("items") or []
        return sorted(items, key=lambda j: j["metadata"].get("creationTimestamp") or "", reverse=True)

    def _wait_gone(self, name: str, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                self.get(name)
            except ApiException as exc:
                if exc.status == 404:
                    return
                raise
            time.sleep(self.poll_interval)
        raise TrainJobFailed(name, "DeleteTimeout", f"TrainJob {name!r} was still being deleted after {timeout_s:.0f}s "
                             f"(kubectl describe trainjob -n {self.namespace} {name} shows what holds it)")

    def attach_or_create(self, manifest: dict[str, Any], reporter: LaunchReporter, attempts: int = 5) -> tuple[str, str]:
        """(name, how): how is created, followed (it was running) or reused (it had succeeded)."""
        name = manifest["metadata"]["name"]
        for _ in range(attempts):
            for job in self.find_same(manifest):
                other = job["metadata"]["name"]
                if _terminating(job):  # being deleted: its pods are going away, never follow or reuse it
                    if other == name:
                        reporter.state(f"TrainJob {other} is being deleted: waiting until it is gone")
                        self._wait_gone(other)
                    continue
                if _condition(job, "Complete"):
                    reporter.state(f"TrainJob {other} already trained this (same content hash): reusing it")
                    return other, "reused"
                if _condition(job, "Failed"):
                    reporter.state(f"TrainJob {other} failed earlier: deleting it and starting again")
                    self.delete(other)
                    if other == name:
                        self._wait_gone(other)
                    continue
                reporter.state(f"TrainJob {other} is already running this: following it")
                return other, "followed"
            try:
                self.create(manifest)
            except TrainJobFailed as exc:
                if exc.reason == "AlreadyExists":  # created meanwhile (a concurrent attempt): look again
                    reporter.state(f"TrainJob {name} was created meanwhile (409): re-attaching")
                    continue
                raise
            return name, "created"
        raise TrainJobFailed(name, "AlreadyExists", f"could not create or attach to {name!r} after {attempts} attempts")

    # -- the whole run -------------------------------------------------------------------------
    def run(
        self,
        manifest: dict[str, Any],
        *,
        reporter: LaunchReporter | None = None,
        timeout_s: float = 7 * 24 * 3600,
        cleanup: CleanupPolicy | str = CleanupPolicy.KEEP,
        s3: S3Credentials | None = None,
        stuck_after_s: float = 600.0,
        log_tail_lines: int = 60,
    ) -> TrainJobOutcome:
        reporter = reporter or PrintReporter()
        cleanup = CleanupPolicy(cleanup)
        runtime = manifest["spec"]["runtimeRef"]["name"]
        for skipped in self.preflight(manifest, s3):
            reporter.state(f"preflight skipped: {skipped}")
        name, attached = self.attach_or_create(manifest, reporter)
        if attached == "created":
            reporter.state(f"created TrainJob {self.namespace}/{name} (runtime {runtime})")
        start = time.monotonic()
        tail: deque[str] = deque(maxlen=log_tail_lines)
        follower: _LogFollower | None = None
        followed: set[str] = set()  # node-0 pods whose log was read to the end
        lines = [0]

        def sink(line: str) -> None:
            lines[0] += 1
            reporter.log(line)
        last_progress: tuple | None = None
        stuck_since: float | None = None
        outcome: TrainJobOutcome | None = None
        stuck_seen: str | None = None
        node0_job = "launcher" if (manifest["spec"]["trainer"].get("command") or [""])[0] == "mpirun" else "node"
        try:
            while True:
                job = self._get_running(name)
                trainer_status = (job.get("status") or {}).get("trainerStatus") or {}
                progress = (trainer_status.get("progressPercentage"), trainer_status.get("estimatedRemainingSeconds"),
                            {m["name"]: m["value"] for m in trainer_status.get("metrics") or []})
                if trainer_status and progress != last_progress:
                    reporter.progress(*progress)
                    last_progress = progress
                done, failed = _condition(job, "Complete"), _condition(job, "Failed")
                if follower is not None and follower.finished.is_set() and not (done or failed):
                    # node-0's container exited while the job goes on: a restart (find its successor) or
                    # the controller not having written the condition yet (never follow the same pod twice)
                    followed.add(follower.pod)
                    follower = None
                if attached != "reused" and not (done or failed):
                    stuck = self._stuck_pod(name)
                    if stuck:
                        stuck_since = stuck_since or time.monotonic()
                        if stuck != stuck_seen:
                            reporter.state(stuck)
                            stuck_seen = stuck
                        if time.monotonic() - stuck_since > stuck_after_s:
                            raise TrainJobFailed(name, "PodStuck", stuck)
                    else:
                        stuck_since = stuck_seen = None
                if follower is None and attached != "reused":
                    pod = self.node0_pod(name, node0_job)
                    if pod is not None and pod.metadata.name not in followed:
                        if pod.status and pod.status.phase in ("Running", "Succeeded", "Failed"):
                            follower = _LogFollower(self.core, self.namespace, pod.metadata.name,
                                                    self._container(pod), sink, tail,
                                                    retry_s=min(1.0, self.poll_interval))
                            follower.start()
                            reporter.state(f"streaming logs of {pod.metadata.name}")
                if done or failed:
                    self._drain(follower)
                    cond = done or failed
                    outcome = TrainJobOutcome(
                        name=name, namespace=self.namespace, succeeded=bool(done),
                        reason=cond.get("reason", ""), message=cond.get("message", ""),
                        progress=progress[0], metrics=progress[2],
                        log_lines=lines[0], seconds=time.monotonic() - start,
                        log_tail=list(tail), attached=attached)
                    break
                if time.monotonic() - start > timeout_s:
                    raise TrainJobTimeout(name, "Timeout", f"not finished after {timeout_s:.0f}s", list(tail))
                time.sleep(self.poll_interval)
        except TrainJobFailed as exc:
            exc.log_tail = exc.log_tail or list(tail)
            if follower:
                follower.stop.set()
            # A timed-out job would keep its GPUs after the task gave up on it: delete it unless told not to.
            if cleanup is CleanupPolicy.ALWAYS or (isinstance(exc, TrainJobTimeout) and cleanup is not CleanupPolicy.NEVER):
                self.delete(name)
            raise
        outcome.deleted = self._cleanup(name, cleanup, outcome.succeeded)
        if not outcome.succeeded:
            raise TrainJobFailed(name, outcome.reason or "Failed", outcome.message, list(tail))
        reporter.state(f"TrainJob {name} complete: {outcome.reason} {outcome.message}".rstrip())
        return outcome

    def _cleanup(self, name: str, policy: CleanupPolicy, succeeded: bool) -> bool:
        if policy is CleanupPolicy.ALWAYS or (policy is CleanupPolicy.ON_SUCCESS and succeeded):
            return self.delete(name)
        return False

    def _drain(self, follower: _LogFollower | None, seconds: float = 30.0) -> None:
        """Let the log stream deliver what the container printed before it exited."""
        if follower is None:
            return
        follower.finished.wait(seconds)
        follower.stop.set()
        follower.join(timeout=5)

    @staticmethod
    def _container(pod: k8s.V1Pod) -> str | None:
        names = [c.name for c in (pod.spec.containers if pod.spec else [])]
        if NODE_CONTAINER in names:
            return NODE_CONTAINER
        return names[0] if names else None

    def _get_running(self, name: str) -> dict[str, Any]:
        """The job, or TrainJobFailed when someone deleted it while we waited (never a raw 404)."""
        try:
            return self.get(name)
        except ApiException as exc:
            if exc.status == 404:
                raise TrainJobFailed(name, "Deleted", f"TrainJob {name!r} was deleted while the step waited for it "
                                     "(kubectl delete, or another run's cleanup); retry the step") from exc
            raise

    def _stuck_pod(self, name: str) -> str | None:
        """'pod NAME: REASON: message' for the first pod of the job that cannot go on by itself."""
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{JOBSET_NAME_LABEL}={name}").items
        for pod in sorted(pods, key=lambda p: p.metadata.name):
            stuck = self._stuck_reason(pod)
            if stuck:
                return f"pod {pod.metadata.name}: {stuck}"
        return None

    @staticmethod
    def _stuck_reason(pod: k8s.V1Pod) -> str | None:
        for status in (pod.status.container_statuses or []) if pod.status else []:
            waiting = status.state.waiting if status.state else None
            if waiting and waiting.reason in STUCK_REASONS:
                return f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
        for cond in (pod.status.conditions or []) if pod.status else []:
            # kube-scheduler's verdict: PodScheduled=False, reason Unschedulable, message names why
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                return f"Unschedulable: {cond.message or ''}".rstrip(": ")
        return None


@dataclass
class SizeLaunch:
    """What `launch_size` did: the TrainJob's outcome and where the trained model is."""

    request: TrainJobRequest
    outcome: TrainJobOutcome
    output_uri: str
    mlflow_run_id: str = ""
    version: int = 0

    @property
    def config(self) -> TrainConfig:
        assert self.request.config is not None  # request_for_size always sets it
        return self.request.config

    @property
    def model_uri(self) -> str:
        return f"models:/{self.config.model_name}/{self.version}" if self.version else ""

    def pointer(self) -> dict[str, Any]:
        """The Model artifact's `model.json`: where the weights and the registered version are."""
        return {"output_uri": self.output_uri, "trainjob": self.outcome.name, "namespace": self.outcome.namespace,
                "attached": self.outcome.attached, "mlflow_run_id": self.mlflow_run_id, "model_uri": self.model_uri}

    def metadata(self) -> dict[str, Any]:
        request = self.request
        return {"trainjob": self.outcome.name, "namespace": self.outcome.namespace, "nodes": request.num_nodes,
                "gpus_per_node": request.gpus_per_node,
                "world_size": request.num_nodes * max(request.gpus_per_node, 1), "output_uri": self.output_uri,
                "model_uri": self.model_uri, "registered_model": self.config.model_name,
                "registered_version": self.version, "mlflow_run_id": self.mlflow_run_id,
                "attached": self.outcome.attached}

    def metric_values(self) -> dict[str, float]:
        values = {"seconds": self.outcome.seconds, "progress": float(self.outcome.progress or 0),
                  "log_lines": float(self.outcome.log_lines)}
        for name, value in self.outcome.metrics.items():
            try:
                values[name] = float(value)
            except ValueError:
                pass
        return values


def version_tag(data_version: str) -> str:
    """A short, path- and name-safe tag of a data version: "dvc:3f2a9c0d1e.dir" -> "3f2a9c0d1e"."""
    return re.sub(r"[^a-z0-9]", "", data_version.split(":")[-1].lower().removesuffix(".dir"))[:12] or "data"


def launch_size(
    size: str,
    *,
    data_uri: str,
    data_version: str,
    output_root: str,
    overrides: Mapping[str, Any] | None = None,
    nodes: int = 0,
    gpus_per_node: int = -1,
    profile: str = "final",
    run_id: str = "",
    namespace: str = "",
    cleanup: CleanupPolicy | str = CleanupPolicy.KEEP,
    timeout_hours: float = 168.0,
    reporter: LaunchReporter | None = None,
    env: Mapping[str, str] | None = None,
    ablation_arm: str = "",
) -> SizeLaunch:
    """Train catalog size `size` as a TrainJob on this cluster and find its registered model.

    `overrides` are TrainConfig settings; `nodes` > 0 / `gpus_per_node` >= 0 reshape the job (the
    suite's plan). The model goes to `<output_root>/<size>/<version tag>`. Namespace, S3 Secret,
    runtimes, accelerator and MLflow come from `env` (default: os.environ, which the chart's client
    ConfigMap fills); `output_root` must lie under its storage root (`confine_output_root`) when the
    chart sets one. `ablation_arm`: one arm of the data ablation (its own job, output folder and
    registered model `rewardops-ablation-<size>`, never a version of the size's model). Every bad
    input raises `TrainJobConfigError` before any request is sent."""
    from rewardops.training.config import refuse_cluster_settings

    refuse_cluster_settings(overrides)  # endpoints are the cluster's, refused before any request
    env = os.environ if env is None else env
    output_root = confine_output_root(output_root, env)  # the cluster's storage root, before any write
    overrides = dict(overrides or {})
    variant = f"ablation-{ablation_arm}" if ablation_arm else ""
    if ablation_arm:  # set here, after the refusal: a registry name is never a pipeline parameter
        from rewardops.naming import ablation_model_name

        overrides["register_name"] = ablation_model_name(size)
    if nodes > 0:
        overrides["nodes"] = nodes
    if gpus_per_node >= 0:
        overrides["gpus_per_node"] = gpus_per_node
    output_uri = f"{output_root.rstrip('/')}/{size}/{version_tag(data_version)}" + (f"-{variant}" if variant else "")
    secret = env.get(S3_SECRET_ENV)
    s3 = S3Credentials(secret, endpoint_url=env.get("AWS_ENDPOINT_URL"), region=env.get("AWS_DEFAULT_REGION")) \
        if secret else None
    ns = namespace or env.get("REWARDOPS_TRAINJOB_NAMESPACE") or mounted_namespace() or "default"
    tracking_uri = env.get("MLFLOW_TRACKING_URI")
    if not tracking_uri and overrides.get("mlflow", True):
        raise TrainJobConfigError(
            "MLFLOW_TRACKING_URI is not set for this step: the TrainJob's pods would log to a file inside the pod "
            "and the model version could not be found. Set mlflow in the Helm chart (its client ConfigMap carries "
            "the URI) or pass overrides {\"mlflow\": false}")
    request = request_for_size(size, data_uri=data_uri, output_uri=output_uri, namespace=ns, s3=s3, run_id=run_id,
                               data_version=data_version, mlflow_tracking_uri=tracking_uri, overrides=overrides,
                               profile=profile, mlflow_auth_secret=env.get(MLFLOW_AUTH_SECRET_ENV), variant=variant)
    manifest = build_trainjob(request)  # every bad input fails above, before any request
    launcher = TrainJobLauncher(api_client(), namespace=ns, poll_interval=float(env.get("REWARDOPS_LAUNCHER_POLL_S", "15")))
    outcome = launcher.run(manifest, reporter=reporter or PrintReporter(), s3=s3, cleanup=cleanup,
                           timeout_s=timeout_hours * 3600)
    launch = SizeLaunch(request, outcome, output_uri)
    config = launch.config
    # The weights stay in object storage; the registered version is looked up in MLflow by the job's tag.
    found = model_version_for_trainjob(outcome.name, config.model_name, tracking_uri, config.experiment) \
        if config.mlflow else None
    if found:
        launch.mlflow_run_id, launch.version = found
    else:
        (reporter or PrintReporter()).state(f"no registered MLflow version of {config.model_name} for TrainJob "
                                            f"{outcome.name}")
    return launch


def model_version_for_trainjob(trainjob: str, model_name: str, tracking_uri: str | None = None,
                               experiment: str = "rewardops-training") -> tuple[str, int] | None:
    """(MLflow run id, registered version of `model_name`) of the finished run the TrainJob `trainjob`
    logged (found by its `rewardops.trainjob` tag), or None when there is none yet."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{TRAINJOB_TAG}` = '{trainjob}'",
                              order_by=["attributes.start_time DESC"], max_results=20)
    for run in runs:
        versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run.info.run_id}'")
        if versions:
            return run.info.run_id, max(int(v.version) for v in versions)
    return None

