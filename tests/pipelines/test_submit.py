"""`rewardops submit` against a stand-in KFP API server, and the submit-time parameter checks.

No KFP cluster can run on this machine, so `KfpStandIn` (tests/support/kfp_standin.py) answers the
v2beta1 REST paths the real `kfp.Client` calls, held to the KFP 2.17.0 swagger, with the server's
409s and multi-user namespaces. It records what it received, so the tests check the uploaded
pipeline spec and the run's parameters exactly as a cluster would get them.
"""

from __future__ import annotations

from typing import Any

import pytest
from support.kfp_standin import KfpStandIn
from typer.testing import CliRunner

from rewardops.cli import app


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


def test_submit_in_a_multi_user_namespace_finds_its_pipeline_there_and_uploads_a_version(tmp_path):
    """Multi-user KFP lists a namespace's pipelines only when asked for that namespace: a second
    submit must find the pipeline there and add a version, not upload again (which would get 409)."""
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n')
    with KfpStandIn(multi_user=True) as kfp:
        for _ in range(2):
            result = CliRunner().invoke(app, ["submit", "data", "--host", kfp.url, "--data", str(data),
                                              "--namespace", "team-rm"])
            assert result.exit_code == 0, result.output
        assert [(p["display_name"], p["namespace"]) for p in kfp.pipelines] == [("rewardops-data", "team-rm")]
        assert [v["pipeline_id"] for v in kfp.versions] == ["pl-1", "pl-1"]
        assert [e["namespace"] for e in kfp.experiments] == ["team-rm"]
        assert [r["pipeline_version_reference"]["pipeline_version_id"] for r in kfp.runs] == ["v-1", "v-2"]


def test_the_standin_answers_409_for_a_duplicate_pipeline_as_kfp_does(tmp_path):
    """What a second upload in the same namespace gets from KFP 2.17.0 (storage/pipeline_store.go)."""
    import kfp as kfp_sdk
    from kfp_server_api.exceptions import ApiException

    from rewardops.pipelines.commands import build_pipeline

    package = tmp_path / "p.yaml"
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline("data"), str(package))
    with KfpStandIn(multi_user=True) as kfp:
        client = kfp_sdk.Client(host=kfp.url, namespace="team-rm")
        client.upload_pipeline(str(package), pipeline_name="p", namespace="team-rm")
        with pytest.raises(ApiException) as info:
            client.upload_pipeline(str(package), pipeline_name="p", namespace="team-rm")
        assert info.value.status == 409 and "already exists" in info.value.body
        assert client.get_pipeline_id("p") is None  # no namespace: only shared pipelines (the old submit's bug)
        with pytest.raises(ApiException) as info:
            client.upload_pipeline(str(package), pipeline_name="q")  # multi-user: a namespace is required
        assert info.value.status == 400


def test_a_concurrent_upload_409_is_resolved_by_adding_a_version(tmp_path, monkeypatch):
    """Another submit uploads the pipeline between our look and our upload: the 409 sends us back to
    look again, and our spec becomes a new version."""
    from rewardops.pipelines import commands

    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n')
    real = commands._pipeline_id
    calls = []

    def first_look_misses(client, name, namespace):
        calls.append(name)
        return None if len(calls) == 1 else real(client, name, namespace)

    with KfpStandIn() as kfp:
        kfp.pipelines.append({"pipeline_id": "pl-0", "display_name": "rewardops-data", "name": "rewardops-data"})
        monkeypatch.setattr(commands, "_pipeline_id", first_look_misses)
        result = CliRunner().invoke(app, ["submit", "data", "--host", kfp.url, "--data", str(data)])
        assert result.exit_code == 0, result.output
        assert len(kfp.pipelines) == 1 and [v["pipeline_id"] for v in kfp.versions] == ["pl-0"]
        assert kfp.errors == []
