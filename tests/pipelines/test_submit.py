"""`rewardops submit` against a stand-in KFP API server, and the submit-time parameter checks.

No KFP cluster can run on this machine, so `KfpStandIn` is a small HTTP server on 127.0.0.1 that
answers the v2beta1 REST paths the real `kfp.Client` calls to upload a pipeline (or a new version
of it) and start a run: healthz, experiments, pipelines (list, multipart upload, upload_version,
versions) and runs. It records what it received, so the tests check the uploaded pipeline spec
and the run's parameters exactly as a cluster would get them.
"""

from __future__ import annotations

import email.parser
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from rewardops.cli import app


class KfpStandIn:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.runs: list[dict[str, Any]] = []
        self.experiments: list[dict[str, Any]] = []
        self.pipelines: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []  # each with the uploaded spec under "spec"
        self.errors: list[str] = []
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                standin.guarded(self, "GET")

            def do_POST(self) -> None:
                standin.guarded(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> KfpStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        assert self.errors == [], self.errors

    def send(self, h: BaseHTTPRequestHandler, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def guarded(self, h: BaseHTTPRequestHandler, method: str) -> None:
        try:
            self.handle(h, method)
        except Exception as exc:
            self.errors.append(f"{method} {h.path}: {exc!r}")
            self.send(h, 500, {"error": repr(exc)})

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        self.calls.append((method, url.path))
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0)) if method == "POST" else b""
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path in ("/apis/v2beta1/pipelines/upload", "/apis/v2beta1/pipelines/upload_version"):
            message = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + h.headers["Content-Type"].encode() + b"\r\n\r\n" + raw)
            (part,) = [p for p in message.get_payload() if p.get_param("name", header="content-disposition") == "uploadfile"]
            spec = json.loads(json.dumps(list(__import__("yaml").safe_load_all(part.get_payload(decode=True)))))
            if url.path.endswith("/upload"):
                pipeline = {"pipeline_id": f"pl-{len(self.pipelines) + 1}", "display_name": query["name"]}
                self.pipelines.append(pipeline)
                pipeline_id, version_name = pipeline["pipeline_id"], query["name"]
            else:
                pipeline_id, version_name = query["pipelineid"], query["name"]
            version = {"pipeline_id": pipeline_id, "pipeline_version_id": f"v-{len(self.versions) + 1}",
                       "display_name": version_name, "spec": spec}
            self.versions.append(version)
            reply = pipeline if url.path.endswith("/upload") else {k: v for k, v in version.items() if k != "spec"}
            return self.send(h, 200, reply)
        body = json.loads(raw or b"{}")
        if url.path == "/apis/v2beta1/pipelines" and method == "GET":
            predicate = json.loads(query["filter"])["predicates"][0]
            found = [p for p in self.pipelines if p["display_name"] == predicate.get("stringValue")]
            return self.send(h, 200, {"pipelines": found, "total_size": len(found)})
        if url.path.startswith("/apis/v2beta1/pipelines/") and url.path.endswith("/versions") and method == "GET":
            pipeline_id = url.path.split("/")[4]
            found = [{k: v for k, v in ver.items() if k != "spec"} for ver in self.versions if ver["pipeline_id"] == pipeline_id]
            return self.send(h, 200, {"pipeline_versions": found, "total_size": len(found)})
        if url.path == "/apis/v2beta1/healthz":
            return self.send(h, 200, {"multi_user": False, "pipeline_store": "database"})
        if url.path == "/apis/v2beta1/experiments" and method == "GET":
            predicate = json.loads(query["filter"])["predicates"][0]
            wanted = predicate.get("stringValue", predicate.get("string_value"))
            found = [e for e in self.experiments if e["display_name"] == wanted]
            return self.send(h, 200, {"experiments": found, "total_size": len(found)})
        if url.path == "/apis/v2beta1/experiments" and method == "POST":
            experiment = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}", "storage_state": "AVAILABLE"}
            self.experiments.append(experiment)
            return self.send(h, 200, experiment)
        if url.path == "/apis/v2beta1/runs" and method == "POST":
            run = {**body, "run_id": f"run-{len(self.runs) + 1}", "state": "PENDING"}
            self.runs.append(run)
            return self.send(h, 200, run)
        return self.send(h, 404, {"error": f"no route for {method} {url.path}"})


def spec_of(version: dict[str, Any]) -> dict[str, Any]:
    docs = version["spec"]
    return docs[0]


