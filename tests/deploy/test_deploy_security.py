"""Least privilege, release isolation and no inlined secrets, on every rendered profile.

Offline (no API server can run here): checks of `helm template` output. The values that would
break these properties are refused by the chart (test_deploy_bad_values.py style, at the end).
"""

from __future__ import annotations

import json
import re

import pytest

from support.chart_support import KIND_VALUES, NAMESPACE, PRODUCTION_VALUES, helm, name_of, pod_templates, render, template, CHART, KUBE_VERSION

PROFILES = {"default": (), "production": (PRODUCTION_VALUES,), "kind": (KIND_VALUES,)}
ALL_ON = ("judge.enabled=true", "judge.gpus=1", "mlflow.ingress.enabled=true", "mlflow.ingress.host=mlflow.local")


@pytest.fixture(scope="module", params=sorted(PROFILES) + ["all-on"])
def docs(request: pytest.FixtureRequest) -> tuple[str, list[dict]]:
    if request.param == "all-on":
        return request.param, render(set_values=ALL_ON)
    return request.param, render(*PROFILES[request.param])


def _secret_refs(node):
    """(secret name, key or None) of every secretKeyRef / secretRef / secret volume below node."""
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]
        if "secretRef" in node:
            yield node["secretRef"]["name"], None
        if "secret" in node and isinstance(node["secret"], dict) and "secretName" in node["secret"]:
            yield node["secret"]["secretName"], None
        for value in node.values():
            yield from _secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_refs(item)


def test_only_minio_holds_the_root_credentials(docs) -> None:
    label, rendered = docs
    root = "rewardops-minio-root"
    holders = {tpl.owner for tpl in pod_templates(rendered) if any(name == root for name, _ in _secret_refs(tpl.spec))}
    if label == "production":
        assert not holders  # no MinIO at all
    else:
        assert holders == {"StatefulSet/rewardops-minio"}, holders
    # The clients' S3 pair is never MinIO's root pair, and MinIO itself runs as the root pair.
    for tpl in pod_templates(rendered):
        for container in tpl.containers():
            env = {e["name"]: e for e in container.get("env", [])}
            for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                if var in env:
                    assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "rewardops-s3", f"{tpl.owner}: {var}"
            if "MINIO_ROOT_USER" in env:
                assert tpl.owner == "StatefulSet/rewardops-minio"


def test_client_policy_is_bucket_scoped() -> None:
    docs = render()
    (config,) = [d for d in docs if name_of(d) == "ConfigMap/rewardops-minio-policy"]
    policy = json.loads(config["data"]["policy.json"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    resources = {r for s in policy["Statement"] for r in s["Resource"]}
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    assert not any("*" in a or a.startswith("admin:") for a in actions), actions
    assert resources == {"arn:aws:s3:::rewardops-mlflow", "arn:aws:s3:::rewardops-dvc", "arn:aws:s3:::rewardops-checkpoints",
                         "arn:aws:s3:::rewardops-mlflow/artifacts/*", "arn:aws:s3:::rewardops-dvc/dvc/*",
                         "arn:aws:s3:::rewardops-checkpoints/*"}
    minio = next(d for d in docs if name_of(d) == "StatefulSet/rewardops-minio")
    bootstrap = next(c for c in minio["spec"]["template"]["spec"]["containers"] if c["name"] == "bootstrap")
    script = bootstrap["args"][0]
    for step in ("mc admin policy create", "mc admin user add", "mc admin policy attach", "mc mb --ignore-existing"):
        assert step in script, step
    # The README shows the same policy for IAM.
    readme = (CHART / "README.md").read_text()
    for resource in resources:
        assert resource in readme, resource


def test_every_role_binding_names_only_our_dedicated_accounts(docs) -> None:
    """KFP's runner role goes to the pipeline account, the launcher's roles to the launcher account
    (whose token only the launch step mounts); nothing else is bound."""
    label, rendered = docs
    accounts = {(d["metadata"]["name"], d["metadata"].get("namespace", NAMESPACE))
                for d in rendered if d["kind"] == "ServiceAccount"}
    bindings = [d for d in rendered if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}]
    assert bindings, label
    by_name = {name_of(d): d for d in rendered}
    for binding in bindings:
        if binding["kind"] == "ClusterRoleBinding":
            # the one cluster-wide grant: read-only, by name where a name exists (runtimes), nodes' list
            role = by_name[f"ClusterRole/{binding['roleRef']['name']}"]
            verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
            assert verbs <= {"get", "list"}, f"{label}: {name_of(role)} grants {verbs}"
            assert {r for rule in role["rules"] for r in rule["resources"]} == {"clustertrainingruntimes", "nodes"}
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount", subject
            expected = "rewardops-pipeline" if binding["metadata"]["name"] == "rewardops-pipeline-kfp" \
                else "rewardops-trainjob-launcher"
            assert subject["name"] == expected, f"{label} {name_of(binding)}: {subject}"
            assert (subject["name"], subject["namespace"]) in accounts


def test_default_deny_selects_every_pod(docs) -> None:
    label, rendered = docs
    policies = [d for d in rendered if d["kind"] == "NetworkPolicy"]
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert len(deny) == 1, f"{label}: no namespace-wide default-deny NetworkPolicy"
    dns = [p for p in policies if p["spec"]["podSelector"] == {} and p["spec"].get("egress")]
    assert len(dns) == 1 and {port["port"] for port in dns[0]["spec"]["egress"][0]["ports"]} == {53}
    # Nothing else opens the namespace wide: every other policy selects specific pods and peers.
    for policy in policies:
        if policy in deny or policy in dns:
            continue
        assert policy["spec"]["podSelector"], name_of(policy)
        for rule in policy["spec"].get("ingress", []):
            assert rule.get("from"), f"{name_of(policy)}: ingress from anywhere"
            assert {"podSelector": {}} not in rule["from"], f"{name_of(policy)}: ingress from every pod"


def test_network_allows_match_the_issue() -> None:
    docs = {name_of(d): d for d in render(set_values=ALL_ON) if d["kind"] == "NetworkPolicy"}
    kubeflow = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}}
    training = {"podSelector": {"matchLabels": {"rewardops.io/role": "training", "app.kubernetes.io/instance": "rewardops"}}}
    for service in ("mlflow", "minio"):
        peers = docs[f"NetworkPolicy/rewardops-{service}"]["spec"]["ingress"][0]["from"]
        assert kubeflow in peers and training in peers, service  # <- pipeline steps and training pods
    judge = docs["NetworkPolicy/rewardops-judge"]["spec"]["ingress"][0]["from"]
    assert judge == [kubeflow]  # <- curation steps (KFP pods) only
    egress = docs["NetworkPolicy/rewardops-training"]["spec"]["egress"]
    assert any(rule["ports"] == [{"protocol": "TCP", "port": 5000}] for rule in egress if "ports" in rule)


