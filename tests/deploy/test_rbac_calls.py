"""The chart grants the launcher exactly the calls it makes, and TrainJobs reach only the chart's things.

RBAC = calls: the launcher runs its scenarios against the Kubernetes API stand-in
(tests/support/kube_standin.py, every request held to the Kubernetes 1.30 OpenAPI); the verbs and
resources are derived from the recorded requests, as the API server's authorizer derives them
(GET item: get, GET collection: list, POST: create, DELETE: delete; a subresource is
`resource/sub`), and compared with the rendered chart's Role (namespaced calls) and ClusterRole
(cluster-scoped calls): nothing used is missing, nothing granted is unused.

Admission: the chart's ValidatingAdmissionPolicy is evaluated here with a CEL implementation
(`common-expression-language`, the cel-rust bindings; no API server can run on this machine, so the
policy's CEL runs outside one): the launcher's own TrainJobs pass, a TrainJob naming another image,
runtime, a privileged Secret, an initializer or a runtime patch beyond placement is denied.
"""

from __future__ import annotations

from typing import Any

import cel
import pytest
from support.chart_support import NAMESPACE, render
from support.kube_standin import FAILURE, LOG, NS, OOM_LOG, SUCCESS, KubeStandIn

from rewardops.k8s.launcher import TrainJobFailed, TrainJobLauncher, api_client
from rewardops.k8s.schema import PLACEMENT_FIELDS, load_openapi_schema
from rewardops.k8s.trainjob import CONTENT_LABEL, S3Credentials, TrainJobRequest, build_trainjob

CHART_ENV = {"REWARDOPS_DEEPSPEED_RUNTIME": "rewardops-deepspeed", "REWARDOPS_TORCH_RUNTIME": "rewardops-torch",
             "REWARDOPS_TRAINING_IMAGE": "ghcr.io/rewardops/training:0.1.0", "REWARDOPS_S3_SECRET": "rewardops-s3",
             "REWARDOPS_MLFLOW_AUTH_SECRET": "rewardops-mlflow-client"}
PRIVILEGED = ("rewardops-minio-root", "rewardops-mlflow-server", "rewardops-postgresql")


class Quiet:
    def state(self, text: str) -> None: ...

    def progress(self, *args: Any) -> None: ...

    def log(self, line: str) -> None: ...


@pytest.fixture()
def chart_env(monkeypatch):
    for key, value in CHART_ENV.items():
        monkeypatch.setenv(key, value)


def launcher_manifest(framework: str, content: str) -> dict[str, Any]:
    return build_trainjob(TrainJobRequest(
        name=f"rm-{framework}", train_args=["train", "--config-json", "{}"], framework=framework, num_nodes=2,
        gpus_per_node=8, namespace=NS, mlflow_tracking_uri="http://mlflow:5000", s3=S3Credentials("rewardops-s3"),
        mlflow_auth_secret="rewardops-mlflow-client", labels={CONTENT_LABEL: content}))


def rule_of(method: str, path: str, query: dict[str, list[str]]) -> tuple[str, str, str, str, str | None]:
    """(scope, apiGroup, resource[/subresource], verb, name) as the API server's authorizer sees the request."""
    parts = [p for p in path.strip("/").split("/") if p]
    group, rest = ("", parts[2:]) if parts[0] == "api" else (parts[1], parts[3:])
    scope = "namespaced" if rest[:1] == ["namespaces"] else "cluster"
    if scope == "namespaced":
        rest = rest[2:]
    resource, name, sub = rest[0], (rest[1] if len(rest) > 1 else None), (rest[2] if len(rest) > 2 else None)
    verb = {"POST": "create", "DELETE": "delete", "PUT": "update", "PATCH": "patch"}.get(method)
    if verb is None:
        verb = "get" if name else ("watch" if query.get("watch", [""])[0] in ("true", "True", "1") else "list")
    return scope, group, f"{resource}/{sub}" if sub else resource, verb, name


def recorded_calls() -> list[tuple[str, str, str, str, str | None]]:
    calls = []
    for framework, content in (("deepspeed", "c1"), ("torch", "c2")):
        with KubeStandIn(SUCCESS, LOG, runtimes=("rewardops-deepspeed", "rewardops-torch")) as standin:
            launcher = TrainJobLauncher(api_client(host=standin.url), namespace=NS, poll_interval=0.02)
            launcher.run(launcher_manifest(framework, content), reporter=Quiet(), s3=S3Credentials("rewardops-s3"),
                         timeout_s=30)
            calls += [rule_of(r.method, r.path, r.query) for r in standin.requests]
    with KubeStandIn(FAILURE, OOM_LOG, later=SUCCESS, runtimes=("rewardops-deepspeed",)) as standin:  # replaced on retry
        launcher = TrainJobLauncher(api_client(host=standin.url), namespace=NS, poll_interval=0.02)
        with pytest.raises(TrainJobFailed):
            launcher.run(launcher_manifest("deepspeed", "c3"), reporter=Quiet(), timeout_s=30)
        launcher.run(launcher_manifest("deepspeed", "c3"), reporter=Quiet(), timeout_s=30)
        calls += [rule_of(r.method, r.path, r.query) for r in standin.requests]
    return calls


