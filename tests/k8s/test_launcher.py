"""The TrainJob launcher against the Kubernetes API stand-in (tests/support/kube_standin.py).

No Kubernetes API server can run on this machine: `KubeStandIn` serves the API paths the launcher
calls through the real `kubernetes` client, behaving as Kubernetes 1.30, Trainer v2.3.0, JobSet and
kube-scheduler do where the launcher relies on it (conditions, Foreground deletion, fieldValidation,
held log streams, scheduling against tainted GPU nodes), and checks every request and answer
against the vendored upstream schemas (tests/support/contracts.py).
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from support.kube_standin import (
    COMPLETE,
    FAILURE,
    GPU_TAINT,
    LOG,
    NS,
    OOM_LOG,
    SUCCESS,
    KubeStandIn,
    jobs,
)

from rewardops.k8s.launcher import (
    CleanupPolicy,
    TrainJobFailed,
    TrainJobLauncher,
    TrainJobTimeout,
    api_client,
)
from rewardops.k8s.schema import ManifestInvalid
from rewardops.k8s.trainjob import CONTENT_LABEL, Accelerator, S3Credentials, TrainJobRequest, build_trainjob


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


def manifest(framework: str = "deepspeed", name: str = "rm-qwen3-0-6b", content: str = "c0ffee", nodes: int = 2,
             gpus: int = 8, accelerator: Accelerator | None = None) -> dict[str, Any]:
    return build_trainjob(TrainJobRequest(
        name=name, train_args=["train", "--config-json", "{}"], framework=framework, num_nodes=nodes, gpus_per_node=gpus,
        namespace=NS, mlflow_tracking_uri="http://mlflow.rewardops:5000", s3=S3Credentials("rewardops-s3"),
        labels={CONTENT_LABEL: content}, accelerator=accelerator or Accelerator()))


def launcher(standin: KubeStandIn) -> TrainJobLauncher:
    return TrainJobLauncher(api_client(host=standin.url), namespace=NS, poll_interval=0.02)


@pytest.mark.parametrize(("framework", "runtime"), [("deepspeed", "deepspeed-distributed"), ("torch", "torch-distributed")])
def test_successful_job_streams_node0_logs_reports_progress_and_is_deleted(framework, runtime):
    with KubeStandIn(SUCCESS, LOG) as standin:
        seen = Collect()
        body = manifest(framework)
        assert body["spec"]["runtimeRef"]["name"] == runtime
        outcome = launcher(standin).run(body, reporter=seen, s3=S3Credentials("rewardops-s3"), timeout_s=30)
        # the JobSet's condition as Trainer v2.3.0 copies it (jobset pkg/constants/constants.go)
        assert outcome.succeeded and (outcome.reason, outcome.message) == ("AllJobsCompleted", "jobset completed successfully")
        assert outcome.progress == 100 and outcome.metrics == {"loss": "0.42"}
        assert seen.lines == LOG and outcome.log_lines == len(LOG)  # every line once, in order
        node0 = "launcher" if runtime == "deepspeed-distributed" else "node"
        # the stream is held open until the container exits: one connection, no reconnects
        assert standin.pod_logs_served == [f"rm-qwen3-0-6b-{node0}-0-0-abcde"]
        assert [p[0] for p in seen.progress_updates] == [40, 100]
        assert seen.progress_updates[0] == (40, 90, {"loss": "0.61"})
        assert standin.deleted == []  # kept by default: a succeeded job is what a rerun re-attaches to
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
        assert err.message == "jobset failed due to one or more job failures (first failed job: rm-qwen3-0-6b-node-0)"
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
        standin.errors.clear()  # the contract check saw the bad body too (that is the point of this request)
        launcher(standin).create(manifest())
        with pytest.raises(TrainJobFailed, match="already exists"):
            launcher(standin).create(manifest())


def test_pod_stuck_pulling_its_image_fails_the_task():
    with KubeStandIn([None], LOG, waiting_reason="ImagePullBackOff") as standin:
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).run(manifest(), reporter=Collect(), stuck_after_s=0.05, cleanup="always", timeout_s=30)
        # the MPI launcher (node 0) does not exist yet: the `node` pod it waits for is the stuck one
        assert info.value.reason == "PodStuck" and "ImagePullBackOff" in info.value.message
        assert "rm-qwen3-0-6b-node-0-0" in info.value.message
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
    assert COMPLETE in SUCCESS[-1]["conditions"]
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


# -- as the real servers behave: scheduling, deletion, field validation --------------------------

GPU_NODES = [
    {"allocatable": {"cpu": "96", "memory": "1Ti", "nvidia.com/gpu": "8"}, "labels": {"pool": "gpu"}, "taints": [GPU_TAINT]},
    {"allocatable": {"cpu": "96", "memory": "1Ti", "nvidia.com/gpu": "8"}, "labels": {"pool": "gpu"}, "taints": [GPU_TAINT]},
    {"allocatable": {"cpu": "16", "memory": "64Gi"}, "labels": {"pool": "cpu"}},
]


@pytest.mark.parametrize(("framework", "gpu_jobs"), [("deepspeed", ["node", "launcher"]), ("torch", ["node"])])
def test_on_gpu_tainted_nodes_every_pod_of_the_trainjob_schedules(framework, gpu_jobs):
    """Trainer gives every training pod the trainer's GPUs, the MPI launcher (node 0) included: each
    of them gets the GPU placement, so none waits Pending on tainted GPU nodes."""
    body = manifest(framework, nodes=3)
    patched = [j["name"] for j in body["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]]
    assert patched == gpu_jobs
    with KubeStandIn(SUCCESS, LOG, nodes=GPU_NODES) as standin:
        outcome = launcher(standin).run(body, reporter=Collect(), timeout_s=30, stuck_after_s=5)
        assert outcome.succeeded
        pods = standin.pods("rm-qwen3-0-6b")
        assert sorted(p["metadata"]["labels"]["jobset.sigs.k8s.io/replicatedjob-name"] for p in pods) == \
            sorted(["node"] * (2 if framework == "deepspeed" else 3) + (["launcher"] if framework == "deepspeed" else []))
        for pod in pods:
            scheduled = {c["type"]: c["status"] for c in pod["status"]["conditions"]}["PodScheduled"]
            assert scheduled == "True", pod["metadata"]["name"]
            assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_an_unschedulable_pod_fails_the_step_within_the_stuck_limit_with_the_schedulers_message():
    """GPU nodes tainted with a key the accelerator settings do not tolerate: the step fails after
    `stuck_after_s` with kube-scheduler's reason, not after the 168 h timeout."""
    other_taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    nodes = [{**node, "taints": [other_taint]} if "taints" in node else node for node in GPU_NODES]
    with KubeStandIn([None, {"jobsStatus": jobs(0)}], LOG, nodes=nodes) as standin:
        seen = Collect()
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).run(manifest(), reporter=seen, stuck_after_s=0.3, timeout_s=7 * 24 * 3600)
        err = info.value
        assert err.reason == "PodStuck" and "Unschedulable: 0/3 nodes are available:" in err.message
        assert "2 node(s) had untolerated taint {dedicated: gpu}" in err.message
        assert "1 Insufficient nvidia.com/gpu" in err.message
        assert sum("Unschedulable" in s for s in seen.states) == 1  # said once, not every poll