SECRETY_NAME = re.compile(r"(?i)(password|passwd|secret|token|api_?key|access_?key|credential|private_?key|dsn)")
URL_WITH_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s:]+:([^/@\s]+)@")


def _strings(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def test_no_secret_value_is_inlined(docs) -> None:
    label, rendered = docs
    # the only Secrets rendered are service-account token Secrets, which Kubernetes fills in
    assert all(d["type"] == "kubernetes.io/service-account-token" and not {"data", "stringData"} & set(d)
               for d in rendered if d["kind"] == "Secret")
    for doc in rendered:
        for path, value in _strings(doc):
            match = URL_WITH_PASSWORD.search(value)
            if match:  # only a kubelet-expanded reference may sit in a URL's password slot
                assert re.fullmatch(r"\$\([A-Z_]+\)", match.group(1)), f"{label} {name_of(doc)}{path}: {value}"
        if doc["kind"] == "ConfigMap":
            for key, value in doc["data"].items():
                if SECRETY_NAME.search(key):  # names of Secrets are fine, values are not
                    assert key.endswith("_SECRET") and re.fullmatch(r"[a-z0-9-]*", value), f"{name_of(doc)} {key}"
        for tpl in pod_templates([doc]):
            for container in tpl.containers():
                for env in container.get("env", []):
                    if SECRETY_NAME.search(env["name"]):
                        assert "value" not in env, f"{label} {tpl.owner}: {env['name']} inlined"
                for arg in [*container.get("command", []), *container.get("args", [])]:
                    assert not re.search(r"(?i)--(password|secret|token)[= ]\S", arg), f"{tpl.owner}: {arg}"


def test_mlflow_requires_credentials_everywhere_it_is_used(docs) -> None:
    label, rendered = docs
    mlflow = next(d for d in rendered if name_of(d) == "Deployment/rewardops-mlflow")
    server = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert "exec mlflow server --app-name basic-auth" in server["args"][0]
    env = {e["name"]: e for e in server["env"]}
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "rewardops-mlflow-server"
    # Clients (training pods, the test pod) carry the clients' account, never the admin's.
    for tpl in pod_templates(rendered):
        for container in tpl.containers():
            names = {e["name"]: e for e in container.get("env", [])}
            if "MLFLOW_TRACKING_URI" in names or "MLFLOW_URL" in names:
                if tpl.owner == "Job/rewardops-mlflow-users":
                    continue
                ref = names["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"]
                assert ref == {"name": "rewardops-mlflow-client", "key": "MLFLOW_TRACKING_PASSWORD"}, tpl.owner


def test_two_releases_do_not_clash() -> None:
    def objects(release: str, namespace: str) -> dict[tuple, dict]:
        result = helm("template", release, str(CHART), "--namespace", namespace, "--kube-version", KUBE_VERSION)
        assert result.returncode == 0, result.stderr
        found = {}
        for doc in result.documents:
            cluster_scoped = doc["kind"].startswith("Cluster")
            ns = None if cluster_scoped else doc["metadata"].get("namespace", namespace)
            found[(doc["kind"], ns, doc["metadata"]["name"])] = doc
        return found

    production = objects("rewardops", "rewardops")
    for namespace in ("rewardops-staging", "rewardops"):  # beside it, and even in the same namespace
        staging = objects("staging", namespace)
        clashes = set(production) & set(staging)
        # The only identical objects allowed: none. (kubeflow holds both releases' ConfigMaps and accounts.)
        assert not clashes, sorted(clashes)
        runtimes = {k[2] for k in staging if k[0] == "ClusterTrainingRuntime"}
        assert runtimes == {"staging-rewardops-deepspeed", "staging-rewardops-torch"}
        (client,) = [d for k, d in staging.items() if k[0] == "ConfigMap" and k[1] == namespace and k[2] == "staging-rewardops-client"]
        assert client["data"]["REWARDOPS_DEEPSPEED_RUNTIME"] == "staging-rewardops-deepspeed"
        assert client["data"]["REWARDOPS_TORCH_RUNTIME"] == "staging-rewardops-torch"
        assert client["data"]["REWARDOPS_PIPELINE_SERVICE_ACCOUNT"] == "staging-rewardops-pipeline"
        # Each release's policies select its own pods only.
        for key, doc in staging.items():
            if key[0] == "NetworkPolicy" and doc["spec"]["podSelector"]:
                selector = doc["spec"]["podSelector"]
                labels = selector.get("matchLabels", {})
                expressions = {e["key"]: e["values"] for e in selector.get("matchExpressions", [])}
                assert labels.get("app.kubernetes.io/instance") == "staging" or \
                    expressions.get("app.kubernetes.io/instance") == ["staging"], key


def test_migration_hook_runs_before_new_pods() -> None:
    for values, hooks in (((), {"pre-upgrade"}), ((PRODUCTION_VALUES,), {"pre-install", "pre-upgrade"})):
        docs = render(*values)
        job = next(d for d in docs if name_of(d) == "Job/rewardops-mlflow-db-upgrade")
        assert set(job["metadata"]["annotations"]["helm.sh/hook"].split(",")) == hooks
        account = next(d for d in docs if name_of(d) == "ServiceAccount/rewardops-mlflow-db-upgrade")
        assert int(account["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
        script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
        assert 'mlflow db upgrade "$MLFLOW_BACKEND_STORE_URI"' in script


# --- values that would undo the above are refused ----------------------------------------------


def _rejected(*sets: str, files=()) -> str:
    result = template(*files, set_values=sets)
    assert result.returncode != 0, f"accepted: {sets}"
    assert not result.stdout.strip()
    return result.stderr


def test_root_credentials_for_the_clients_are_refused() -> None:
    message = _rejected("objectStore.existingSecret=rewardops-minio-root")
    assert "objectStore.existingSecret=rewardops-minio-root is MinIO's root Secret (minio.auth.rootSecret)" in message
    assert "every pipeline step and training pod" in message


@pytest.mark.parametrize("account", ["pipeline-runner", "default", "default-editor"])
def test_launcher_role_on_a_shared_account_is_refused(account: str) -> None:
    message = _rejected("launcher.extraSubjects[0].kind=ServiceAccount", f"launcher.extraSubjects[0].name={account}",
                        "launcher.extraSubjects[0].namespace=kubeflow")
    assert f"launcher.extraSubjects[0]: kubeflow/{account} is a shared service account" in message
    assert "--service-account" in message
    ok = template(set_values=("launcher.extraSubjects[0].kind=ServiceAccount", "launcher.extraSubjects[0].name=notebook-rm",
                              "launcher.extraSubjects[0].namespace=research"))
    assert ok.returncode == 0, ok.stderr


def test_production_without_authentication_is_refused() -> None:
    message = _rejected("mlflow.auth.mode=none", files=(PRODUCTION_VALUES,))
    assert "mlflow.auth.mode=none with profile=production" in message and "basic-auth" in message
    assert template(set_values=("mlflow.auth.mode=none",)).returncode == 0  # a dev cluster may
    message = _rejected("mlflow.auth.mode=oauth2-proxy")
    assert "mlflow.auth.oauth2Proxy.extraArgs" in message


def test_runtime_names_are_not_settable() -> None:
    message = _rejected("trainingRuntimes.deepspeed.name=shared-deepspeed")
    assert "/trainingRuntimes/deepspeed" in message and "'name' not allowed" in message


def test_oauth2_proxy_mode_renders_a_sidecar() -> None:
    docs = render(set_values=("mlflow.auth.mode=oauth2-proxy", "mlflow.auth.oauth2Proxy.extraArgs[0]=--provider=oidc"))
    mlflow = next(d for d in docs if name_of(d) == "Deployment/rewardops-mlflow")
    containers = {c["name"]: c for c in mlflow["spec"]["template"]["spec"]["containers"]}
    assert "--host=127.0.0.1" in containers["mlflow"]["args"]  # only the proxy is reachable
    assert "--upstream=http://127.0.0.1:5000" in containers["oauth2-proxy"]["args"]
    service = next(d for d in docs if name_of(d) == "Service/rewardops-mlflow")
    assert service["spec"]["ports"][0]["targetPort"] == "proxy"
    assert not [d for d in docs if name_of(d) == "Job/rewardops-mlflow-users"]


def test_pipeline_account_gets_kfps_runner_role_in_client_namespaces() -> None:
    docs = render()
    binding = next(d for d in docs if name_of(d) == "RoleBinding/rewardops-pipeline-kfp")
    assert binding["metadata"]["namespace"] == "kubeflow"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pipeline-runner"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rewardops-pipeline", "namespace": "kubeflow"}]
    assert not [d for d in render(set_values=("pipelines.kfpRunnerRole.name=",)) if name_of(d) == "RoleBinding/rewardops-pipeline-kfp"]


@pytest.mark.parametrize("sets", [ALL_ON, ("mlflow.auth.mode=oauth2-proxy", "mlflow.auth.oauth2Proxy.extraArgs[0]=--provider=oidc"),
                                  ("mlflow.auth.mode=none",),
                                  ("networkPolicy.externalEgress[0].cidr=10.0.0.0/8", "networkPolicy.externalEgress[0].ports[0]=5432")],
                         ids=["all-on", "oauth2-proxy", "no-auth", "external-egress"])
def test_other_modes_render_valid_objects(sets: tuple[str, ...]) -> None:
    from support.chart_support import object_errors

    docs = render(set_values=sets)
    errors = [e for doc in docs for e in object_errors(doc)]
    assert not errors, "\n".join(errors)


TRAINJOB_RIGHTS = {("trainer.kubeflow.org", "trainjobs"), ("", "pods"), ("", "pods/log")}


def _rights_of(docs: list[dict], account: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) the chart grants `account` through its Role/ClusterRole bindings."""
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d["kind"] in ("Role", "ClusterRole")}
    rights = set()
    for binding in (d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if not any(s["name"] == account for s in binding["subjects"]):
            continue
        role = roles.get((binding["roleRef"]["kind"], binding["roleRef"]["name"]))
        for rule in (role or {}).get("rules", []):
            rights |= {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    return rights


def test_trainjob_and_pod_log_rights_belong_to_the_launcher_account_alone() -> None:
    """The pipeline service account (every step, and KFP's own launcher, runs as it) gets no
    TrainJob, pod or pod-log right from the chart; the dedicated launcher account does, and its
    token is a Secret of type service-account-token in every namespace pipeline pods run in."""
    docs = render()
    pipeline, launcher = _rights_of(docs, "rewardops-pipeline"), _rights_of(docs, "rewardops-trainjob-launcher")
    assert not {(g, r) for g, r, _ in pipeline} & TRAINJOB_RIGHTS, pipeline
    assert {("trainer.kubeflow.org", "trainjobs", v) for v in ("create", "get", "list", "delete")} <= launcher
    assert {("", "pods", "get"), ("", "pods", "list"), ("", "pods/log", "get")} <= launcher
    namespaces = {NAMESPACE, "kubeflow"}
    accounts = {d["metadata"]["namespace"]: d for d in docs if name_of(d) == "ServiceAccount/rewardops-trainjob-launcher"}
    assert set(accounts) == namespaces and all(a["automountServiceAccountToken"] is False for a in accounts.values())
    tokens = {d["metadata"]["namespace"]: d for d in docs if name_of(d) == "Secret/rewardops-trainjob-launcher-token"}
    assert set(tokens) == namespaces
    for token in tokens.values():
        assert token["type"] == "kubernetes.io/service-account-token"
        assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "rewardops-trainjob-launcher"
        assert "data" not in token and "stringData" not in token  # Kubernetes fills it in
    from rewardops.k8s.trainjob import LAUNCHER_TOKEN_SECRET

    assert LAUNCHER_TOKEN_SECRET == "rewardops-trainjob-launcher-token"  # what the compiled pipeline mounts