def granted(docs: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], set[str] | None]:
    """(scope, group, resource, verb) -> resourceNames (None: any) the launcher account is bound to."""
    bound = {(d["roleRef"]["kind"], d["roleRef"]["name"]) for d in docs
             if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
             and any(s["name"] == "rewardops-trainjob-launcher" for s in d["subjects"])}
    grants: dict[tuple[str, str, str, str], set[str] | None] = {}
    for doc in docs:
        if doc["kind"] not in ("Role", "ClusterRole") or (doc["kind"], doc["metadata"]["name"]) not in bound:
            continue
        if doc["kind"] == "Role" and doc["metadata"]["name"] != "rewardops-launcher":
            continue  # KFP's runner role lives outside the chart (kfpRunnerRole)
        scope = "namespaced" if doc["kind"] == "Role" else "cluster"
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        names = set(rule["resourceNames"]) if "resourceNames" in rule else None
                        grants[(scope, group, resource, verb)] = names
    return grants


def test_the_chart_grants_exactly_the_calls_the_launcher_makes(chart_env):
    calls = recorded_calls()
    used = {call[:4] for call in calls}
    grants = granted(render())
    assert used == set(grants), (f"used but not granted: {sorted(used - set(grants))}; "
                                 f"granted but unused: {sorted(set(grants) - used)}")
    for scope, group, resource, verb, name in calls:
        names = grants[(scope, group, resource, verb)]
        assert names is None or name in names, f"{verb} {resource}/{name} outside resourceNames {names}"
    # the preflight's cluster-scoped reads, the Secret read by name, no watch
    assert ("cluster", "", "nodes", "list") in used and ("namespaced", "", "secrets", "get") in used
    assert ("cluster", "trainer.kubeflow.org", "clustertrainingruntimes", "get") in used
    assert grants[("namespaced", "", "secrets", "get")] == {"rewardops-s3"}
    assert not any(verb == "watch" for *_, verb in grants)


# -- admission: the chart's ValidatingAdmissionPolicy, evaluated ---------------------------------

def admission_policy(docs: list[dict[str, Any]] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = docs if docs is not None else render()
    (policy,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"]
    (binding,) = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    return policy, binding


def denials(policy: dict[str, Any], trainjob: dict[str, Any]) -> list[str]:
    variables = {v["name"]: cel.evaluate(v["expression"], {}) for v in policy["spec"]["variables"]}
    context = {"object": trainjob, "variables": variables}
    return [v["message"] for v in policy["spec"]["validations"] if cel.evaluate(v["expression"], context) is not True]


def test_the_admission_policy_binds_trainjobs_in_the_release_namespace_and_denies():
    policy, binding = admission_policy()
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert (rule["apiGroups"], rule["resources"], sorted(rule["operations"])) == \
        (["trainer.kubeflow.org"], ["trainjobs"], ["CREATE", "UPDATE"])
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"] == \
        {"kubernetes.io/metadata.name": NAMESPACE}
    variables = {v["name"]: cel.evaluate(v["expression"], {}) for v in policy["spec"]["variables"]}
    assert not set(variables["secrets"]) & set(PRIVILEGED)  # privileged Secrets are never referenceable


@pytest.mark.parametrize("framework", ["deepspeed", "torch"])
def test_the_launchers_own_trainjobs_pass_the_admission_policy(chart_env, framework):
    policy, _ = admission_policy()
    assert denials(policy, launcher_manifest(framework, "c0")) == []


def _mutated(kind: str) -> dict[str, Any]:
    job = launcher_manifest("deepspeed", "c0")
    spec = job["spec"]
    if kind == "image":
        spec["trainer"]["image"] = "docker.io/attacker/printenv:latest"
    elif kind == "runtime":
        spec["runtimeRef"]["name"] = "deepspeed-distributed"
    elif kind in PRIVILEGED:
        spec["trainer"]["env"].append({"name": "X", "valueFrom": {"secretKeyRef": {"name": kind, "key": "password"}}})
    elif kind == "initializer":
        spec["initializer"] = {"model": {"storageUri": "hf://x", "secretRef": {"name": "rewardops-postgresql"}}}
    elif kind == "manager":
        spec["runtimePatches"][0]["manager"] = "someone"
    else:  # a pod-spec field of the runtime patch other than placement
        pod = spec["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
        pod["template"]["spec"]["template"]["spec"][kind] = [{"name": "x"}]
    return job


PATCH_FIELDS = sorted(set(load_openapi_schema()["properties"]["spec"]["properties"]["runtimePatches"]["items"]
                          ["properties"]["trainingRuntimeSpec"]["properties"]["template"]["properties"]["spec"]
                          ["properties"]["replicatedJobs"]["items"]["properties"]["template"]["properties"]["spec"]
                          ["properties"]["template"]["properties"]["spec"]["properties"]) - PLACEMENT_FIELDS)


@pytest.mark.parametrize("kind", ["image", "runtime", *PRIVILEGED, "initializer", "manager", *PATCH_FIELDS])
def test_the_admission_policy_denies_a_trainjob_reaching_beyond_the_chart(chart_env, kind):
    """Every pod-spec field a Trainer v2.3.0 runtime patch may carry, except placement, is denied
    (the list comes from the vendored CRD, so a new field in a newer CRD shows up here)."""
    policy, _ = admission_policy()
    assert denials(policy, _mutated(kind)), kind
