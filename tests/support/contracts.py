"""Contract checks: every request a stand-in receives and every answer it gives, held against the
upstream API description vendored in tests/support/upstream/ (README.md there: tags and commits).

- Kubernetes: the OpenAPI (swagger 2.0) of Kubernetes 1.30, cut to the operations RewardOps calls
  (`kubernetes-1.30.paths.json`); TrainJobs against the Trainer v2.3.0 CRD
  (src/rewardops/k8s/crds/), ClusterTrainingRuntimes against its v2.3.0 CRD.
- KFP: the v2beta1 REST API of Kubeflow Pipelines 2.17.0 (`kfp_api_single_file.swagger.json`).

A request is checked for its path and method (an operation the API has), every query parameter
(declared for that operation, of its type: booleans `true`/`false`, integers, enums) and its body
(the operation's body schema; multipart uploads carry their declared form field). An answer is
checked against the operation's response schema for its status (errors: `meta.v1.Status` for
Kubernetes, `googlerpcStatus` for KFP). Schemas are made strict: an object with declared
properties accepts no others, so a misspelt field fails instead of vanishing.

Custom resources: the API server serves them with the same generic REST handler as built-in kinds,
so their operations take the parameters of a namespaced built-in collection and item
(`/apis/batch/v1/namespaces/{namespace}/jobs[/{name}]`), and their objects are checked against
the CRD schema with `metadata` against `ObjectMeta`. The one place the OpenAPI is looser than the
server: a DELETE that cannot finish at once (Foreground deletion, finalizers pending) answers 200
with the object itself (apiserver `handlers/delete.go`), so DELETE 200 takes the object or Status.
"""

from __future__ import annotations

import copy
import email.parser
import json
import re
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from rewardops.k8s.schema import TRAINJOB_SCHEMA_FILE, load_openapi_schema, to_json_schema

UPSTREAM = Path(__file__).with_name("upstream")
KUBERNETES_SPEC = UPSTREAM / "kubernetes-1.30.paths.json"
KFP_SPEC = UPSTREAM / "kfp_api_single_file.swagger.json"
RUNTIME_CRD = UPSTREAM / "trainer.kubeflow.org_clustertrainingruntimes.yaml"
# Go's strconv.ParseBool, which both servers use for boolean query parameters (the Python client sends "True")
PARSE_BOOL = ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")  # meta/v1 CreateOptions.fieldValidation
PROPAGATION = ("Orphan", "Background", "Foreground")  # meta/v1 DeleteOptions.propagationPolicy