def test_a_cpu_job_gets_neither_gpus_nor_gpu_placement_and_schedules_on_a_cpu_node():
    body = manifest("torch", gpus=0)
    assert "runtimePatches" not in body["spec"]
    assert "nvidia.com/gpu" not in str(body["spec"]["trainer"].get("resourcesPerNode", {}))
    with KubeStandIn(SUCCESS, LOG, nodes=GPU_NODES) as standin:
        assert launcher(standin).run(body, reporter=Collect(), timeout_s=30, stuck_after_s=5).succeeded


def test_a_job_being_deleted_is_waited_out_then_created_anew_never_followed():
    with KubeStandIn(SUCCESS, LOG, terminating_reads=3) as standin:
        earlier = launcher(standin)
        earlier.create(manifest())
        earlier.delete("rm-qwen3-0-6b")  # Foreground: 200, the object stays while its JobSet goes
        assert standin.jobs["rm-qwen3-0-6b"]["metadata"]["deletionTimestamp"]
        assert standin.jobs["rm-qwen3-0-6b"]["metadata"]["finalizers"] == ["foregroundDeletion"]
        seen = Collect()
        outcome = launcher(standin).run(manifest(), reporter=seen, timeout_s=30)
        assert outcome.succeeded and outcome.attached == "created" and len(standin.created) == 2
        assert any("being deleted: waiting" in s for s in seen.states)


