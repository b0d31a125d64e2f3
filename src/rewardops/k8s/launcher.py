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

A failed job raises `TrainJobFailed` carrying the job's own reason and message (from
`status.conditions`) and the last lines of node-0's log. The trained model's version is found in
MLflow by the TrainJob's run tag (`model_version_for_trainjob`), never read from logs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from rewardops.k8s.schema import validate_trainjob
from rewardops.k8s.trainjob import (
    ACCELERATOR_ENV,
    CONTENT_LABEL,
    GPUS_PER_NODE_ENV,
    GROUP,
    PLURAL,
    TRAINJOB_TAG,
    VERSION,
    S3Credentials,
)
from rewardops.errors import ServiceError

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


def api_client(host: str | None = None, token: str | None = None, verify_ssl: bool = True) -> k8s.ApiClient:
    """An ApiClient: explicit `host`, else in-cluster service account, else ~/.kube/config."""
    if host:
        configuration = k8s.Configuration()
        configuration.host = host
        configuration.verify_ssl = verify_ssl
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}
        return k8s.ApiClient(configuration)
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    return k8s.ApiClient()


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


class TrainJobLauncher:
    def __init__(self, api: k8s.ApiClient, namespace: str = "default", poll_interval: float = 5.0):
        self.custom = k8s.CustomObjectsApi(api)
        self.core = k8s.CoreV1Api(api)
        self.namespace = namespace
        self.poll_interval = poll_interval

    # -- preflight ---------------------------------------------------------------------------
    def preflight(self, manifest: dict[str, Any], s3: S3Credentials | None = None) -> list[str]:
        """Fail now, with the fix in the message, for what would otherwise leave pods pending.

        Returns the checks it had to skip because the service account may not read that object
        (HTTP 403), so the caller can say so.
        """
        validate_trainjob(manifest)
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
        try:
            return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, manifest)
        except ApiException as exc:
            name = manifest["metadata"]["name"]
            if exc.status == 409:
                raise TrainJobFailed(name, "AlreadyExists",
                                     f"a TrainJob named {name!r} already exists in {self.namespace!r}; delete it "
                                     "or choose another run name") from exc
            if exc.status == 422:
                raise TrainJobFailed(name, "Invalid", f"the API server rejected the TrainJob: {exc.body}") from exc
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

    def node0_pod(self, name: str) -> k8s.V1Pod | None:
        """Node 0: the MPI launcher when the runtime has one (it runs mpirun), else the `node` job's index 0."""
        for rjob in ("launcher", "node"):
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
        raise TrainJobFailed(name, "DeleteTimeout", f"the failed TrainJob {name!r} was not gone after {timeout_s:.0f}s; "
                             f"kubectl delete trainjob -n {self.namespace} {name}")

    def attach_or_create(self, manifest: dict[str, Any], reporter: LaunchReporter, attempts: int = 5) -> tuple[str, str]:
        """(name, how): how is created, followed (it was running) or reused (it had succeeded)."""
        name = manifest["metadata"]["name"]
        for _ in range(attempts):
            for job in self.find_same(manifest):
                other = job["metadata"]["name"]
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
        last_progress: tuple | None = None
        stuck_since: float | None = None
        outcome: TrainJobOutcome | None = None
        try:
            while True:
                job = self.get(name)
                trainer_status = (job.get("status") or {}).get("trainerStatus") or {}
                progress = (trainer_status.get("progressPercentage"), trainer_status.get("estimatedRemainingSeconds"),
                            {m["name"]: m["value"] for m in trainer_status.get("metrics") or []})
                if trainer_status and progress != last_progress:
                    reporter.progress(*progress)
                    last_progress = progress
                done, failed = _condition(job, "Complete"), _condition(job, "Failed")
                if follower is not None and follower.finished.is_set() and not (done or failed):
                    follower = None  # node-0's pod ended while the job goes on (restarted): find its successor
                if follower is None and attached != "reused":
                    pod = self.node0_pod(name)
                    if pod is not None:
                        stuck = self._stuck_reason(pod)
                        if stuck:
                            stuck_since = stuck_since or time.monotonic()
                            reporter.state(f"node-0 pod {pod.metadata.name}: {stuck}")
                            if time.monotonic() - stuck_since > stuck_after_s:
                                raise TrainJobFailed(name, "PodStuck", f"node-0 pod {pod.metadata.name}: {stuck}")
                        elif pod.status and pod.status.phase in ("Running", "Succeeded", "Failed"):
                            stuck_since = None
                            follower = _LogFollower(self.core, self.namespace, pod.metadata.name,
                                                    self._container(pod), reporter.log, tail,
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
                        log_lines=follower.lines if follower else 0, seconds=time.monotonic() - start,
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

    @staticmethod
    def _stuck_reason(pod: k8s.V1Pod) -> str | None:
        for status in (pod.status.container_statuses or []) if pod.status else []:
            waiting = status.state.waiting if status.state else None
            if waiting and waiting.reason in STUCK_REASONS:
                return f"{waiting.reason}: {waiting.message or ''}".rstrip(": ")
        return None


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

