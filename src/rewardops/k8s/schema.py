"""Validate a TrainJob manifest against the Kubeflow Trainer CRD schema and the cluster's policy.

The CRD (`crds/trainer.kubeflow.org_trainjobs.yaml`, Trainer v2.3.0 verbatim; crds/README.md) has a
structural OpenAPI schema; we check it with `jsonschema` after three translations that make the
check as strict as `kubectl apply` with `fieldValidation=Strict`: unknown fields are errors (the
API server's default, `Warn`, would drop them with a warning), `int32` fields get their range, and
`x-kubernetes-list-type: map` lists must not repeat a key (two `env` entries with one name). The
CEL rules that apply on create (`metadata.name`, `managedBy`, `storageUri`) are checked by hand.

`TrainJobPolicy` is what this cluster lets a TrainJob reach: the chart's training image(s), its
ClusterTrainingRuntimes and the client Secrets the chart names. A job that names another image,
runtime or Secret, or patches anything but placement into the runtime, could print any Secret of
the namespace into a log its creator can read; `validate_trainjob(..., policy=...)` refuses it, and
the chart's ValidatingAdmissionPolicy (templates/trainjob-admission.yaml) refuses the same at the
API server for TrainJobs created without the launcher.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from rewardops.errors import ConfigError

CRD_DIR = Path(__file__).with_name("crds")
TRAINJOB_SCHEMA_FILE = CRD_DIR / "trainer.kubeflow.org_trainjobs.yaml"
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
RFC1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MANAGED_BY = ("trainer.kubeflow.org/trainjob-controller", "kueue.x-k8s.io/multikueue")
STORAGE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://.+$")
# The one runtime patch the launcher writes (placement of the GPU pods) and the pod-spec fields it may set.
PLACEMENT_MANAGER = "rewardops.io/train-launcher"
PLACEMENT_FIELDS = frozenset({"tolerations", "nodeSelector"})


class ManifestInvalid(ConfigError):
    """A manifest the Trainer API server would reject; `errors` lists `path: reason` lines."""

    def __init__(self, what: str, errors: list[str]):
        self.errors = errors
        super().__init__(f"{what} is not a valid TrainJob for this cluster:\n  " + "\n  ".join(errors))


def load_openapi_schema(path: Path = TRAINJOB_SCHEMA_FILE, version: str = "v1alpha1") -> dict[str, Any]:
    """The `openAPIV3Schema` of a CustomResourceDefinition YAML (or of a file holding only it); a copy
    of the parsed file, which is read once per process."""
    return copy.deepcopy(_openapi_schema(path, version))


@lru_cache(maxsize=8)
def _openapi_schema(path: Path, version: str) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if doc.get("kind") == "CustomResourceDefinition":
        for entry in doc["spec"]["versions"]:
            if entry["name"] == version:
                return entry["schema"]["openAPIV3Schema"]
        raise ValueError(f"{path}: no version {version!r} in the CRD")
    if "openAPIV3Schema" not in doc:
        raise ValueError(f"{path}: neither a CustomResourceDefinition nor a file with openAPIV3Schema")
    return doc["openAPIV3Schema"]


def to_json_schema(node: Any) -> Any:
    """Translate a structural schema into a strict JSON Schema (see the module docstring)."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_json_schema(value) for key, value in node.items() if not key.startswith("x-")}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if (
        node.get("type") == "object"
        and "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if node.get("type") == "integer" and node.get("format") in ("int32", "int64"):
        low, high = INT32 if node["format"] == "int32" else INT64
        out["minimum"] = max(node.get("minimum", low), low)
        out["maximum"] = min(node.get("maximum", high), high)
    return out


def _map_list_errors(schema: dict[str, Any], value: Any, path: str) -> list[str]:
    """Duplicate keys in `x-kubernetes-list-type: map` lists, recursively."""
    errors: list[str] = []
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        for key, sub in value.items():
            if key in schema["properties"]:
                errors += _map_list_errors(schema["properties"][key], sub, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and "items" in schema:
        keys = schema.get("x-kubernetes-list-map-keys")
        if schema.get("x-kubernetes-list-type") == "map" and keys:
            seen: set[tuple] = set()
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    ident = tuple(item.get(k) for k in keys)
                    if ident in seen:
                        errors.append(f"{path}[{i}]: duplicate entry with {dict(zip(keys, ident))}")
                    seen.add(ident)
        for i, item in enumerate(value):
            errors += _map_list_errors(schema["items"], item, f"{path}[{i}]")
    return errors


@lru_cache(maxsize=4)
def _validator(path: Path) -> tuple[jsonschema.protocols.Validator, dict[str, Any]]:
    raw = load_openapi_schema(path)
    validator_cls = jsonschema.validators.validator_for({"$schema": "https://json-schema.org/draft/2020-12/schema"})
    return validator_cls(to_json_schema(raw), format_checker=validator_cls.FORMAT_CHECKER), raw


def _format_path(error: jsonschema.ValidationError) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path]
    return "".join(parts).lstrip(".") or "<root>"


