"""Pod-security policy: every pod template the chart renders (Deployments, StatefulSets, Jobs, the
test Pod, and the pod templates inside the ClusterTrainingRuntimes) meets the restricted Pod
Security Standard and the chart's own rules: non-root, no privilege escalation, every capability
dropped, read-only root filesystem, RuntimeDefault seccomp, CPU and memory requests and limits,
no API token where the pod does not call the API, pinned images.
"""

from __future__ import annotations

import pytest

from support.chart_support import KIND_VALUES, PRODUCTION_VALUES, PodTemplate, pod_templates, render

# Volume types the restricted Pod Security Standard allows.
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                      "projected", "secret", "name"}

RENDERS = {
    "default": (),
    "production": (PRODUCTION_VALUES,),
    "kind": (KIND_VALUES,),
    # Everything optional switched on, so no template escapes the policy.
    "all-on": ("--set", "judge.enabled=true", "--set", "judge.gpus=2", "--set", "mlflow.replicas=3",
               "--set", "mlflow.ingress.enabled=true", "--set", "mlflow.ingress.host=mlflow.local",
               "--set", "judge.modelCache.persistence.enabled=true",
               "--set", "judge.modelCache.persistence.storageClassName=standard",
               "--set", "trainingRuntimes.gpusPerNode=4", "--set", "imagePullSecrets[0]=regcred"),
}


def _render(key: str) -> list[dict]:
    spec = RENDERS[key]
    files = tuple(p for p in spec if not isinstance(p, str))
    sets = tuple(spec[i + 1] for i, p in enumerate(spec) if p == "--set")
    return render(*files, set_values=sets)


@pytest.fixture(scope="module", params=sorted(RENDERS))
def templates(request: pytest.FixtureRequest) -> tuple[str, list[PodTemplate]]:
    found = pod_templates(_render(request.param))
    return request.param, found


def test_policy_covers_every_workload(templates: tuple[str, list[PodTemplate]]) -> None:
    label, found = templates
    owners = {t.owner.split("[")[0] for t in found}
    assert "Deployment/rewardops-mlflow" in owners
    assert "ClusterTrainingRuntime/rewardops-deepspeed" in owners
    if label == "all-on":
        assert {"Deployment/rewardops-judge", "StatefulSet/rewardops-minio", "StatefulSet/rewardops-postgresql",
                "Job/rewardops-mlflow-db-upgrade", "Job/rewardops-mlflow-users", "Pod/rewardops-test"} <= owners


def test_pod_security_context(templates: tuple[str, list[PodTemplate]]) -> None:
    label, found = templates
    for tpl in found:
        where = f"{label} {tpl.owner}"
        psc = tpl.spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True, f"{where}: pod securityContext.runAsNonRoot"
        assert isinstance(psc.get("runAsUser"), int) and psc["runAsUser"] > 0, f"{where}: runAsUser must be a non-root UID"
        assert psc.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{where}: seccompProfile"
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not tpl.spec.get(key), f"{where}: {key}"
        assert tpl.spec.get("automountServiceAccountToken") is False, f"{where}: mounts an API token it never uses"
        for volume in tpl.spec.get("volumes", []):
            assert set(volume) <= RESTRICTED_VOLUMES, f"{where}: volume {volume['name']} of a forbidden type"


def test_container_security_context(templates: tuple[str, list[PodTemplate]]) -> None:
    label, found = templates
    for tpl in found:
        for container in tpl.containers():
            where = f"{label} {tpl.owner} container {container['name']}"
            sc = container.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}: capabilities.drop"
            assert not sc.get("capabilities", {}).get("add"), f"{where}: capabilities.add"
            assert sc.get("privileged") in (None, False), f"{where}: privileged"
            assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
            assert sc.get("runAsNonRoot", tpl.spec["securityContext"].get("runAsNonRoot")) is True, where
            assert sc.get("seccompProfile", {"type": "RuntimeDefault"}) == {"type": "RuntimeDefault"}, where
            assert "runAsUser" not in sc or sc["runAsUser"] > 0, f"{where}: runAsUser 0"


def test_read_only_root_has_writable_scratch(templates: tuple[str, list[PodTemplate]]) -> None:
    """A read-only root filesystem works only if /tmp (and HOME, where set) are volumes."""
    label, found = templates
    for tpl in found:
        for container in tpl.containers():
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            where = f"{label} {tpl.owner} container {container['name']}"
            assert "/tmp" in mounts, f"{where}: no writable /tmp"
            home = {e["name"]: e.get("value") for e in container.get("env", [])}.get("HOME")
            if home:
                assert any(home == m or home.startswith(m + "/") or m.startswith(home + "/") for m in mounts), \
                    f"{where}: HOME={home} is not on a volume"


def test_resources_requests_and_limits(templates: tuple[str, list[PodTemplate]]) -> None:
    label, found = templates
    for tpl in found:
        for container in tpl.containers():
            where = f"{label} {tpl.owner} container {container['name']}"
            resources = container.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resources.get(kind, {}).get(resource) not in (None, "", 0), f"{where}: {kind}.{resource}"
            for name, value in resources.get("limits", {}).items():
                if name.endswith("/gpu"):  # extended resources: request must equal limit
                    assert resources["requests"].get(name) == value, f"{where}: {name} request != limit"


def test_images_are_pinned(templates: tuple[str, list[PodTemplate]]) -> None:
    label, found = templates
    for tpl in found:
        for container in tpl.containers():
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and tag and "/" not in tag and tag != "latest", f"{label} {tpl.owner}: image {image} is not pinned"