def test_a_job_of_another_run_being_deleted_is_passed_over():
    with KubeStandIn(SUCCESS, LOG, terminating_reads=50) as standin:
        earlier = launcher(standin)
        earlier.create(manifest(name="rm-qwen3-0-6b-other"))
        earlier.delete("rm-qwen3-0-6b-other")
        outcome = launcher(standin).run(manifest(), reporter=Collect(), timeout_s=30)
        assert outcome.name == "rm-qwen3-0-6b" and outcome.attached == "created"


def test_a_job_deleted_while_the_step_waits_is_a_clear_failure_not_a_raw_404():
    from kubernetes import client as k8s

    from rewardops.k8s.trainjob import GROUP, PLURAL, VERSION

    class DeleteOnStream(Collect):
        def state(self, text: str) -> None:
            super().state(text)
            if text.startswith("streaming logs"):  # someone runs `kubectl delete trainjob` now
                other.custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "rm-qwen3-0-6b",
                                                             body=k8s.V1DeleteOptions(propagation_policy="Background"))

    with KubeStandIn([None, {"jobsStatus": jobs(1)}], LOG) as standin:
        other = launcher(standin)
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).run(manifest(), reporter=DeleteOnStream(), timeout_s=30)
        assert info.value.reason == "Deleted" and "was deleted while the step waited" in info.value.message


def test_field_validation_is_the_api_servers_warn_by_default_and_strict_from_the_launcher():
    from rewardops.k8s.trainjob import GROUP, PLURAL, VERSION

    with KubeStandIn(SUCCESS, LOG) as standin:
        body = manifest()
        body["spec"]["trainer"]["numProcsPerNode"] = 4  # a misspelt field (or one an older Trainer lacks)
        created = launcher(standin).custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, body)
        assert "numProcsPerNode" not in created["spec"]["trainer"]  # Warn: dropped, with a warning
        assert standin.warnings == ['unknown field "spec.trainer.numProcsPerNode"']
        body["metadata"]["name"] = "rm-strict"
        with pytest.raises(TrainJobFailed) as info:
            launcher(standin).create(body)  # the launcher asks for Strict: 400 names the field
        assert info.value.reason == "Invalid" and 'unknown field "spec.trainer.numProcsPerNode"' in info.value.message
        assert "rm-strict" not in standin.jobs
        # the contract check flagged the undeclared field in both requests
        assert len([e for e in standin.errors if "numProcsPerNode" in e]) == 2
        standin.errors.clear()


# -- what a TrainJob may reach: the chart's image, runtimes and client Secrets only --------------

def _foreign(kind: str) -> dict[str, Any]:
    body = manifest()
    spec = body["spec"]
    if kind == "image":
        spec["trainer"]["image"] = "docker.io/attacker/printenv:latest"
    elif kind == "secret":
        spec["trainer"]["env"].append({"name": "ROOT", "valueFrom": {"secretKeyRef": {"name": "rewardops-minio-root",
                                                                                     "key": "rootPassword"}}})
    elif kind == "runtime":
        spec["runtimeRef"]["name"] = "someone-elses-runtime"
    elif kind == "patch":
        jobs_ = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
        jobs_[0]["template"]["spec"]["template"]["spec"]["volumes"] = [
            {"name": "pg", "secret": {"secretName": "rewardops-postgresql"}}]
    elif kind == "initializer":
        spec["initializer"] = {"dataset": {"storageUri": "hf://x", "secretRef": {"name": "rewardops-mlflow-server"}}}
    return body