def strict(node: Any) -> Any:
    """A swagger 2.0 schema as strict JSON Schema (draft 4): no undeclared properties; IntOrString
    takes an int or a string."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items() if not key.startswith("x-") and key != "description"}
    if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    if node.get("format") == "int-or-string":
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    return out


def _errors(validator: jsonschema.protocols.Validator, value: Any, what: str) -> list[str]:
    found = []
    for error in sorted(validator.iter_errors(value), key=str)[:5]:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "<root>"
        found.append(f"{what} {where}: {error.message[:300]}")
    return found


class Swagger:
    """One swagger 2.0 document: operations by path, parameters, schema validators."""

    def __init__(self, path: Path):
        self.doc = json.loads(path.read_text())
        self.definitions = strict(self.doc.get("definitions") or {})
        self.templates = []
        for template in self.doc["paths"]:
            pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            self.templates.append((template.count("{"), template, re.compile(pattern)))
        self.templates.sort()  # literal paths before templated ones (/pipelines/upload before /pipelines/{id})

    def match(self, path: str, method: str) -> str | None:
        for _, template, pattern in self.templates:
            if pattern.match(path) and method.lower() in self.doc["paths"][template]:
                return template
        return None

    def operation(self, template: str, method: str) -> dict[str, Any]:
        return self.doc["paths"][template][method.lower()]

    def parameters(self, template: str, method: str) -> list[dict[str, Any]]:
        entries = [*self.doc["paths"][template].get("parameters", []), *self.operation(template, method).get("parameters", [])]
        return [self.doc["parameters"][p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p for p in entries]

    @lru_cache(maxsize=256)  # noqa: B019 - one Swagger per process
    def _validator(self, schema_json: str) -> jsonschema.Draft4Validator:
        schema = {**json.loads(schema_json), "definitions": self.definitions}
        return jsonschema.Draft4Validator(schema)

    def schema_errors(self, schema: dict[str, Any], value: Any, what: str) -> list[str]:
        return _errors(self._validator(json.dumps(strict(schema), sort_keys=True)), value, what)

    def query_errors(self, template: str, method: str, query: dict[str, list[str]], what: str) -> list[str]:
        declared = {p["name"]: p for p in self.parameters(template, method) if p.get("in") == "query"}
        errors = []
        for name, values in query.items():
            param = declared.get(name)
            if param is None:
                errors.append(f"{what}: query parameter {name!r} is not declared for {method} {template}")
                continue
            kind = param.get("type")
            for value in values:
                if kind == "boolean" and value not in PARSE_BOOL:
                    errors.append(f"{what}: {name}={value!r} is not a boolean")
                elif kind == "integer" and not re.fullmatch(r"-?\d+", value):
                    errors.append(f"{what}: {name}={value!r} is not an integer")
                elif "enum" in param and value not in param["enum"]:
                    errors.append(f"{what}: {name}={value!r} is not one of {param['enum']}")
            if len(values) > 1 and param.get("type") != "array":
                errors.append(f"{what}: query parameter {name!r} given {len(values)} times")
        return errors


def _json_body(body: bytes, what: str) -> tuple[Any, list[str]]:
    try:
        return json.loads(body), []
    except ValueError as exc:
        return None, [f"{what}: body is not JSON ({exc})"]


# -- Kubernetes -----------------------------------------------------------------------------------

_CR = re.compile(r"^/apis/trainer\.kubeflow\.org/v1alpha1/(?:namespaces/([^/]+)/)?(trainjobs|clustertrainingruntimes)"
                 r"(?:/([^/]+))?$")


class KubernetesContract:
    """Requests and answers of the Kubernetes API paths the launcher uses (see the module docstring)."""

    @cached_property
    def api(self) -> Swagger:
        return Swagger(KUBERNETES_SPEC)

    @cached_property
    def kinds(self) -> dict[str, jsonschema.Draft7Validator]:
        def validator(path: Path) -> jsonschema.Draft7Validator:
            schema = to_json_schema(load_openapi_schema(path))
            schema["properties"]["metadata"] = {"type": "object"}  # checked against ObjectMeta separately
            return jsonschema.Draft7Validator(schema)
        return {"trainjobs": validator(TRAINJOB_SCHEMA_FILE), "clustertrainingruntimes": validator(RUNTIME_CRD)}

    def _route(self, path: str, method: str) -> tuple[str | None, str | None, bool]:
        """(swagger template, custom resource plural or None, is item)."""
        match = _CR.match(path)
        if match:
            namespace, plural, name = match.groups()
            if (plural == "trainjobs") != (namespace is not None):
                return None, plural, False
            template = "/apis/batch/v1/namespaces/{namespace}/jobs" + ("/{name}" if name else "")
            return (template if method.lower() in self.api.doc["paths"][template] else None), plural, bool(name)
        return self.api.match(path, method), None, False

    def object_errors(self, plural: str, obj: Any, what: str) -> list[str]:
        if not isinstance(obj, dict):
            return [f"{what}: not an object"]
        errors = _errors(self.kinds[plural], obj, what)
        errors += self.api.schema_errors({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                                         obj.get("metadata", {}), f"{what} metadata")
        return errors

    def request_errors(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> list[str]:
        what = f"{method} {path}"
        template, plural, item = self._route(path, method)
        if template is None:
            return [f"{what}: no such operation in the Kubernetes 1.30 API"]
        errors = self.api.query_errors(template, method, query, what)
        if "fieldValidation" in query and query["fieldValidation"][0] not in FIELD_VALIDATION:
            errors.append(f"{what}: fieldValidation={query['fieldValidation'][0]!r} is not one of {FIELD_VALIDATION}")
        if method == "POST":
            obj, errors_json = _json_body(body, what)
            errors += errors_json or (self.object_errors(plural, obj, f"{what} body") if plural else [])
        elif method == "DELETE" and body:
            obj, errors_json = _json_body(body, what)
            errors += errors_json or self.api.schema_errors(
                {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"}, obj, f"{what} body")
            if isinstance(obj, dict) and obj.get("propagationPolicy") not in (None, *PROPAGATION):
                errors.append(f"{what}: propagationPolicy {obj['propagationPolicy']!r} is not one of {PROPAGATION}")
        elif body:
            errors.append(f"{what}: a {method} takes no body")
        return errors

    def response_errors(self, method: str, path: str, status: int, content_type: str, body: bytes) -> list[str]:
        what = f"{method} {path} -> {status}"
        template, plural, item = self._route(path, method)
        if template is None:
            return []  # the request was already reported
        if status >= 400:
            obj, errors = _json_body(body, what)
            errors = errors or self.api.schema_errors(
                {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Status"}, obj, what)
            if isinstance(obj, dict) and obj.get("code") != status:
                errors.append(f"{what}: Status.code {obj.get('code')} differs from the HTTP status")
            return errors
        responses = self.api.operation(template, method)["responses"]
        if str(status) not in responses:
            return [f"{what}: the API declares no {status} answer for {method} {template}"]
        if path.endswith("/log"):
            return [] if content_type.startswith("text/plain") else [f"{what}: a log is text/plain, got {content_type}"]
        obj, errors = _json_body(body, what)
        if errors:
            return errors
        if plural:
            if method == "GET" and not item:
                errors = self.api.schema_errors({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"},
                                                obj.get("metadata", {}), f"{what} list metadata")
                extra = set(obj) - {"apiVersion", "kind", "metadata", "items"}
                if extra or not isinstance(obj.get("items"), list):
                    errors.append(f"{what}: a list has apiVersion, kind, metadata and items, got {sorted(obj)}")
                for i, entry in enumerate(obj.get("items") or []):
                    errors += self.object_errors(plural, entry, f"{what} items[{i}]")
                return errors
            if method == "DELETE" and obj.get("kind") == "Status":
                return self.api.schema_errors({"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Status"},
                                              obj, what)
            return self.object_errors(plural, obj, what)
        schema = responses[str(status)].get("schema")
        return self.api.schema_errors(schema, obj, what) if schema else []


# -- KFP ------------------------------------------------------------------------------------------

class KfpContract:
    """Requests and answers of the KFP v2beta1 REST API (see the module docstring)."""

    @cached_property
    def api(self) -> Swagger:
        return Swagger(KFP_SPEC)

    def request_errors(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
                       body: bytes) -> list[str]:
        what = f"{method} {path}"
        template = self.api.match(path, method)
        if template is None:
            return [f"{what}: no such operation in the KFP 2.17.0 v2beta1 API"]
        errors = self.api.query_errors(template, method, query, what)
        params = self.api.parameters(template, method)
        body_params = [p for p in params if p.get("in") == "body"]
        form = [p for p in params if p.get("in") == "formData"]
        if body_params:
            obj, errors_json = _json_body(body, what)
            errors += errors_json or self.api.schema_errors(body_params[0]["schema"], obj, f"{what} body")
        elif form:
            content_type = headers.get("Content-Type", "")
            message = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
            names = {part.get_param("name", header="content-disposition") for part in message.get_payload() or []} \
                if message.is_multipart() else set()
            missing = [p["name"] for p in form if p.get("required") and p["name"] not in names]
            unknown = names - {p["name"] for p in form}
            if missing or unknown:
                errors.append(f"{what}: multipart form fields: missing {missing}, undeclared {sorted(unknown)}")
        elif body:
            errors.append(f"{what}: {method} {template} takes no body")
        return errors

    def response_errors(self, method: str, path: str, status: int, body: bytes) -> list[str]:
        what = f"{method} {path} -> {status}"
        template = self.api.match(path, method)
        if template is None:
            return []
        responses = self.api.operation(template, method)["responses"]
        declared = responses.get(str(status)) or (responses.get("default") if status >= 400 else None)
        if declared is None:
            return [f"{what}: the API declares no {status} answer for {method} {template}"]
        obj, errors = _json_body(body, what)
        if errors or "schema" not in declared:
            return errors
        return self.api.schema_errors(declared["schema"], obj, what)


KUBERNETES = KubernetesContract()
KFP = KfpContract()


def load_runtime_crd_schema() -> dict[str, Any]:
    """The ClusterTrainingRuntime CRD's openAPIV3Schema (Trainer v2.3.0), for tests of the chart's runtimes."""
    return copy.deepcopy(load_openapi_schema(RUNTIME_CRD))


def vendored_sources() -> dict[str, Any]:
    """tests/support/upstream/SOURCES.yaml: where each vendored file comes from."""
    return yaml.safe_load((UPSTREAM / "SOURCES.yaml").read_text())