def trainjob_errors(manifest: dict[str, Any], schema_path: Path = TRAINJOB_SCHEMA_FILE) -> list[str]:
    """Every reason the API server would reject `manifest` on create (empty when it is valid)."""
    validator, raw = _validator(schema_path)
    manifest = copy.deepcopy(manifest)
    errors = [f"{_format_path(e)}: {e.message}" for e in sorted(validator.iter_errors(manifest), key=str)]
    errors += _map_list_errors(raw, manifest, "")
    if manifest.get("apiVersion") != "trainer.kubeflow.org/v1alpha1":
        errors.append(f"apiVersion: expected trainer.kubeflow.org/v1alpha1, got {manifest.get('apiVersion')!r}")
    if manifest.get("kind") != "TrainJob":
        errors.append(f"kind: expected TrainJob, got {manifest.get('kind')!r}")
    name = (manifest.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        errors.append("metadata.name: required")
    else:
        if not RFC1035_LABEL.match(name):
            errors.append(f"metadata.name: {name!r} must match RFC 1035 DNS label format")
        if len(name) > 63:
            errors.append(f"metadata.name: {name!r} must be no more than 63 characters")
    spec = manifest.get("spec") or {}
    managed_by = spec.get("managedBy")
    if managed_by is not None and managed_by not in MANAGED_BY:
        errors.append(f"spec.managedBy: must be one of {', '.join(MANAGED_BY)}")
    for kind in ("dataset", "model"):
        uri = ((spec.get("initializer") or {}).get(kind) or {}).get("storageUri")
        if isinstance(uri, str) and uri and not STORAGE_URI.match(uri):
            errors.append(f"spec.initializer.{kind}.storageUri: storageUri may be empty, or it must be a valid URI "
                          "(scheme://...)")
    return errors


@dataclass(frozen=True)
class TrainJobPolicy:
    """What a TrainJob on this cluster may reference (see the module docstring)."""

    images: frozenset[str]
    runtimes: frozenset[str]
    secrets: frozenset[str]


def policy_errors(manifest: dict[str, Any], policy: TrainJobPolicy) -> list[str]:
    """Every way `manifest` reaches beyond `policy` (empty when it stays inside)."""
    spec = manifest.get("spec") or {}
    errors: list[str] = []
    trainer = spec.get("trainer") or {}
    image = trainer.get("image")
    if image not in policy.images:
        errors.append(f"spec.trainer.image: {image!r} is not the chart's training image "
                      f"({', '.join(sorted(policy.images))})")
    ref = spec.get("runtimeRef") or {}
    if ref.get("kind", "ClusterTrainingRuntime") != "ClusterTrainingRuntime" or ref.get("name") not in policy.runtimes:
        errors.append(f"spec.runtimeRef: {ref.get('kind', 'ClusterTrainingRuntime')}/{ref.get('name')} is not one of "
                      f"the chart's ClusterTrainingRuntimes ({', '.join(sorted(policy.runtimes))})")
    if "initializer" in spec:
        errors.append("spec.initializer: initializers run their own images with their own Secrets; RewardOps jobs "
                      "read data from object storage in the trainer")
    for i, entry in enumerate(trainer.get("env") or []):
        source = entry.get("valueFrom") or {}
        secret = (source.get("secretKeyRef") or {}).get("name")
        if "secretKeyRef" in source and secret not in policy.secrets:
            errors.append(f"spec.trainer.env[{i}] ({entry.get('name')}): Secret {secret!r} is not a client Secret "
                          f"the chart names ({', '.join(sorted(policy.secrets)) or 'none'})")
    for i, patch in enumerate(spec.get("runtimePatches") or []):
        where = f"spec.runtimePatches[{i}]"
        if patch.get("manager") != PLACEMENT_MANAGER:
            errors.append(f"{where}.manager: only {PLACEMENT_MANAGER!r} (GPU placement) may patch the runtime")
        runtime_spec = patch.get("trainingRuntimeSpec") or {}
        template = runtime_spec.get("template") or {}
        if set(runtime_spec) - {"template"} or set(template) - {"spec"} or set(template.get("spec") or {}) - {"replicatedJobs"}:
            errors.append(f"{where}.trainingRuntimeSpec: only replicatedJobs' pod placement may be patched")
        for job in (template.get("spec") or {}).get("replicatedJobs") or []:
            job_spec = job.get("template") or {}
            pod = ((job_spec.get("spec") or {}).get("template") or {})
            extra = (set(job) - {"name", "template"}) | (set(job_spec) - {"spec"}) \
                | (set(job_spec.get("spec") or {}) - {"template"}) | (set(pod) - {"spec"}) \
                | (set(pod.get("spec") or {}) - PLACEMENT_FIELDS)
            if extra:
                errors.append(f"{where} replicatedJob {job.get('name')!r}: patches {sorted(extra)}; only "
                              f"{', '.join(sorted(PLACEMENT_FIELDS))} of the pod may be patched")
    return errors


def validate_trainjob(manifest: dict[str, Any], schema_path: Path = TRAINJOB_SCHEMA_FILE, *,
                      policy: TrainJobPolicy | None = None) -> None:
    """Raise `ManifestInvalid` listing every problem (schema, and `policy` when given); return quietly
    when the manifest is valid."""
    errors = trainjob_errors(manifest, schema_path)
    if policy is not None:
        errors += policy_errors(manifest, policy)
    if errors:
        name = (manifest.get("metadata") or {}).get("name", "<unnamed>")
        raise ManifestInvalid(f"TrainJob {name!r}", errors)


def validate_trainjob_status(status: dict[str, Any], schema_path: Path = TRAINJOB_SCHEMA_FILE) -> list[str]:
    """Problems with a `status` object (used to keep test stand-ins honest)."""
    validator, _ = _validator(schema_path)
    probe = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
             "metadata": {"name": "probe"}, "spec": {"runtimeRef": {"name": "probe"}}, "status": status}
    return [f"{_format_path(e)}: {e.message}" for e in validator.iter_errors(probe)]