def test_submit_uploads_a_pipeline_version_and_starts_a_run_with_the_checked_parameters(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n')
    with KfpStandIn() as kfp:
        result = CliRunner().invoke(app, [
            "submit", "training-suite", "--host", kfp.url, "--sizes", "qwen3-0.6b,llama-3.2-1b",
            "--param", "dataset_uri=s3://rewardops-dvc/subsets/stage2", "--data", str(data),
            "--param", "output_root=s3://rewardops-checkpoints/runs", "--run-name", "suite-1",
            "--service-account", "rewardops-launcher"])
        assert result.exit_code == 0, result.output
        assert "started run run-1" in result.output
        assert [e["display_name"] for e in kfp.experiments] == ["rewardops"]
        assert [p["display_name"] for p in kfp.pipelines] == ["rewardops-training-suite"]
        assert spec_of(kfp.versions[0])["pipelineInfo"]["name"] == "rewardops-training-suite"
        (run,) = kfp.runs
        assert run["display_name"] == "suite-1" and run["experiment_id"] == "exp-1"
        assert run["service_account"] == "rewardops-launcher"
        assert run["pipeline_version_reference"] == {"pipeline_id": "pl-1", "pipeline_version_id": "v-1"}
        params = run["runtime_config"]["parameters"]
        assert params["data_version"].startswith("sha256:")
        assert [p["size"] for p in params["plan"]] == ["qwen3-0.6b", "llama-3.2-1b"]
        assert params["plan"][0]["nodes"] == 8 and params["plan"][0]["gpus_per_node"] == 8

        # submitting again adds a version to the same pipeline and reuses the experiment
        again = CliRunner().invoke(app, [
            "submit", "training-suite", "--host", kfp.url, "--data", str(data),
            "--param", "dataset_uri=s3://rewardops-dvc/subsets/stage2",
            "--param", "output_root=s3://rewardops-checkpoints/runs"])
        assert again.exit_code == 0, again.output
        assert len(kfp.pipelines) == 1 and len(kfp.experiments) == 1
        assert [v["pipeline_id"] for v in kfp.versions] == ["pl-1", "pl-1"]
        assert kfp.runs[1]["pipeline_version_reference"]["pipeline_version_id"] == "v-2"
        assert "plan" not in kfp.runs[1]["runtime_config"]["parameters"]  # the compiled default: all eight sizes


def test_submit_without_upload_sends_the_spec_inline(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n')
    with KfpStandIn() as kfp:
        result = CliRunner().invoke(app, ["submit", "data", "--host", kfp.url, "--data", str(data), "--no-upload"])
        assert result.exit_code == 0, result.output
        assert kfp.pipelines == [] and len(kfp.runs) == 1
        spec = kfp.runs[0]["pipeline_spec"]
        if "platform_spec" in spec:  # with kfp-kubernetes: {pipeline_spec, platform_spec}
            assert "kubernetes" in spec["platform_spec"]["platforms"]
            spec = spec["pipeline_spec"]
        assert spec["pipelineInfo"]["name"] == "rewardops-data"
        assert kfp.runs[0]["runtime_config"]["parameters"]["sources"] == [str(data.resolve())]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["training-suite", "--sizes", "qwen3-9b", "--param", "data_version=dvc:1",
          "--param", "dataset_uri=s3://b/d", "--param", "output_root=s3://b/o"], "unknown size(s) qwen3-9b"),
        (["training-suite", "--param", "dataset_uri=s3://b/d", "--param", "output_root=s3://b/o"],
         "data_version is missing"),
        (["training-suite", "--param", "data_version=dvc:1", "--param", "dataset_uri=s3://b/d"],
         "output_root=None: the TrainJobs write the models there"),
        (["training-suite", "--param", "data_version=dvc:1", "--param", "dataset_uri=/home/me/data",
          "--param", "output_root=s3://b/o"], "dataset_uri='/home/me/data': a cluster run reads artifacts"),
        (["training-suite", "--param", "data_version=dvc:1", "--param", "dataset_uri=s3://b/d",
          "--param", "output_root=s3://b/o", "--param",
          'plan=[{"size": "qwen3-0.6b", "nodes": 3, "gpus_per_node": 8}]'], "not divisible by the world size 24"),
        (["curation", "--param", "data_version=dvc:1", "--param", "dataset_uri=s3://b/d",
          "--param", 'settings={"judges": "gpt-9"}'], "judges 'gpt-9': use one of simulated, local, chat"),
        (["curation", "--param", "data_version=dvc:1", "--param", "dataset_uri=s3://b/d",
          "--param", 'settings={"judge": "chat"}'], "unknown curation settings ['judge']"),
        (["evaluation", "--param", "data_version=dvc:1", "--param", "model_uri=s3://b/m",
          "--param", "benchmarks=rewardbench,nope"], "unknown benchmark 'nope'"),
        (["data", "--param", "data_version=dvc:1", "--param", "sources=[\"a\"]", "--param", "colour=red"],
         "unknown parameter(s) colour"),
        (["no-such-pipeline", "--param", "data_version=dvc:1"], "unknown pipeline 'no-such-pipeline'"),
    ],
)
def test_submit_refuses_parameters_that_cannot_work_without_contacting_the_server(args, message):
    with KfpStandIn() as kfp:
        result = CliRunner().invoke(app, ["submit", *args, "--host", kfp.url])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert kfp.calls == []  # nothing reached the cluster


def test_submit_reports_an_unreachable_host_clearly(tmp_path):
    with KfpStandIn() as kfp:
        dead = kfp.url
    result = CliRunner().invoke(app, ["submit", "data", "--host", dead, "--param", "data_version=dvc:1",
                                      "--param", 'sources=["s3://b/raw"]'])
    assert result.exit_code == 2 and f"could not start data on {dead}" in result.output
