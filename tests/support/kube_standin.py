"""`KubeStandIn`: the Kubernetes API paths the TrainJob launcher uses, behaving as the real servers do.

No Kubernetes API server (nor Trainer, JobSet or kube-scheduler) can run on this machine, so this is
a loopback HTTP server (tests/support/loopback.py) that the real `kubernetes` client talks to. Every
request it receives and every answer it gives is checked against the vendored Kubernetes 1.30
OpenAPI and the Trainer v2.3.0 CRDs (tests/support/contracts.py); a mismatch fails the test.

What it serves, and the upstream behaviour it copies (sources in tests/support/upstream/README.md):
- TrainJobs: create (`fieldValidation`: Warn by default drops unknown fields with a `Warning`
  header, Strict answers 400, Ignore drops silently; schema errors 422; a taken name 409), list by
  label selector, get, delete (Foreground: `deletionTimestamp` + the `foregroundDeletion`
  finalizer, 200 with the object, gettable for `terminating_reads` more reads while the JobSet and
  pods go; Background: gone at once).
- Statuses: a scenario (one per GET of the job) of statuses as Trainer v2.3.0 writes them: no
  status at first, `jobsStatus`, `trainerStatus`, and the JobSet's `Complete` / `Failed` condition
  copied unchanged (`COMPLETE`, `failed_jobs`). Every status is checked against the CRD.
- Pods, as JobSet makes them from the TrainJob and its runtime: torch runtimes one `node` pod per
  node; MPI (DeepSpeed) runtimes `numNodes - 1` `node` pods plus the `launcher` (node 0, created
  only once the `node` pods are running: the runtime's dependsOn Ready). Trainer gives every
  training pod the trainer's `resourcesPerNode`; each pod takes tolerations / nodeSelector from
  the job's runtime patch for its replicated job. The pods are scheduled against the `nodes`
  (allocatable, labels, taints) as kube-scheduler would: an unplaceable pod stays Pending with
  `PodScheduled=False`, reason `Unschedulable` and the scheduler's message.
- Logs: `follow=true` streams node 0's lines and holds the connection until the container exits
  (the job finished, the pod was replaced or the job deleted).
- ClusterTrainingRuntimes (get), Secrets (get), nodes (list).
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.contracts import KUBERNETES
from support.loopback import LoopbackServer, Request, Response, ServedStandIn

from rewardops.k8s.schema import load_openapi_schema, validate_trainjob_status

NS = "team-rm"
NOW = "2026-11-26T05:00:00Z"
TRAINJOBS = ["apis", "trainer.kubeflow.org", "v1alpha1", "namespaces", NS, "trainjobs"]
RUNTIMES = ["apis", "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes"]
MPI_RUNTIMES = ("deepspeed-distributed", "rewardops-deepspeed")  # runtimes with an MPI launcher (node 0) beside the `node` job
JOBSET_LABEL = "jobset.sigs.k8s.io/jobset-name"
RJOB_LABEL = "jobset.sigs.k8s.io/replicatedjob-name"
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


def cond(kind: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": NOW}


def jobs(active: int = 0, succeeded: int = 0, failed: int = 0) -> list[dict[str, Any]]:
    return [{"name": "node", "active": active, "ready": active, "succeeded": succeeded, "failed": failed, "suspended": 0}]


# The JobSet's conditions, which Trainer v2.3.0 copies into the TrainJob unchanged (jobset
# pkg/constants/constants.go; trainer pkg/runtime/framework/plugins/jobset/jobset.go, Status).
COMPLETE = cond("Complete", "AllJobsCompleted", "jobset completed successfully")


def failed_jobs(first_failed_job: str = "{name}-node-0") -> dict[str, str]:
    """`Failed`, reason FailedJobs; the JobSet controller names the first failed Job ({name}: the job's name)."""
    return cond("Failed", "FailedJobs", f"jobset failed due to one or more job failures (first failed job: {first_failed_job})")


SUCCESS = [
    None,  # just created: the controller has not written a status yet
    {"jobsStatus": jobs(1)},
    {"jobsStatus": jobs(1), "trainerStatus": {"progressPercentage": 40, "estimatedRemainingSeconds": 90,
                                              "metrics": [{"name": "loss", "value": "0.61"}], "lastUpdatedTime": NOW}},
    {"jobsStatus": jobs(succeeded=1), "conditions": [COMPLETE],
     "trainerStatus": {"progressPercentage": 100, "estimatedRemainingSeconds": 0,
                       "metrics": [{"name": "loss", "value": "0.42"}], "lastUpdatedTime": NOW}},
]
FAILURE = [
    None,
    {"jobsStatus": jobs(1), "trainerStatus": {"progressPercentage": 10, "lastUpdatedTime": NOW}},
    {"jobsStatus": jobs(failed=1), "conditions": [failed_jobs()]},
]
LOG = ["[rank0] loading data s3://bucket/data", "[rank0] step 1 loss 0.69", "[rank0] step 2 loss 0.61",
       '{"steps": 2, "world_size": 16}']
OOM_LOG = ["[rank0] step 1 loss 0.69", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"]
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig pointing the `kubernetes` client at `server`, as a pod's in-cluster config would."""
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "standin",
        "clusters": [{"name": "standin", "cluster": {"server": server}}],
        "users": [{"name": "standin", "user": {"token": "test"}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin", "namespace": NS}}],
    }))
    return path


def _prune(schema: dict[str, Any], value: Any, path: str, unknown: list[str]) -> Any:
    """`value` without the fields `schema` does not declare (the API server's pruning); their paths in `unknown`."""
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields") or "properties" not in schema:
            extra = schema.get("additionalProperties")
            return {k: _prune(extra, v, f"{path}.{k}", unknown) for k, v in value.items()} \
                if isinstance(extra, dict) else value
        kept = {}
        for key, sub in value.items():
            if key in schema["properties"]:
                kept[key] = _prune(schema["properties"][key], sub, f"{path}.{key}".lstrip("."), unknown)
            elif not (path == "" and key in ("apiVersion", "kind", "metadata")):
                unknown.append(f"{path}.{key}".lstrip("."))
        return kept
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_prune(schema["items"], item, f"{path}[{i}]", unknown) for i, item in enumerate(value)]
    return value


