"""The TrainJob launcher against a stand-in Kubernetes API server.

No Kubernetes API server can run on this machine, so `KubeStandIn` below is a small HTTP server on
127.0.0.1 that serves exactly the API paths the launcher calls through the real `kubernetes`
client: the TrainJob custom object (create / get / delete), the ClusterTrainingRuntime, the
Secret, the node-0 pod (list by label selector, read) and its log stream. It rejects a TrainJob
that does not match the Trainer CRD schema with a 422 as the API server would, and every status it
serves is itself checked against the CRD's status schema, so the scenarios stay realistic.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from rewardops.k8s.launcher import (
    CleanupPolicy,
    TrainJobFailed,
    TrainJobLauncher,
    TrainJobTimeout,
    api_client,
)
from rewardops.k8s.schema import trainjob_errors, validate_trainjob_status
from rewardops.k8s.trainjob import S3Credentials, TrainJobRequest, build_trainjob

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
       # `rewardops train` ends with a JSON summary; the launcher reads the registered version from it
       "{", ' "steps": 2,', ' "mlflow_run": "4f1c",', ' "registered_version": 3', "}"]
OOM_LOG = ["[rank0] step 1 loss 0.69", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"]


class KubeStandIn:
    """Loopback stand-in for the Kubernetes API paths the launcher uses (see the module docstring)."""

    def __init__(self, statuses: list[dict | None], log: list[str], runtimes=("deepspeed-distributed", "torch-distributed"),
                 secrets: dict[str, dict[str, str]] | None = None, waiting_reason: str | None = None,
                 forbidden: tuple[str, ...] = ()):
        for status in statuses:
            if status is not None:
                assert validate_trainjob_status(status) == [], status  # keep the scenario CRD-valid
        self.statuses, self.log, self.runtimes = statuses, log, set(runtimes)
        self.secrets = secrets if secrets is not None else {
            "rewardops-s3": {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": "minio123"}}
        self.waiting_reason = waiting_reason
        self.forbidden = forbidden  # path prefixes answered with 403, as for a service account without RBAC
        self.jobs: dict[str, dict[str, Any]] = {}
        self.gets: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.created: list[dict[str, Any]] = []
        self.errors: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin.guarded(self, "GET")

            def do_POST(self) -> None:
                standin.guarded(self, "POST")

            def do_DELETE(self) -> None:
                standin.guarded(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> KubeStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        assert self.errors == [], self.errors

    # -- state --------------------------------------------------------------------------------
    def status_of(self, name: str) -> dict | None:
        i = self.gets.get(name, 0)
        return self.statuses[min(i, len(self.statuses) - 1)]

    def finished(self, name: str) -> bool:
        status = self.status_of(name) or {}
        return any(c["type"] in ("Complete", "Failed") for c in status.get("conditions", []))

    def pod(self, name: str) -> dict[str, Any]:
        job = self.jobs[name]
        rjob = "launcher" if job["spec"]["runtimeRef"]["name"] == "deepspeed-distributed" else "node"
        phase = "Running"
        if self.finished(name):
            phase = "Failed" if any(c["type"] == "Failed" for c in self.status_of(name)["conditions"]) else "Succeeded"
        state: dict[str, Any] = {"running": {"startedAt": NOW}}
        if self.waiting_reason:
            phase, state = "Pending", {"waiting": {"reason": self.waiting_reason, "message": "back-off pulling image"}}
        return {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-{rjob}-0-0-abcde", "namespace": NS, "creationTimestamp": NOW,
                         "labels": {"jobset.sigs.k8s.io/jobset-name": name,
                                    "jobset.sigs.k8s.io/replicatedjob-name": rjob,
                                    "batch.kubernetes.io/job-completion-index": "0"}},
            "spec": {"containers": [{"name": "node", "image": job["spec"]["trainer"]["image"]}]},
            "status": {"phase": phase, "containerStatuses": [
                {"name": "node", "image": job["spec"]["trainer"]["image"], "imageID": "", "ready": phase == "Running",
                 "restartCount": 0, "state": state}]},
        }

    # -- HTTP -----------------------------------------------------------------------------------
    def send(self, h: BaseHTTPRequestHandler, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def status_error(self, h: BaseHTTPRequestHandler, code: int, reason: str, message: str) -> None:
        self.send(h, code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                            "message": message, "code": code})

    def guarded(self, h: BaseHTTPRequestHandler, method: str) -> None:
        try:
            self.handle(h, method)
        except Exception as exc:  # surface stand-in bugs as test failures, not dropped connections
            self.errors.append(f"{method} {h.path}: {exc!r}")
            self.status_error(h, 500, "InternalError", repr(exc))

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        parts = url.path.strip("/").split("/")
        self.calls.append((method, url.path))
        if any(url.path.startswith(prefix) for prefix in self.forbidden):
            return self.status_error(h, 403, "Forbidden", f"cannot {method.lower()} {url.path}")
        trainjobs = ["apis", "trainer.kubeflow.org", "v1alpha1", "namespaces", NS, "trainjobs"]
        if parts[:6] == trainjobs and method == "POST" and len(parts) == 6:
            body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
            errors = trainjob_errors(body)
            if errors:
                return self.status_error(h, 422, "Invalid", "; ".join(errors))
            name = body["metadata"]["name"]
            if name in self.jobs:
                return self.status_error(h, 409, "AlreadyExists", f'trainjobs "{name}" already exists')
            self.jobs[name] = body
            self.created.append(body)
            return self.send(h, 201, body)
        if parts[:6] == trainjobs and len(parts) == 7:
            name = parts[6]
            if name not in self.jobs:
                return self.status_error(h, 404, "NotFound", f'trainjobs "{name}" not found')
            if method == "DELETE":
                self.deleted.append(name)
                del self.jobs[name]
                return self.send(h, 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})
            obj = dict(self.jobs[name])
            status = self.status_of(name)
            if status is not None:
                obj["status"] = status
            self.gets[name] = self.gets.get(name, 0) + 1
            return self.send(h, 200, obj)
        if parts[:4] == ["apis", "trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes"] and len(parts) == 5:
            if parts[4] in self.runtimes:
                return self.send(h, 200, {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "ClusterTrainingRuntime",
                                          "metadata": {"name": parts[4]}, "spec": {}})
            return self.status_error(h, 404, "NotFound", f'clustertrainingruntimes "{parts[4]}" not found')
        if parts[:4] == ["api", "v1", "namespaces", NS] and len(parts) >= 5:
            if parts[4] == "secrets" and len(parts) == 6:
                secret = self.secrets.get(parts[5])
                if secret is None:
                    return self.status_error(h, 404, "NotFound", f'secrets "{parts[5]}" not found')
                data = {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}
                return self.send(h, 200, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": parts[5]}, "data": data})
            if parts[4] == "pods" and len(parts) == 5:
                wanted = dict(kv.split("=", 1) for kv in query.get("labelSelector", [""])[0].split(",") if kv)
                items = [p for p in (self.pod(n) for n in self.jobs)
                         if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())]
                return self.send(h, 200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
            if parts[4] == "pods" and len(parts) >= 6:
                pods = {self.pod(n)["metadata"]["name"]: self.pod(n) for n in self.jobs}
                if parts[5] not in pods:
                    return self.status_error(h, 404, "NotFound", f'pods "{parts[5]}" not found')
                if len(parts) == 7 and parts[6] == "log":
                    assert query["follow"][0].lower() == "true" and query["container"] == ["node"]
                    return self.send(h, 200, "".join(line + "\n" for line in self.log), "text/plain")
                return self.send(h, 200, pods[parts[5]])
        return self.status_error(h, 404, "NotFound", f"no route for {method} {url.path}")


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


def manifest(framework: str = "deepspeed", name: str = "rm-qwen3-0-6b") -> dict[str, Any]:
    return build_trainjob(TrainJobRequest(
        name=name, train_args=["train", "--size", "qwen3-0.6b"], framework=framework, num_nodes=2, gpus_per_node=8,
        namespace=NS, mlflow_tracking_uri="http://mlflow.rewardops:5000",
        data_uris={"REWARDOPS_TRAIN_DATA": "s3://bucket/data"}, s3=S3Credentials("rewardops-s3")))


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
        assert outcome.train_summary() == {"steps": 2, "mlflow_run": "4f1c", "registered_version": 3}
        assert [p[0] for p in seen.progress_updates] == [40, 100]
        assert seen.progress_updates[0] == (40, 90, {"loss": "0.61"})
        assert standin.deleted == ["rm-qwen3-0-6b"]  # on-success policy
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


def test_cleanup_always_deletes_a_failed_job_and_never_keeps_a_finished_one():
    with KubeStandIn(FAILURE, OOM_LOG) as standin:
        with pytest.raises(TrainJobFailed):
            launcher(standin).run(manifest(), reporter=Collect(), cleanup=CleanupPolicy.ALWAYS, timeout_s=30)
        assert standin.deleted == ["rm-qwen3-0-6b"]
    with KubeStandIn(SUCCESS, LOG) as standin:
        outcome = launcher(standin).run(manifest(), reporter=Collect(), cleanup="never", timeout_s=30)
        assert outcome.succeeded and not outcome.deleted and standin.deleted == []


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
