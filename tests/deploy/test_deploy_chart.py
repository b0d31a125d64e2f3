"""The Helm chart lints, renders with the default, production and kind values, and every rendered
object is valid: built-in kinds against the Kubernetes 1.35 OpenAPI schema (kubernetes-validate,
strict), the ClusterTrainingRuntimes against the Kubeflow Trainer CRD schema.

No API server can run here: these checks are offline, which is what `kubectl apply --dry-run=client`
plus server-side strict field validation would enforce, minus admission webhooks.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from support.chart_support import (
    CHART,
    KIND_VALUES,
    NAMESPACE,
    PRODUCTION_VALUES,
    helm,
    name_of,
    object_errors,
    render,
    training_runtime_errors,
    kubernetes_errors,
)

VALUE_SETS = {"default": (), "production": (PRODUCTION_VALUES,), "kind": (KIND_VALUES,)}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    return request.param, render(*VALUE_SETS[request.param])


@pytest.mark.parametrize("values", [(), (PRODUCTION_VALUES,), (KIND_VALUES,)], ids=["default", "production", "kind"])
def test_helm_lint_passes_strict(values: tuple[Path, ...]) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", "1.35.0"]
    for path in values:
        args += ["--values", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_every_object_validates_against_its_schema(rendered: tuple[str, list[dict]]) -> None:
    label, docs = rendered
    errors = [e for doc in docs for e in object_errors(doc)]
    assert not errors, f"{label} values:\n" + "\n".join(errors)


def test_expected_objects_are_rendered(rendered: tuple[str, list[dict]]) -> None:
    label, docs = rendered
    kinds = {name_of(d) for d in docs}
    for expected in ("Deployment/rewardops-mlflow", "Service/rewardops-mlflow", "Role/rewardops-launcher",
                     "RoleBinding/rewardops-launcher", "ServiceAccount/rewardops-pipeline",
                     "ServiceAccount/rewardops-trainjob-launcher", "Secret/rewardops-trainjob-launcher-token",
                     "ClusterTrainingRuntime/rewardops-deepspeed", "ClusterTrainingRuntime/rewardops-torch",
                     "NetworkPolicy/rewardops-mlflow", "NetworkPolicy/rewardops-training",
                     "NetworkPolicy/rewardops-default-deny", "NetworkPolicy/rewardops-dns",
                     "Job/rewardops-mlflow-db-upgrade", "Job/rewardops-mlflow-users",
                     "ConfigMap/rewardops-client"):
        assert expected in kinds, f"{label}: {expected} missing from {sorted(kinds)}"
    if label == "production":
        assert "Deployment/rewardops-judge" in kinds and "Ingress/rewardops-mlflow" in kinds
        assert "PodDisruptionBudget/rewardops-mlflow" in kinds
        assert not any(k.startswith(("StatefulSet/rewardops-minio", "StatefulSet/rewardops-postgresql")) for k in kinds)
    else:
        assert "StatefulSet/rewardops-minio" in kinds and "StatefulSet/rewardops-postgresql" in kinds
        assert "ConfigMap/rewardops-minio-policy" in kinds
        assert "Deployment/rewardops-judge" not in kinds


def test_no_secret_objects_and_every_secret_is_a_reference(rendered: tuple[str, list[dict]]) -> None:
    label, docs = rendered
    assert all(d["type"] == "kubernetes.io/service-account-token" and not {"data", "stringData"} & set(d)
               for d in docs if d["kind"] == "Secret"), \
        "the chart must reference Secrets, never create them (a service-account token Secret, empty, is filled by Kubernetes)"
    for doc in docs:
        for env in _all_env(doc):
            name = env["name"]
            if any(word in name for word in ("PASSWORD", "SECRET", "TOKEN", "API_KEY")):
                assert "value" not in env, f"{label} {name_of(doc)}: {name} inlined"
                ref = env["valueFrom"]["secretKeyRef"]
                assert ref["name"] and ref["key"], f"{label} {name_of(doc)}: {name} has an empty reference"


def test_env_references_are_defined_before_use(rendered: tuple[str, list[dict]]) -> None:
    """The kubelet expands $(VAR) only from variables defined earlier in the same list."""
    import re

    label, docs = rendered
    for doc in docs:
        for container_env in _container_envs(doc):
            defined: set[str] = set()
            for env in container_env:
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", env.get("value", "")):
                    assert ref in defined, f"{label} {name_of(doc)}: {env['name']} uses $({ref}) before it is defined"
                defined.add(env["name"])


def test_mlflow_is_wired_to_postgres_and_s3_by_default() -> None:
    docs = render()
    mlflow = _by_name(docs, "Deployment/rewardops-mlflow")
    env = {e["name"]: e for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"] == (
        "postgresql+psycopg2://mlflow:$(MLFLOW_DB_PASSWORD)@rewardops-postgresql:5432/mlflow")
    assert env["MLFLOW_DB_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "rewardops-postgresql", "key": "password"}
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"] == "s3://rewardops-mlflow/artifacts"
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == f"http://rewardops-minio.{NAMESPACE}.svc:9000"
    hosts = env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")
    # MLflow 3 rejects Host headers outside this list: in-cluster names must be there.
    assert f"rewardops-mlflow.{NAMESPACE}.svc:5000" in hosts and "localhost:*" in hosts


def test_production_mlflow_reads_its_dsn_from_a_secret() -> None:
    docs = render(PRODUCTION_VALUES)
    mlflow = _by_name(docs, "Deployment/rewardops-mlflow")
    env = {e["name"]: e for e in mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {"name": "rewardops-mlflow-db", "key": "dsn"}
    assert "AWS_SECRET_ACCESS_KEY" not in env  # workload identity: no key pair at all
    assert "mlflow.example.com" in env["MLFLOW_SERVER_ALLOWED_HOSTS"]["value"].split(",")


def test_launcher_role_is_limited_to_its_calls_and_bound_to_the_launcher_account_only() -> None:
    """What the grants are (test_rbac_calls.py derives them from the launcher's recorded calls)."""
    docs = render()
    role = _by_name(docs, "Role/rewardops-launcher")
    grants = {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}
    assert set(grants) == {("trainer.kubeflow.org", "trainjobs"), ("", "pods"), ("", "pods/log"), ("", "secrets")}
    assert grants[("", "pods")] == {"get", "list"}
    assert grants[("", "pods/log")] == {"get"}
    assert grants[("trainer.kubeflow.org", "trainjobs")] == {"create", "get", "list", "delete"}
    (secrets,) = [rule for rule in role["rules"] if rule["resources"] == ["secrets"]]
    assert secrets["resourceNames"] == ["rewardops-s3"] and secrets["verbs"] == ["get"]
    assert not any("*" in verbs for verbs in grants.values())
    binding = _by_name(docs, "RoleBinding/rewardops-launcher")
    subjects = {(s["name"], s["namespace"]) for s in binding["subjects"]}
    # Only the chart's dedicated launcher account (its token mounted by the launch step alone), in the
    # release namespace and KFP's namespace; never the pipeline account every step runs as.
    assert subjects == {("rewardops-trainjob-launcher", NAMESPACE), ("rewardops-trainjob-launcher", "kubeflow")}
    accounts = {(d["metadata"]["name"], d["metadata"].get("namespace", NAMESPACE)) for d in docs
                if d["kind"] == "ServiceAccount"}
    assert subjects <= accounts, "the chart creates every account it binds"
    # the preflight's cluster-scoped reads: this release's runtimes by name, the nodes' GPUs
    cluster_role = _by_name(docs, f"ClusterRole/{NAMESPACE}-rewardops-launcher")
    assert cluster_role["rules"] == [
        {"apiGroups": ["trainer.kubeflow.org"], "resources": ["clustertrainingruntimes"],
         "resourceNames": ["rewardops-deepspeed", "rewardops-torch"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]
    cluster_binding = _by_name(docs, f"ClusterRoleBinding/{NAMESPACE}-rewardops-launcher")
    assert {(s["name"], s["namespace"]) for s in cluster_binding["subjects"]} == subjects
    assert [name_of(d) for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}] == [
        f"ClusterRole/{NAMESPACE}-rewardops-launcher", f"ClusterRoleBinding/{NAMESPACE}-rewardops-launcher"]


def test_deepspeed_runtime_follows_the_trainer_mpi_shape() -> None:
    runtime = _by_name(render(), "ClusterTrainingRuntime/rewardops-deepspeed")
    mpi = runtime["spec"]["mlPolicy"]["mpi"]
    assert mpi == {"numProcPerNode": 1, "mpiImplementation": "OpenMPI",
                   "sshAuthMountPath": "/home/mpiuser/.ssh", "runLauncherAsNode": True}
    jobs = {rj["name"]: rj for rj in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    assert list(jobs) == ["node", "launcher"]
    assert jobs["launcher"]["dependsOn"] == [{"name": "node", "status": "Ready"}]
    node = jobs["node"]["template"]["spec"]["template"]["spec"]["containers"][0]
    assert node["command"] == ["/usr/sbin/sshd"] and node["readinessProbe"]["tcpSocket"]["port"] == 2222
    assert runtime["metadata"]["labels"]["trainer.kubeflow.org/framework"] == "deepspeed"


def test_production_runtimes_request_gpus() -> None:
    docs = render(PRODUCTION_VALUES)
    runtime = _by_name(docs, "ClusterTrainingRuntime/rewardops-deepspeed")
    assert runtime["spec"]["mlPolicy"]["mpi"]["numProcPerNode"] == 8
    for rj in runtime["spec"]["template"]["spec"]["replicatedJobs"]:
        resources = rj["template"]["spec"]["template"]["spec"]["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == 8 and resources["requests"]["nvidia.com/gpu"] == 8
    judge = _by_name(docs, "Deployment/rewardops-judge")["spec"]["template"]["spec"]["containers"][0]
    assert judge["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "--tensor-parallel-size=1" in judge["args"]


def test_network_policies_isolate_the_database() -> None:
    docs = render()
    policy = _by_name(docs, "NetworkPolicy/rewardops-postgresql")
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "rewardops", "app.kubernetes.io/instance": "rewardops",
        "app.kubernetes.io/component": component}}} for component in ("mlflow", "mlflow-db-upgrade")]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    mlflow = _by_name(docs, "NetworkPolicy/rewardops-mlflow")
    peers = mlflow["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}} in peers
    # Every long-running pod is selected by some NetworkPolicy of its own (besides the default deny).
    selectors = [p["spec"]["podSelector"]["matchLabels"] for p in docs
                 if p["kind"] == "NetworkPolicy" and p["spec"]["podSelector"].get("matchLabels")]
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert any(all(labels.get(k) == v for k, v in sel.items()) for sel in selectors), name_of(doc)


def test_schema_validator_is_not_vacuous() -> None:
    """A broken manifest must fail: guards against validators that silently accept anything."""
    docs = render()
    runtime = copy.deepcopy(_by_name(docs, "ClusterTrainingRuntime/rewardops-deepspeed"))
    runtime["spec"]["mlPolicy"]["mpi"]["sshAuthMountPaht"] = "/typo"
    runtime["spec"]["mlPolicy"]["torch"] = {}
    pod = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    pod["containers"][0]["securityContext"]["runAsNonroot"] = True
    errors = "\n".join(training_runtime_errors(runtime))
    assert "sshAuthMountPaht" in errors and "only one of the policy" in errors and "runAsNonroot" in errors
    deployment = copy.deepcopy(_by_name(docs, "Deployment/rewardops-mlflow"))
    deployment["spec"]["replicas"] = "two"
    assert kubernetes_errors(deployment)


def _by_name(docs: list[dict], name: str) -> dict:
    matches = [d for d in docs if name_of(d) == name]
    assert len(matches) == 1, f"{name}: found {len(matches)}"
    return matches[0]


def _container_envs(doc: dict):
    from support.chart_support import pod_templates

    for tpl in pod_templates([doc]):
        for container in tpl.containers():
            yield container.get("env", [])


def _all_env(doc: dict):
    for env in _container_envs(doc):
        yield from env


def _schema_paths(node: dict, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for key, sub in (node.get("properties") or {}).items():
        path = f"{prefix}.{key}" if prefix else key
        paths.add(path)
        if "$ref" in sub:
            continue  # shared shapes (image, resources, persistence...) are shown once in values.yaml
        paths |= _schema_paths(sub, path)
    return paths


def _value_paths(node: object, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    if isinstance(node, dict):
        for key, sub in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= _value_paths(sub, path)
    return paths


def test_every_schema_option_is_documented_in_values_yaml() -> None:
    import json

    import yaml

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = _schema_paths(schema) - _value_paths(values) - {"global"}
    assert not missing, f"options the schema accepts but values.yaml does not show: {sorted(missing)}"
    readme = (CHART / "README.md").read_text()
    assert not [k for k in values if f"`{k}`" not in readme], "README must list every top-level section"