def _labels_match(selector: str | None, labels: dict[str, str]) -> bool:
    wanted = dict(kv.split("=", 1) for kv in (selector or "").split(",") if kv)
    return all(labels.get(k) == v for k, v in wanted.items())


class KubeStandIn(ServedStandIn):
    """Loopback stand-in for the Kubernetes API paths the launcher uses (see the module docstring).

    `statuses`: the statuses a created TrainJob goes through (one per GET); `later`: the sequence for
    jobs created after the first (a replacement). `nodes`: the cluster's nodes, each a dict of
    allocatable resources or {"allocatable": ..., "labels": ..., "taints": [...]}. `restart_after`
    replaces node 0's pod (new name, the old one gone) after that many GETs. `hide_once` hides existing
    jobs from the first list call (another attempt creates the job between our look and our create).
    `forbidden`: path prefixes answered 403, as for a service account without RBAC. `on_create`: called
    with each created TrainJob (what its pods would do, e.g. log to MLflow). `terminating_reads`: how
    many more reads a Foreground-deleted job stays visible. `token`: every request must carry
    `Authorization: Bearer <token>` (else 401 Unauthorized, as the API server answers an unknown
    or missing credential); `tls`: served over HTTPS with that context."""

    def __init__(self, statuses: list[dict | None], log: list[str], runtimes=("deepspeed-distributed", "torch-distributed"),
                 secrets: dict[str, dict[str, str]] | None = None, waiting_reason: str | None = None,
                 forbidden: tuple[str, ...] = (), later: list[dict | None] | None = None,
                 nodes: list[dict[str, Any]] | None = None, restart_after: int | None = None, hide_once: bool = False,
                 on_create: Any = None, terminating_reads: int = 2, token: str | None = None, tls: Any = None):
        for status in [*statuses, *(later or [])]:
            if status is not None:
                assert validate_trainjob_status(self._named(status, "probe")) == [], status  # keep the scenario CRD-valid
        self.statuses, self.later, self.log, self.runtimes = statuses, later or statuses, log, set(runtimes)
        self.secrets = secrets if secrets is not None else {
            "rewardops-s3": {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": "minio123"}}
        self.waiting_reason = waiting_reason
        self.forbidden = forbidden
        self.nodes = [n if "allocatable" in n else {"allocatable": n} for n in
                      (nodes if nodes is not None else [{"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"}])]
        self.restart_after, self.hide_once = restart_after, hide_once
        self.on_create = on_create
        self.terminating_reads = terminating_reads
        self.jobs: dict[str, dict[str, Any]] = {}
        self.scenario: dict[str, list[dict | None]] = {}
        self.gets: dict[str, int] = {}
        self.deleting: dict[str, int] = {}  # name -> reads left while Foreground deletion runs
        self.deleted: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.pod_logs_served: list[str] = []
        self.warnings: list[str] = []
        self.lock = threading.RLock()
        self.closing = threading.Event()
        self.schema = load_openapi_schema()
        self.token = token
        self.unauthorized: list[str] = []  # paths refused for a wrong or missing bearer token
        self.server = LoopbackServer(self.handle, "kubernetes API stand-in", contract=self.contract, tls=tls)

    @staticmethod
    def contract(req: Request, resp: Response) -> list[str]:
        problems = KUBERNETES.request_errors(req.method, req.path, req.query, req.body)
        return problems + KUBERNETES.response_errors(req.method, req.path, resp.status, resp.content_type, resp.body)

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.server.__exit__(*exc)

    # -- state --------------------------------------------------------------------------------
    @staticmethod
    def _named(status: dict | None, name: str) -> dict | None:
        return None if status is None else json.loads(json.dumps(status).replace("{name}", name))

    def status_of(self, name: str) -> dict | None:
        i = self.gets.get(name, 0)
        if self.restart_after is not None and not any(p.endswith("-0-1-abcde") for p in self.pod_logs_served):
            i = min(i, self.restart_after + 1)  # the job runs on until the restarted pod's log was read
        statuses = self.scenario[name]
        return self._named(statuses[min(i, len(statuses) - 1)], name)

    def finished(self, name: str) -> bool:
        status = self.status_of(name) or {}
        return any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in status.get("conditions", []))

    def with_status(self, name: str) -> dict[str, Any]:
        obj = copy.deepcopy(self.jobs[name])
        status = self.status_of(name)
        if status is not None:
            obj["status"] = status
        return obj

    def _read(self, name: str) -> None:
        """A read of a job being deleted brings its removal closer (its JobSet and pods going)."""
        if name in self.deleting:
            self.deleting[name] -= 1
            if self.deleting[name] < 0:
                del self.deleting[name], self.jobs[name]

    def generation(self, name: str) -> int:
        return int(self.restart_after is not None and self.gets.get(name, 0) >= self.restart_after)

    def pods(self, name: str) -> list[dict[str, Any]]:
        """The job's pods as JobSet would make them, scheduled against the nodes (see the module docstring)."""
        job = self.jobs[name]
        trainer = job["spec"]["trainer"]
        mpi = job["spec"]["runtimeRef"]["name"] in MPI_RUNTIMES
        num_nodes = trainer.get("numNodes", 1)
        placement = {}
        for patch in job["spec"].get("runtimePatches", []):
            for rjob in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
                placement[rjob["name"]] = rjob["template"]["spec"]["template"]["spec"]
        wanted = [("node", i) for i in range(max(num_nodes - 1, 1) if mpi else num_nodes)]
        gen = self.generation(name)
        pods = [self._pod(name, job, rjob, i, gen, placement.get(rjob, {})) for rjob, i in wanted]
        if mpi and all(p["status"]["phase"] != "Pending" for p in pods):  # dependsOn: node Ready
            pods.append(self._pod(name, job, "launcher", 0, gen, placement.get("launcher", {})))
        return pods

    def _pod(self, name: str, job: dict[str, Any], rjob: str, index: int, gen: int, place: dict[str, Any]) -> dict[str, Any]:
        trainer = job["spec"]["trainer"]
        # the API server renders every quantity as a string
        resources = {kind: {k: str(v) for k, v in values.items()}
                     for kind, values in (trainer.get("resourcesPerNode") or {}).items()}
        pod_name = f"{name}-{rjob}-0-{gen}-abcde" if index == 0 else f"{name}-{rjob}-0-{gen}-i{index}"
        phase, state = "Running", {"running": {"startedAt": NOW}}
        conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": NOW}]
        unschedulable = self._schedule(resources.get("requests") or resources.get("limits") or {}, place)
        if unschedulable:
            phase, state = "Pending", None
            conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": unschedulable, "lastTransitionTime": NOW}]
        elif self.waiting_reason:
            phase, state = "Pending", {"waiting": {"reason": self.waiting_reason, "message": "back-off pulling image"}}
        elif self.finished(name):
            failed = any(c["type"] == "Failed" for c in self.status_of(name)["conditions"])
            phase = "Failed" if failed else "Succeeded"
            state = {"terminated": {"exitCode": int(failed), "startedAt": NOW, "finishedAt": NOW}}
        status: dict[str, Any] = {"phase": phase, "conditions": conditions}
        if state is not None:
            status["containerStatuses"] = [{"name": "node", "image": trainer["image"], "imageID": "",
                                            "ready": phase == "Running", "restartCount": gen, "state": state}]
        spec: dict[str, Any] = {"containers": [{"name": "node", "image": trainer["image"],
                                                **({"resources": resources} if resources else {})}]}
        spec.update({k: v for k, v in place.items() if k in ("tolerations", "nodeSelector")})
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": NS, "creationTimestamp": f"2026-11-26T05:0{gen}:00Z",
                         "labels": {JOBSET_LABEL: name, RJOB_LABEL: rjob, INDEX_LABEL: str(index)}},
            "spec": spec, "status": status,
        }

    def _schedule(self, requests: dict[str, Any], place: dict[str, Any]) -> str | None:
        """None when some node fits the pod, else kube-scheduler's FitError message."""
        reasons: dict[str, int] = {}
        tolerations = place.get("tolerations") or []
        for node in self.nodes:
            untolerated = [t for t in node.get("taints", []) if t["effect"] in ("NoSchedule", "NoExecute") and not any(
                tol.get("key") in (None, t["key"]) and (tol.get("operator") == "Exists" or tol.get("value") == t.get("value"))
                and tol.get("effect") in (None, "", t["effect"]) for tol in tolerations)]
            short = [k for k, v in requests.items() if "/" in k and int(float(node["allocatable"].get(k, 0))) < int(v)]
            if any(node.get("labels", {}).get(k) != v for k, v in (place.get("nodeSelector") or {}).items()):
                reason = "node(s) didn't match Pod's node affinity/selector"
            elif untolerated:
                t = untolerated[0]
                reason = f"node(s) had untolerated taint {{{t['key']}: {t.get('value', '')}}}"
            elif short:
                reason = f"Insufficient {short[0]}"
            else:
                return None
            reasons[reason] = reasons.get(reason, 0) + 1
        n = len(self.nodes)
        parts = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        return (f"0/{n} nodes are available: {parts}. preemption: 0/{n} nodes are available: "
                f"{n} Preemption is not helpful for scheduling.")

    def all_pods(self) -> list[dict[str, Any]]:
        return [pod for name in list(self.jobs) for pod in self.pods(name)]

    # -- HTTP -----------------------------------------------------------------------------------
    @staticmethod
    def status_error(code: int, reason: str, message: str, details: dict | None = None) -> Response:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                "reason": reason, "code": code}
        if details:
            body["details"] = details
        return Response.json(code, body)

    def handle(self, req: Request) -> Response:
        with self.lock:
            return self._handle(req)

    def _handle(self, req: Request) -> Response:
        method, parts = req.method, req.parts
        # the scheme is case-insensitive, as in k8s.io/apiserver's bearertoken authenticator
        scheme, _, sent = next((v for k, v in req.headers.items() if k.lower() == "authorization"), "").partition(" ")
        if self.token is not None and (scheme.lower() != "bearer" or sent.strip() != self.token):
            self.unauthorized.append(req.path)
            return self.status_error(401, "Unauthorized", "Unauthorized")
        if any(req.path.startswith(prefix) for prefix in self.forbidden):
            return self.status_error(403, "Forbidden", f"cannot {method.lower()} {req.path}")
        if parts[:6] == TRAINJOBS and len(parts) == 6 and method == "GET":
            for name in list(self.jobs):
                self._read(name)
            items = [self.with_status(n) for n, job in self.jobs.items()
                     if _labels_match(req.arg("labelSelector"), job["metadata"].get("labels", {}))]
            if self.hide_once:
                self.hide_once, items = False, []
            return Response.json(200, {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJobList",
                                       "metadata": {"resourceVersion": "1"}, "items": items})
        if parts[:6] == TRAINJOBS and method == "POST" and len(parts) == 6:
            return self._create(req)
        if parts[:6] == TRAINJOBS and len(parts) == 7:
            name = parts[6]
            if name in self.jobs and method == "GET":
                self._read(name)
            if name not in self.jobs:
                return self.status_error(404, "NotFound", f'trainjobs.trainer.kubeflow.org "{name}" not found',
                                         {"name": name, "group": "trainer.kubeflow.org", "kind": "trainjobs"})
            if method == "DELETE":
                return self._delete(name, req)
            obj = self.with_status(name)
            self.gets[name] = self.gets.get(name, 0) + 1
            return Response.json(200, obj)
        if parts[:4] == RUNTIMES and len(parts) == 5:
            if parts[4] in self.runtimes:
                return Response.json(200, {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
                                           "metadata": {"name": parts[4]},
                                           "spec": {"template": {"spec": {"replicatedJobs": [{"name": "node", "template": {
                                               "spec": {"template": {"spec": {"containers": [
                                                   {"name": "node", "image": "ghcr.io/rewardops/training"}]}}}}}]}}}})
            return self.status_error(404, "NotFound", f'clustertrainingruntimes.trainer.kubeflow.org "{parts[4]}" not found')
        if parts == ["api", "v1", "nodes"]:
            items = [{"apiVersion": "v1", "kind": "Node",
                      "metadata": {"name": f"node-{i}", "labels": node.get("labels", {})},
                      "spec": {"taints": node["taints"]} if node.get("taints") else {},
                      "status": {"allocatable": node["allocatable"], "capacity": node["allocatable"]}}
                     for i, node in enumerate(self.nodes)]
            return Response.json(200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items})
        if parts[:4] == ["api", "v1", "namespaces", NS] and len(parts) >= 5:
            if parts[4] == "secrets" and len(parts) == 6:
                secret = self.secrets.get(parts[5])
                if secret is None:
                    return self.status_error(404, "NotFound", f'secrets "{parts[5]}" not found')
                data = {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
                return Response.json(200, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": parts[5]},
                                            "type": "Opaque", "data": data})
            if parts[4] == "pods" and len(parts) == 5:
                items = [p for p in self.all_pods() if _labels_match(req.arg("labelSelector"), p["metadata"]["labels"])]
                return Response.json(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            if parts[4] == "pods" and len(parts) >= 6:
                pods = {p["metadata"]["name"]: (p, n) for n in list(self.jobs) for p in self.pods(n)}
                if parts[5] not in pods:
                    return self.status_error(404, "NotFound", f'pods "{parts[5]}" not found')
                if len(parts) == 7 and parts[6] == "log":
                    self.pod_logs_served.append(parts[5])
                    if req.arg("follow") in ("true", "True"):
                        return Response.streamed(200, self._follow(parts[5], pods[parts[5]][1]))
                    return Response.text(200, "".join(line + "\n" for line in self.log))
                return Response.json(200, pods[parts[5]][0])
        return self.status_error(404, "NotFound", f"the server could not find the requested resource ({method} {req.path})")

    def _create(self, req: Request) -> Response:
        body = req.json()
        mode = req.arg("fieldValidation") or "Warn"  # the API server's default
        unknown: list[str] = []
        pruned = _prune(self.schema, body, "", unknown)
        pruned["metadata"] = body.get("metadata", {})
        if unknown and mode == "Strict":
            fields = ", ".join(f'unknown field "{u}"' for u in unknown)
            return self.status_error(400, "BadRequest", f"TrainJob in version \"v1alpha1\" cannot be handled as a "
                                     f"TrainJob: strict decoding error: {fields}")
        from rewardops.k8s.schema import trainjob_errors

        errors = trainjob_errors(pruned)
        if errors:
            name = (body.get("metadata") or {}).get("name", "")
            return self.status_error(422, "Invalid", f'TrainJob.trainer.kubeflow.org "{name}" is invalid: ' + "; ".join(errors))
        name = pruned["metadata"]["name"]
        if name in self.jobs:
            return self.status_error(409, "AlreadyExists", f'trainjobs.trainer.kubeflow.org "{name}" already exists')
        pruned["metadata"] = {**pruned["metadata"], "creationTimestamp": f"2026-11-26T05:00:{len(self.created):02d}Z",
                              "uid": f"uid-{len(self.created)}", "resourceVersion": str(len(self.created) + 1),
                              "generation": 1}
        self.jobs[name] = pruned
        self.scenario[name] = self.statuses if not self.created else self.later
        self.gets[name] = 0
        self.created.append(copy.deepcopy(pruned))
        if self.on_create is not None:
            self.on_create(copy.deepcopy(pruned))
        response = Response.json(201, pruned)
        if unknown and mode == "Warn":
            warnings = [f'unknown field "{u}"' for u in unknown]
            self.warnings += warnings
            response.headers["Warning"] = ", ".join('299 - "' + w.replace('"', '\\"') + '"' for w in warnings)
        return response

    def _delete(self, name: str, req: Request) -> Response:
        options = req.json() if req.body else {}
        policy = req.arg("propagationPolicy") or (options or {}).get("propagationPolicy") or "Background"
        job = self.jobs[name]
        if policy == "Foreground":
            if name not in self.deleting:
                self.deleted.append(name)
                self.deleting[name] = self.terminating_reads
                job["metadata"]["deletionTimestamp"] = NOW
                job["metadata"]["finalizers"] = ["foregroundDeletion"]
            return Response.json(200, self.with_status(name))
        self.deleted.append(name)
        obj = self.with_status(name)
        del self.jobs[name]
        return Response.json(200, obj)

    def _follow(self, pod: str, job: str) -> Iterator[bytes]:
        """The log, then the connection held until the container exits (or the test ends)."""
        for line in self.log:
            yield (line + "\n").encode()
        deadline = time.monotonic() + 60
        while not self.closing.is_set() and time.monotonic() < deadline:
            with self.lock:
                live = job in self.jobs and job not in self.deleting and not self.finished(job) \
                    and pod in {p["metadata"]["name"] for p in self.pods(job)}
            if not live:
                return
            time.sleep(0.01)
