"""The TrainJob launcher against a stand-in Kubernetes API server.

No Kubernetes API server can run on this machine, so `KubeStandIn` below is a small HTTP server on
127.0.0.1 (the shared loopback helper, tests/support/loopback.py) that serves exactly the API paths
the launcher calls through the real `kubernetes` client: TrainJobs (create, 409 on a taken name,
list by label selector, get, delete), the ClusterTrainingRuntime, the Secret, the nodes'
allocatable resources, the node-0 pod (list by label selector, read; replaced by a new pod to
play a restart) and its log stream. It rejects a TrainJob that does not match the Trainer CRD
schema with a 422 as the API server would, and every status it serves is itself checked against
the CRD's status schema, so the scenarios stay realistic.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from rewardops.k8s.launcher import (
    CleanupPolicy,
    TrainJobFailed,
    TrainJobLauncher,
    TrainJobTimeout,
    api_client,
)
from support.loopback import LoopbackServer, Request, Response

from rewardops.k8s.schema import trainjob_errors, validate_trainjob_status
from rewardops.k8s.trainjob import CONTENT_LABEL, S3Credentials, TrainJobRequest, build_trainjob

NS = "team-rm"
NOW = "2026-11-26T05:00:00Z"


def cond(kind: str, reason: str, message: str) -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": NOW}


def jobs(active: int = 0, succeeded: int = 0, failed: int = 0) -> list[dict[str, Any]]:
    return [{"name": "node", "active": active, "ready": active, "succeeded": succeeded, "failed": failed, "suspended": 0}]


SUCCESS = [
    None,  # just created: the controller has not written a status yet
    {"conditions": [cond("Created", "JobsCreationSucceeded", "Succeeded to create Jobs")], "jobsStatus": jobs(1)},
    {"jobsStatus": jobs(1), "trainerStatus": {"progressPercentage": 40, "estimatedRemainingSeconds": 90,
                                              "metrics": [{"name": "loss", "value": "0.61"}], "lastUpdatedTime": NOW}},
    {"jobsStatus": jobs(succeeded=1), "conditions": [cond("Complete", "JobSetCompleted", "jobset completed")],
     "trainerStatus": {"progressPercentage": 100, "estimatedRemainingSeconds": 0,
                       "metrics": [{"name": "loss", "value": "0.42"}], "lastUpdatedTime": NOW}},
]
FAILURE = [
    None,
    {"jobsStatus": jobs(1), "trainerStatus": {"progressPercentage": 10, "lastUpdatedTime": NOW}},
    {"jobsStatus": jobs(failed=1),
     "conditions": [cond("Failed", "FailedJobs", "jobset failed: job node-0 exceeded its backoff limit (exit code 1)")]},
]
LOG = ["[rank0] loading data s3://bucket/data", "[rank0] step 1 loss 0.69", "[rank0] step 2 loss 0.61",
       '{"steps": 2, "world_size": 16}']
OOM_LOG = ["[rank0] step 1 loss 0.69", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"]


class KubeStandIn:
    """Loopback stand-in for the Kubernetes API paths the launcher uses (see the module docstring).

    `statuses` is the sequence of statuses a created TrainJob goes through (one per GET);
    `later` the sequence for jobs created after the first (a replacement). `restart_after` replaces
    node 0's pod by a new one (a restarted pod: new name, the old one gone) after that many GETs.
    `hide_once` hides existing jobs from the first list call, as when another attempt creates the
    job between our look and our create (the create then gets a 409)."""

    def __init__(self, statuses: list[dict | None], log: list[str], runtimes=("deepspeed-distributed", "torch-distributed"),
                 secrets: dict[str, dict[str, str]] | None = None, waiting_reason: str | None = None,
                 forbidden: tuple[str, ...] = (), later: list[dict | None] | None = None,
                 nodes: list[dict[str, str]] | None = None, restart_after: int | None = None, hide_once: bool = False,
                 on_create: Any = None):
        for status in [*statuses, *(later or [])]:
            if status is not None:
                assert validate_trainjob_status(status) == [], status  # keep the scenario CRD-valid
        self.statuses, self.later, self.log, self.runtimes = statuses, later or statuses, log, set(runtimes)
        self.secrets = secrets if secrets is not None else {
            "rewardops-s3": {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": "minio123"}}
        self.waiting_reason = waiting_reason
        self.forbidden = forbidden  # path prefixes answered with 403, as for a service account without RBAC
        self.nodes = nodes if nodes is not None else [{"cpu": "64", "memory": "512Gi", "nvidia.com/gpu": "8"}]
        self.restart_after, self.hide_once = restart_after, hide_once
        self.on_create = on_create  # called with each created TrainJob: what its pods would do (log to MLflow)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.scenario: dict[str, list[dict | None]] = {}
        self.gets: dict[str, int] = {}
        self.deleted: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.pod_logs_served: list[str] = []
        self.server = LoopbackServer(self.handle, "kubernetes API stand-in")

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def calls(self) -> list[tuple[str, str]]:
        return self.server.calls

    @property
    def errors(self) -> list[str]:
        return self.server.errors

    def __enter__(self) -> KubeStandIn:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    # -- state --------------------------------------------------------------------------------
    def status_of(self, name: str) -> dict | None:
        i = self.gets.get(name, 0)
        if self.restart_after is not None and not any(p.endswith("-0-1-abcde") for p in self.pod_logs_served):
            i = min(i, self.restart_after + 1)  # the job runs on until the restarted pod's log was read
        statuses = self.scenario[name]
        return statuses[min(i, len(statuses) - 1)]

    def finished(self, name: str) -> bool:
        status = self.status_of(name) or {}
        return any(c["type"] in ("Complete", "Failed") for c in status.get("conditions", []))

    def with_status(self, name: str) -> dict[str, Any]:
        obj = dict(self.jobs[name])
        status = self.status_of(name)
        if status is not None:
            obj["status"] = status
        return obj

    def pod(self, name: str) -> dict[str, Any]:
        job = self.jobs[name]
        rjob = "launcher" if job["spec"]["runtimeRef"]["name"] == "deepspeed-distributed" else "node"
        phase = "Running"
        if self.finished(name):
            phase = "Failed" if any(c["type"] == "Failed" for c in self.status_of(name)["conditions"]) else "Succeeded"
        state: dict[str, Any] = {"running": {"startedAt": NOW}}
        if self.waiting_reason:
            phase, state = "Pending", {"waiting": {"reason": self.waiting_reason, "message": "back-off pulling image"}}
        generation = int(self.restart_after is not None and self.gets.get(name, 0) >= self.restart_after)
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-{rjob}-0-{generation}-abcde", "namespace": NS,
                         "creationTimestamp": f"2026-11-26T05:0{generation}:00Z",
                         "labels": {"jobset.sigs.k8s.io/jobset-name": name,
                                    "jobset.sigs.k8s.io/replicatedjob-name": rjob,
                                    "batch.kubernetes.io/job-completion-index": "0"}},
            "spec": {"containers": [{"name": "node", "image": job["spec"]["trainer"]["image"]}]},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "node", "image": job["spec"]["trainer"]["image"], "imageID": "", "ready": phase == "Running",
                 "restartCount": generation, "state": state}]},
        }

    # -- HTTP -----------------------------------------------------------------------------------
    @staticmethod
    def status_error(code: int, reason: str, message: str) -> Response:
        return Response.json(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                                    "message": message, "code": code})

    def handle(self, req: Request) -> Response:
        method, parts = req.method, req.parts
        if any(req.path.startswith(prefix) for prefix in self.forbidden):
            return self.status_error(403, "Forbidden", f"cannot {method.lower()} {req.path}")
        trainjobs = ["apis", "trainer.kubeflow.org", "v1alpha1", "namespaces", NS, "trainjobs"]
        if parts[:6] == trainjobs and len(parts) == 6 and method == "GET":
            wanted = dict(kv.split("=", 1) for kv in (req.arg("labelSelector") or "").split(",") if kv)
            items = [self.with_status(n) for n, job in self.jobs.items()
                     if all(job["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]
            if self.hide_once:
                self.hide_once, items = False, []
            return Response.json(200, {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJobList",
                                       "metadata": {}, "items": items})
        if parts[:6] == trainjobs and method == "POST" and len(parts) == 6:
            body = req.json()
            errors = trainjob_errors(body)
            if errors:
                return self.status_error(422, "Invalid", "; ".join(errors))
            name = body["metadata"]["name"]
            if name in self.jobs:
                return self.status_error(409, "AlreadyExists", f'trainjobs "{name}" already exists')
            body["metadata"]["creationTimestamp"] = f"2026-11-26T05:00:{len(self.created):02d}Z"
            self.jobs[name] = body
            self.scenario[name] = self.statuses if not self.created else self.later
            self.gets[name] = 0
            self.created.append(body)
            if self.on_create is not None:
                self.on_create(body)
            return Response.json(201, body)
        if parts[:6] == trainjobs and len(parts) == 7:
            name = parts[6]
            if name not in self.jobs:
                return self.status_error(404, "NotFound", f'trainjobs "{name}" not found')
            if method == "DELETE":
                self.deleted.append(name)
                del self.jobs[name]
                return Response.json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            obj = self.with_status(name)
            self.gets[name] = self.gets.get(name, 0) + 1
            return Response.json(200, obj)
        if parts[:4] == ["apis", "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes"] and len(parts) == 5:
            if parts[4] in self.runtimes:
                return Response.json(200, {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
                                           "metadata": {"name": parts[4]}, "spec": {}})
            return self.status_error(404, "NotFound", f'clustertrainingruntimes "{parts[4]}" not found')
        if parts == ["api", "v1", "nodes"]:
            items = [{"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{i}"},
                      "status": {"allocatable": alloc, "capacity": alloc}} for i, alloc in enumerate(self.nodes)]
            return Response.json(200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {}, "items": items})
        if parts[:4] == ["api", "v1", "namespaces", NS] and len(parts) >= 5:
            if parts[4] == "secrets" and len(parts) == 6:
                secret = self.secrets.get(parts[5])
                if secret is None:
                    return self.status_error(404, "NotFound", f'secrets "{parts[5]}" not found')
                data = {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
                return Response.json(200, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": parts[5]}, "data": data})
            if parts[4] == "pods" and len(parts) == 5:
                wanted = dict(kv.split("=", 1) for kv in (req.arg("labelSelector") or "").split(",") if kv)
                items = [p for p in (self.pod(n) for n in self.jobs)
                         if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())]
                return Response.json(200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            if parts[4] == "pods" and len(parts) >= 6:
                pods = {self.pod(n)["metadata"]["name"]: self.pod(n) for n in self.jobs}
                if parts[5] not in pods:
                    return self.status_error(404, "NotFound", f'pods "{parts[5]}" not found')
                if len(parts) == 7 and parts[6] == "log":
                    assert req.arg("follow", "").lower() == "true" and req.arg("container") == "node"
                    self.pod_logs_served.append(parts[5])
                    return Response.text(200, "".join(line + "\n" for line in self.log))
                return Response.json(200, pods[parts[5]])
        return self.status_error(404, "NotFound", f"no route for {method} {req.path}")


class Collect:
    def __init__(self) -> None:
        self.states: list[str] = []
        self.progress_updates: list[tuple] = []
        self.lines: list[str] = []

    def state(self, text: str) -> None:
        self.states.append(text)

    def progress(self, percent, eta, metrics) -> None:
        self.progress_updates.append((percent, eta, dict(metrics)))

    def log(self, line: str) -> None:
        self.lines.append(line)


def manifest(framework: str = "deepspeed", name: str = "rm-qwen3-0-6b", content: str = "c0ffee") -> dict[str, Any]:
    return build_trainjob(TrainJobRequest(
        name=name, train_args=["train", "--config-json", "{}"], framework=framework, num_nodes=2, gpus_per_node=8,
        namespace=NS, mlflow_tracking_uri="http://mlflow.rewardops:5000", s3=S3Credentials("rewardops-s3"),
        labels={CONTENT_LABEL: content}))


def launcher(standin: KubeStandIn) -> TrainJobLauncher:
    return TrainJobLauncher(api_client(host=standin.url), namespace=NS, poll_interval=0.02)


@pytest.mark.parametrize(("framework", "runtime"), [("deepspeed", "deepspeed-distributed"), ("torch", "torch-distributed")])
def test_successful_job_streams_node0_logs_reports_progress_and_is_deleted(framework, runtime):
    with KubeStandIn(SUCCESS, LOG) as standin:
        seen = Collect()
        body = manifest(framework)
        assert body["spec"]["runtimeRef"]["name"] == runtime
        outcome = launcher(standin).run(body, reporter=seen, s3=S3Credentials("rewardops-s3"), timeout_s=30)
        assert outcome.succeeded and outcome.reason == "JobSetCompleted"
        assert outcome.progress == 100 and outcome.metrics == {"loss": "0.42"}
        assert seen.lines == LOG and outcome.log_lines == len(LOG)  # every line once, in order
        assert [p[0] for p in seen.progress_updates] == [40, 100]
        assert seen.progress_updates[0] == (40, 90, {"loss": "0.61"})
        assert standin.deleted == []  # kept by default: a succeeded job is what a rerun re-attaches to
        node0 = "launcher" if runtime == "deepspeed-distributed" else "node"
        assert any(f"rm-qwen3-0-6b-{node0}-0-0" in s for s in seen.states)
        # preflight looked up the runtime and the Secret before creating anything
        paths = [p for _, p in standin.calls]
        assert paths.index(f"/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes/{runtime}") < \
            paths.index(f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs")
        assert f"/api/v1/namespaces/{NS}/secrets/rewardops-s3" in paths


def test_failed_job_raises_with_the_jobs_reason_and_log_tail_and_is_kept():
    with KubeStandIn(FAILURE, OOM_LOG) as standin:
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).run(manifest(), reporter=Collect(), timeout_s=30)
        err = info.value
        assert err.reason == "FailedJobs"
        assert "exceeded its backoff limit" in err.message
        assert "CUDA out of memory" in str(err)  # the node-0 log tail travels with the error
        assert standin.deleted == []  # on-success keeps a failed job for kubectl describe
        assert "rm-qwen3-0-6b" in standin.jobs


def test_cleanup_always_deletes_a_failed_job_and_on_success_a_finished_one():
    with KubeStandIn(FAILURE, OOM_LOG) as standin:
        with pytest.raises(TrainJobFailed):
            launcher(standin).run(manifest(), reporter=Collect(), cleanup=CleanupPolicy.ALWAYS, timeout_s=30)
        assert standin.deleted == ["rm-qwen3-0-6b"]
    with KubeStandIn(SUCCESS, LOG) as standin:
        outcome = launcher(standin).run(manifest(), reporter=Collect(), cleanup="on-success", timeout_s=30)
        assert outcome.succeeded and outcome.deleted and standin.deleted == ["rm-qwen3-0-6b"]


def test_preflight_fails_before_creating_when_runtime_or_secret_is_missing():
    with KubeStandIn(SUCCESS, LOG, runtimes=("torch-distributed",)) as standin:
        with pytest.raises(TrainJobFailed, match="ClusterTrainingRuntime 'deepspeed-distributed' is not installed"):
            launcher(standin).run(manifest(), reporter=Collect())
        assert not any(method == "POST" for method, _ in standin.calls)
    with KubeStandIn(SUCCESS, LOG, secrets={"rewardops-s3": {"AWS_ACCESS_KEY_ID": "x"}}) as standin:
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).run(manifest(), reporter=Collect(), s3=S3Credentials("rewardops-s3"))
        assert info.value.reason == "SecretKeyMissing" and "AWS_SECRET_ACCESS_KEY" in info.value.message
    with KubeStandIn(SUCCESS, LOG, secrets={}) as standin:
        with pytest.raises(TrainJobFailed, match="Secret 'rewardops-s3' not found in namespace 'team-rm'"):
            launcher(standin).run(manifest(), reporter=Collect(), s3=S3Credentials("rewardops-s3"))


def test_api_server_rejection_and_name_clash_are_reported_clearly():
    with KubeStandIn(SUCCESS, LOG) as standin:
        bad = manifest()
        bad["spec"]["trainer"]["numNodes"] = "two"
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).create(bad)  # bypasses our own preflight: the stand-in's 422 path
        assert info.value.reason == "Invalid" and "numNodes" in info.value.message
        launcher(standin).create(manifest())
        with pytest.raises(TrainJobFailed, match="already exists"):
            launcher(standin).create(manifest())


def test_pod_stuck_pulling_its_image_fails_the_task():
    with KubeStandIn([None], LOG, waiting_reason="ImagePullBackOff") as standin:
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).run(manifest(), reporter=Collect(), stuck_after_s=0.05, cleanup="always", timeout_s=30)
        assert info.value.reason == "PodStuck" and "ImagePullBackOff" in info.value.message
        assert standin.deleted == ["rm-qwen3-0-6b"]


def test_timeout_deletes_the_job_unless_cleanup_is_never():
    running = [None, {"jobsStatus": jobs(1)}]
    with KubeStandIn(running, LOG) as standin:
        with pytest.raises(TrainJobTimeout):
            launcher(standin).run(manifest(), reporter=Collect(), timeout_s=0.2)
        assert standin.deleted == ["rm-qwen3-0-6b"]
    with KubeStandIn(running, LOG) as standin:
        with pytest.raises(TrainJobTimeout):
            launcher(standin).run(manifest(), reporter=Collect(), timeout_s=0.2, cleanup="never")
        assert standin.deleted == []


def test_preflight_skips_checks_the_service_account_may_not_make_and_says_so():
    forbidden = ("/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes", f"/api/v1/namespaces/{NS}/secrets")
    with KubeStandIn(SUCCESS, LOG, forbidden=forbidden) as standin:
        seen = Collect()
        outcome = launcher(standin).run(manifest(), reporter=seen, s3=S3Credentials("rewardops-s3"), timeout_s=30)
        assert outcome.succeeded
        skipped = [s for s in seen.states if s.startswith("preflight skipped")]
        assert len(skipped) == 2 and "ClusterTrainingRuntime" in skipped[0] and "Secret" in skipped[1]


# -- re-attach: retries and reruns never train twice nor stop at 409 ------------------------------

def test_a_retry_after_success_reuses_the_job_without_creating_anything():
    with KubeStandIn(SUCCESS, LOG) as standin:
        first = launcher(standin).run(manifest(), reporter=Collect(), timeout_s=30)
        assert first.attached == "created" and len(standin.created) == 1
        seen = Collect()
        # the retried step (or a rerun on the same data) builds a job of another run, same content hash
        again = launcher(standin).run(manifest(name="rm-qwen3-0-6b-run2"), reporter=seen, timeout_s=30)
        assert again.succeeded and again.attached == "reused" and again.name == "rm-qwen3-0-6b"
        assert len(standin.created) == 1 and standin.deleted == []
        assert any("reusing it" in s for s in seen.states)


def test_a_retry_while_the_job_runs_follows_it():
    running_then_done = [None, {"jobsStatus": jobs(1)}, {"jobsStatus": jobs(1)}, SUCCESS[-1]]
    with KubeStandIn(running_then_done, LOG) as standin:
        first = launcher(standin)
        first.create(manifest())  # an earlier attempt created it, then its pod went away
        outcome = launcher(standin).run(manifest(), reporter=Collect(), timeout_s=30)
        assert outcome.succeeded and outcome.attached == "followed" and len(standin.created) == 1


def test_a_failed_job_is_replaced_on_retry():
    with KubeStandIn(FAILURE, OOM_LOG, later=SUCCESS) as standin:
        with pytest.raises(TrainJobFailed):
            launcher(standin).run(manifest(), reporter=Collect(), timeout_s=30)
        assert "rm-qwen3-0-6b" in standin.jobs  # kept for kubectl describe
        outcome = launcher(standin).run(manifest(), reporter=Collect(), timeout_s=30)
        assert outcome.succeeded and outcome.attached == "created"
        assert standin.deleted == ["rm-qwen3-0-6b"] and len(standin.created) == 2


def test_409_from_a_concurrent_create_re_attaches():
    with KubeStandIn(SUCCESS, LOG, hide_once=True) as standin:
        launcher(standin).create(manifest())  # created by another attempt; our first look misses it
        seen = Collect()
        outcome = launcher(standin).run(manifest(), reporter=seen, timeout_s=30)
        assert outcome.succeeded and outcome.attached == "followed"  # the other attempt's job, still running
        assert ("POST", f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs") in standin.calls[1:]
        assert any("409" in s for s in seen.states) and len(standin.created) == 1


def test_a_node0_pod_restarted_mid_wait_is_followed_again():
    long_run = [None, *([{"jobsStatus": jobs(1)}] * 6), SUCCESS[-1]]
    with KubeStandIn(long_run, LOG, restart_after=3) as standin:
        seen = Collect()
        outcome = launcher(standin).run(manifest(), reporter=seen, timeout_s=30)
        assert outcome.succeeded
        assert standin.pod_logs_served[0].endswith("-0-0-abcde") and standin.pod_logs_served[-1].endswith("-0-1-abcde")
        assert seen.lines == LOG + LOG  # the new pod's log too, each line once per pod


# -- accelerators: bad input is a message before any pod ----------------------------------------

def test_an_accelerator_no_node_offers_or_a_plan_larger_than_a_node_fails_before_creating():
    with KubeStandIn(SUCCESS, LOG, nodes=[{"cpu": "64", "amd.com/gpu": "8"}]) as standin:
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).run(manifest(), reporter=Collect())
        assert info.value.reason == "AcceleratorNotOffered"
        assert "nvidia.com/gpu" in info.value.message and "amd.com/gpu" in info.value.message
        assert "REWARDOPS_ACCELERATOR" in info.value.message
        assert not any(m == "POST" for m, _ in standin.calls)
    with KubeStandIn(SUCCESS, LOG, nodes=[{"nvidia.com/gpu": "4"}, {"nvidia.com/gpu": "4"}]) as standin:
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).run(manifest(), reporter=Collect())
        assert info.value.reason == "PlanLargerThanNode" and "gpus_per_node <= 4" in info.value.message
        assert not any(m == "POST" for m, _ in standin.calls)
