"""`rewardops submit` against a stand-in KFP API server, and the submit-time parameter checks.

No KFP cluster can run on this machine, so `KfpStandIn` is a small HTTP server on 127.0.0.1 (the
shared loopback helper, tests/support/loopback.py) that answers the v2beta1 REST paths the real `kfp.Client` calls to upload a pipeline (or a new version
of it) and start a run: healthz, experiments, pipelines (list, multipart upload, upload_version,
versions) and runs. It records what it received, so the tests check the uploaded pipeline spec
and the run's parameters exactly as a cluster would get them.
"""

from __future__ import annotations

import email.parser
import json
from typing import Any

import pytest
import yaml
from support.loopback import LoopbackServer, Request, Response
from typer.testing import CliRunner

from rewardops.cli import app


class KfpStandIn:
    """The KFP v2beta1 REST paths `kfp.Client` uses, on the shared loopback server (tests/support/loopback.py)."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.experiments: list[dict[str, Any]] = []
        self.pipelines: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []  # each with the uploaded spec under "spec"
        self.server = LoopbackServer(self.handle, "KFP API stand-in")

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def calls(self) -> list[tuple[str, str]]:
        return self.server.calls

    def __enter__(self) -> KfpStandIn:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    def handle(self, req: Request) -> Response:
        method, path = req.method, req.path
        query = {k: v[0] for k, v in req.query.items()}
        if path in ("/apis/v2beta1/pipelines/upload", "/apis/v2beta1/pipelines/upload_version"):
            message = email.parser.BytesParser().parsebytes(
                b"Content-Type: " + req.headers["Content-Type"].encode() + b"\r\n\r\n" + req.body)
            (part,) = [p for p in message.get_payload() if p.get_param("name", header="content-disposition") == "uploadfile"]
            spec = json.loads(json.dumps(list(yaml.safe_load_all(part.get_payload(decode=True)))))
            if path.endswith("/upload"):
                pipeline = {"pipeline_id": f"pl-{len(self.pipelines) + 1}", "display_name": query["name"]}
                self.pipelines.append(pipeline)
                pipeline_id, version_name = pipeline["pipeline_id"], query["name"]
            else:
                pipeline_id, version_name = query["pipelineid"], query["name"]
            version = {"pipeline_id": pipeline_id, "pipeline_version_id": f"v-{len(self.versions) + 1}",
                       "display_name": version_name, "spec": spec}
            self.versions.append(version)
            reply = pipeline if path.endswith("/upload") else {k: v for k, v in version.items() if k != "spec"}
            return Response.json(200, reply)
        body = json.loads(req.body or b"{}")
        if path == "/apis/v2beta1/pipelines" and method == "GET":
            predicate = json.loads(query["filter"])["predicates"][0]
            found = [p for p in self.pipelines if p["display_name"] == predicate.get("stringValue")]
            return Response.json(200, {"pipelines": found, "total_size": len(found)})
        if path.startswith("/apis/v2beta1/pipelines/") and path.endswith("/versions") and method == "GET":
            pipeline_id = path.split("/")[4]
            found = [{k: v for k, v in ver.items() if k != "spec"} for ver in self.versions if ver["pipeline_id"] == pipeline_id]
            return Response.json(200, {"pipeline_versions": found, "total_size": len(found)})
        if path == "/apis/v2beta1/healthz":
            return Response.json(200, {"multi_user": False, "pipeline_store": "database"})
        if path == "/apis/v2beta1/experiments" and method == "GET":
            predicate = json.loads(query["filter"])["predicates"][0]
            wanted = predicate.get("stringValue", predicate.get("string_value"))
            found = [e for e in self.experiments if e["display_name"] == wanted]
            return Response.json(200, {"experiments": found, "total_size": len(found)})
        if path == "/apis/v2beta1/experiments" and method == "POST":
            experiment = {**body, "experiment_id": f"exp-{len(self.experiments) + 1}", "storage_state": "AVAILABLE"}
            self.experiments.append(experiment)
            return Response.json(200, experiment)
        if path == "/apis/v2beta1/runs" and method == "POST":
            run = {**body, "run_id": f"run-{len(self.runs) + 1}", "state": "PENDING"}
            self.runs.append(run)
            return Response.json(200, run)
        return Response.json(404, {"error": f"no route for {method} {path}"})


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
          "--param", 'settings={"judges": "gpt-9"}'], "judges 'gpt-9': use one of"),
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


def test_overrides_travel_as_a_mapping_parameter_and_bad_ones_stop_before_the_server(tmp_path):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n')
    common = ["submit", "training-suite", "--data", str(data), "--param", "dataset_uri=s3://b/d",
              "--param", "output_root=s3://b/o", "--sizes", "qwen3-0.6b"]
    with KfpStandIn() as kfp:
        result = CliRunner().invoke(app, [*common, "--host", kfp.url, "--param", 'overrides={"lr": 1e-5, "zero_stage": 3}'])
        assert result.exit_code == 0, result.output
        assert kfp.runs[0]["runtime_config"]["parameters"]["overrides"] == {"lr": 1e-5, "zero_stage": 3}
    for bad, message in (('overrides={"lr_rate": 1}', "unknown training setting 'lr_rate'"),
                         ("overrides=lr=1e-5", "give a JSON object of training settings")):
        with KfpStandIn() as kfp:
            result = CliRunner().invoke(app, [*common, "--host", kfp.url, "--param", bad])
            assert result.exit_code == 2 and message in result.output, result.output
            assert kfp.calls == []
