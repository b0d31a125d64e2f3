"""`KfpStandIn`: the KFP v2beta1 REST paths `kfp.Client` uses to upload a pipeline and start a run.

No KFP cluster can run on this machine, so this is a loopback HTTP server (tests/support/loopback.py)
answering healthz, experiments (list, create), pipelines (list, multipart upload, upload_version,
versions) and runs (create). Every request and answer is checked against the vendored KFP 2.17.0
swagger (tests/support/contracts.py). It behaves as the KFP 2.17.0 API server does where `submit`
relies on it (tests/support/upstream/README.md cites the files):
- a second pipeline with the same name in a namespace, or a second version with the same name in
  a pipeline, is refused with 409 (gRPC AlreadyExists, code 6);
- `multi_user=True`: pipelines and experiments belong to a namespace; a pipeline list without a
  `namespace` returns only the shared pipelines (namespace ""), and an upload or an experiment
  without a namespace is refused (400).
It records what it received, so tests check the uploaded spec and the run's parameters exactly as a
cluster would get them.
"""

from __future__ import annotations

import email.parser
import json
from typing import Any

import yaml
from support.contracts import KFP
from support.loopback import LoopbackServer, Request, Response, ServedStandIn

ALREADY_EXISTS, INVALID_ARGUMENT, NOT_FOUND = 6, 3, 5
NOW = "2026-11-26T05:00:00Z"


class KfpStandIn(ServedStandIn):
    """The KFP v2beta1 REST paths `kfp.Client` uses (see the module docstring)."""

    def __init__(self, multi_user: bool = False) -> None:
        self.multi_user = multi_user
        self.runs: list[dict[str, Any]] = []
        self.experiments: list[dict[str, Any]] = []
        self.pipelines: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []  # each with the uploaded spec under "spec"
        self.server = LoopbackServer(self.handle, "KFP API stand-in", contract=self.contract)

    @staticmethod
    def contract(req: Request, resp: Response) -> list[str]:
        return KFP.request_errors(req.method, req.path, req.query, req.headers, req.body) + \
            KFP.response_errors(req.method, req.path, resp.status, resp.body)

    @staticmethod
    def error(http: int, code: int, message: str) -> Response:
        return Response.json(http, {"code": code, "message": message, "details": []})

    @staticmethod
    def _filter_value(query: dict[str, str]) -> str | None:
        if "filter" not in query:
            return None
        predicate = json.loads(query["filter"])["predicates"][0]
        return predicate.get("stringValue", predicate.get("string_value"))

    def handle(self, req: Request) -> Response:
        method, path = req.method, req.path
        query = {k: v[0] for k, v in req.query.items()}
        if path in ("/apis/v2beta1/pipelines/upload", "/apis/v2beta1/pipelines/upload_version"):
            return self._upload(req, query)
        body = json.loads(req.body or b"{}")
        if path == "/apis/v2beta1/pipelines" and method == "GET":
            wanted, namespace = self._filter_value(query), query.get("namespace", "")
            found = [{k: v for k, v in p.items()} for p in self.pipelines
                     if (wanted is None or p["display_name"] == wanted) and p.get("namespace", "") == namespace]
            return Response.json(200, {"pipelines": found, "total_size": len(found)})
        if path.startswith("/apis/v2beta1/pipelines/") and path.endswith("/versions") and method == "GET":
            pipeline_id = path.split("/")[4]
            found = [{k: v for k, v in ver.items() if k != "spec"} for ver in self.versions if ver["pipeline_id"] == pipeline_id]
            return Response.json(200, {"pipeline_versions": found, "total_size": len(found)})
        if path == "/apis/v2beta1/healthz":
            return Response.json(200, {"multi_user": self.multi_user, "pipeline_store": "database"})
        if path == "/apis/v2beta1/experiments" and method == "GET":
            wanted, namespace = self._filter_value(query), query.get("namespace", "")
            found = [e for e in self.experiments if e["display_name"] == wanted and e.get("namespace", "") == namespace]
            return Response.json(200, {"experiments": found, "total_size": len(found)})
        if path == "/apis/v2beta1/experiments" and method == "POST":
            if self.multi_user and not body.get("namespace"):
                return self.error(400, INVALID_ARGUMENT, "Invalid input error: In multi-user mode, experiment "
                                  "namespace must be specified")
            if any(e["display_name"] == body["display_name"] and e.get("namespace", "") == body.get("namespace", "")
                   for e in self.experiments):
                return self.error(409, ALREADY_EXISTS, f"Failed to create a new experiment. The name "
                                  f"{body['display_name']} already exists. Please specify a new name")
            experiment = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}", "storage_state": "AVAILABLE",
                          "created_at": NOW}
            self.experiments.append(experiment)
            return Response.json(200, experiment)
        if path == "/apis/v2beta1/runs" and method == "POST":
            run = {**body, "run_id": f"run-{len(self.runs) + 1}", "state": "PENDING", "created_at": NOW}
            self.runs.append(run)
            return Response.json(200, run)
        return self.error(404, NOT_FOUND, f"no route for {method} {path}")

    def _upload(self, req: Request, query: dict[str, str]) -> Response:
        message = email.parser.BytesParser().parsebytes(
            b"Content-Type: " + req.headers["Content-Type"].encode() + b"\r\n\r\n" + req.body)
        (part,) = [p for p in message.get_payload() if p.get_param("name", header="content-disposition") == "uploadfile"]
        spec = json.loads(json.dumps(list(yaml.safe_load_all(part.get_payload(decode=True)))))
        name = query.get("name") or query.get("display_name")
        if req.path.endswith("/upload"):
            namespace = query.get("namespace", "")
            if self.multi_user and not namespace:
                return self.error(400, INVALID_ARGUMENT, "Invalid input error: In multi-user mode, pipeline namespace "
                                  "must be specified")
            if any(p["display_name"] == name and p.get("namespace", "") == namespace for p in self.pipelines):
                return self.error(409, ALREADY_EXISTS, f"Failed to create a new pipeline. The name {name} already "
                                  "exists. Please specify a new name")
            pipeline = {"pipeline_id": f"pl-{len(self.pipelines) + 1}", "display_name": name, "name": name,
                        "created_at": NOW, **({"namespace": namespace} if namespace else {})}
            self.pipelines.append(pipeline)
            pipeline_id, version_name = pipeline["pipeline_id"], name
        else:
            pipeline_id, version_name = query["pipelineid"], name
            if not any(p["pipeline_id"] == pipeline_id for p in self.pipelines):
                return self.error(404, NOT_FOUND, f"Pipeline {pipeline_id} not found")
            if any(v["pipeline_id"] == pipeline_id and v["display_name"] == version_name for v in self.versions):
                return self.error(409, ALREADY_EXISTS, f"Failed to create a new pipeline version. The name "
                                  f"{version_name} already exist. Specify a new name")
        version = {"pipeline_id": pipeline_id, "pipeline_version_id": f"v-{len(self.versions) + 1}",
                   "display_name": version_name, "name": version_name, "created_at": NOW, "spec": spec}
        self.versions.append(version)
        if req.path.endswith("/upload"):
            return Response.json(200, pipeline)
        return Response.json(200, {k: v for k, v in version.items() if k != "spec"})