@pytest.mark.parametrize(("kind", "message"), [
    ("image", "is not the chart's training image"),
    ("secret", "Secret 'rewardops-minio-root' is not a client Secret"),
    ("runtime", "is not one of the chart's ClusterTrainingRuntimes"),
    ("patch", "patches ['volumes']"),
    ("initializer", "initializers run their own images"),
])
def test_the_launcher_refuses_a_trainjob_reaching_beyond_the_charts_policy_before_any_request(kind, message):
    with KubeStandIn(SUCCESS, LOG) as standin:
        with pytest.raises(ManifestInvalid, match=message.replace("[", r"\[").replace("]", r"\]")):
            launcher(standin).run(_foreign(kind), reporter=Collect(), timeout_s=30)
        assert standin.calls == []


def test_build_refuses_a_foreign_image_or_secret():
    base = dict(name="rm-x", train_args=["train"], namespace=NS, gpus_per_node=1)
    with pytest.raises(ManifestInvalid, match="is not the chart's training image"):
        build_trainjob(TrainJobRequest(**base, image="docker.io/attacker/printenv:latest"))
    with pytest.raises(ManifestInvalid, match="Secret 'rewardops-postgresql' is not a client Secret"):
        build_trainjob(TrainJobRequest(**base, s3=S3Credentials("rewardops-postgresql")))
    with pytest.raises(ManifestInvalid, match="Secret 'rewardops-mlflow-server' is not a client Secret"):
        build_trainjob(TrainJobRequest(**base, mlflow_auth_secret="rewardops-mlflow-server"))


# -- the launcher's own credentials: its mounted token Secret ------------------------------------

def _api_server_tls(folder) -> ssl.SSLContext:
    """A CA and a serving certificate for 127.0.0.1 (what the cluster's CA signs for the API
    server); the CA goes to `folder/ca.crt`, as in a mounted service-account token Secret."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in cluster CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem")
    return context


def test_the_launcher_authenticates_with_its_mounted_token_not_the_pods_account(tmp_path, monkeypatch):
    """With the launcher's token Secret mounted (token, ca.crt, namespace), `api_client()` talks to
    the in-cluster API server (KUBERNETES_SERVICE_HOST/PORT) over TLS verified with that ca.crt and
    sends that token; the stand-in refuses any other bearer token with 401, as the API server
    does. A kubeconfig with another account's token is present and must not be used."""
    import json

    from kubernetes.client.exceptions import ApiException
    from kubernetes.config import kube_config

    from rewardops.k8s import launcher as launcher_module
    from rewardops.k8s.launcher import mounted_namespace

    mounted = tmp_path / "trainjob-launcher"
    mounted.mkdir()
    tls = _api_server_tls(mounted)
    (mounted / "token").write_text("launcher-sa-token-5e1f")
    (mounted / "namespace").write_text(NS)
    with KubeStandIn(SUCCESS, LOG, token="launcher-sa-token-5e1f", tls=tls) as standin:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(standin.server.port))
        other = tmp_path / "kubeconfig"  # another account (a person's, or the pod's): must not be used
        other.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": standin.url, "certificate-authority": str(mounted / "ca.crt")}}],
            "users": [{"name": "u", "user": {"token": "pipeline-sa-token-0000"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": NS}}]}))
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(other))
        monkeypatch.setattr(launcher_module, "LAUNCHER_TOKEN_DIR", str(mounted))
        client = api_client()
        assert client.configuration.host == f"https://127.0.0.1:{standin.server.port}"
        outcome = TrainJobLauncher(client, namespace=mounted_namespace(), poll_interval=0.02).run(
            manifest(), reporter=Collect(), s3=S3Credentials("rewardops-s3"), timeout_s=30)
        assert outcome.succeeded and standin.created and standin.unauthorized == []
        assert {next(v for k, v in r.headers.items() if k.lower() == "authorization").lower()
                for r in standin.requests} == {"bearer launcher-sa-token-5e1f"}
        # without the mounted token the client falls back to the kubeconfig's account: refused
        monkeypatch.setattr(launcher_module, "LAUNCHER_TOKEN_DIR", str(tmp_path / "not-mounted"))
        with pytest.raises(ApiException) as refused:
            TrainJobLauncher(api_client(), namespace=NS, poll_interval=0.02).run(
                manifest(content="other"), reporter=Collect(), timeout_s=30)
        assert refused.value.status == 401 and standin.unauthorized
