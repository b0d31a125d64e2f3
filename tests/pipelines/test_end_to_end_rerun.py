"""The CLUSTER build of the end-to-end pipeline, run twice on the same data under kfp.local.

ingest -> preprocess -> curation -> train_launcher -> evaluate -> register, every step a real
subprocess of kfp.local's SubprocessRunner. No Kubernetes API server can run on this machine:
`KubeStandIn` (tests/support/kube_standin.py) is a loopback stand-in for the API paths the launcher
uses, and when a TrainJob is created it does what the job's pods would do: it trains the tiny
catalog model with the job's resolved config (`rewardops.training.run`, MLflow on, the same sqlite
store), so the registered version is a real model that `evaluate` loads and `register` scores.
The only thing changed in the job's config is `out`: the pods would write to the s3:// output_root
(which the cluster build requires); here the model goes to a local folder.

The second run on the same data must reuse the first run's TrainJob (nothing created, nothing
deleted) and evaluate / register the same registered model version.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from kfp import local
from support.kube_standin import LOG, NS, SUCCESS, KubeStandIn, kubeconfig
from test_curation_steps import SMALL

from rewardops.data.shards import write_pairs  # noqa: E402
from rewardops.data.world.generator import generate_world  # noqa: E402
from rewardops.training.config import config_from_json  # noqa: E402

SIZE = "demo-tiny-qwen3"
STEPS = ("ingest", "preprocess", "merge-shards", "train-launcher", "evaluate", "register")


pytestmark = pytest.mark.slow  # kfp.local: every step a real subprocess, tiny training


def pods_train_the_model(tracking_uri: str, out_root: Path):
    """What `rewardops train` on the TrainJob's pods does: train with the job's resolved config and
    register the model in MLflow (tagged with the job's name), here into a local folder."""
    def train(job: dict) -> None:
        from rewardops.training import run

        config = config_from_json(job["spec"]["trainer"]["command"][-1])
        assert config.mlflow and config.out.startswith("s3://"), config.out
        local_out = out_root / job["metadata"]["name"]
        # the job's env carries the same MLflow URI; the pods would write the model to output_root
        assert config.tracking_uri in (None, tracking_uri), config.tracking_uri
        result = run(dataclasses.replace(config, out=str(local_out), tracking_uri=tracking_uri))
        assert result.registered_version, "the pods' training registered no model version"
    return train


@pytest.fixture()
def standin(tmp_path, monkeypatch):
    from rewardops.pipelines.commands import prepare_tracking_store

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    prepare_tracking_store(tracking_uri, artifact_root=tmp_path / "mlartifacts")
    monkeypatch.setenv("REWARDOPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REWARDOPS_TRAINJOB_NAMESPACE", NS)
    monkeypatch.setenv("REWARDOPS_S3_SECRET", "rewardops-s3")
    monkeypatch.setenv("REWARDOPS_LAUNCHER_POLL_S", "0.05")
    server = KubeStandIn(SUCCESS, LOG, on_create=pods_train_the_model(tracking_uri, tmp_path / "pods")).__enter__()
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", server.url)))
    try:
        yield server
    finally:
        server.__exit__(None, None, None)


def _run_root(root: Path, before: set[Path]) -> Path:
    (new,) = set(root.glob("rewardops-end-to-end-*")) - before
    return new


def _task_dir(run: Path, step: str) -> Path:
    found = sorted(p for p in run.rglob(step) if p.is_dir())
    assert found, f"{run}: no output of step {step}"
    return found[0]


def test_rerunning_end_to_end_on_the_same_data_reuses_the_trainjob_and_the_model_version(tmp_path, standin):
    from mlflow.tracking import MlflowClient

    from rewardops.pipelines.commands import build_pipeline, prepare_params

    write_pairs(list(generate_world(240, noise=0.25, seed=5)), tmp_path / "sources")
    func = build_pipeline("end-to-end", iterations=1)
    params = prepare_params("end-to-end", func, {
        "settings": json.dumps(SMALL), "output_root": "s3://rewardops-checkpoints/runs", "max_steps": 2,
        "benchmarks": "world", "eval_world_n": 32,
        "overrides": {"num_threads": 1, "global_batch": 8, "max_length": 256, "micro_batch_tokens": 1024},
    }, data=[str(tmp_path / "sources")], sizes=[SIZE], local=True)
    # a fresh kfp.local session with its cache off: the second run really runs every step again
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"),
               enable_caching=False, raise_on_error=True)

    root = tmp_path / "kfp"
    runs = []
    for _ in range(2):
        before = set(root.glob("rewardops-end-to-end-*"))
        func(**params)  # raise_on_error: any failed step fails the test here
        runs.append(_run_root(root, before))
        if len(runs) == 1:
            assert len(standin.created) == 1  # one size, one TrainJob
    # nothing trained twice, nothing replaced
    assert len(standin.created) == 1 and standin.deleted == []
    assert standin.errors == []
    (job,) = standin.created
    assert config_from_json(job["spec"]["trainer"]["command"][-1]).size == SIZE

    pointers, evaluated, registered, decisions = [], [], [], []
    for run in runs:
        for step in STEPS:
            _task_dir(run, step)  # every step of the DAG ran and wrote its outputs
        pointers.append(json.loads((_task_dir(run, "train-launcher") / "model" / "model.json").read_text()))
        out = json.loads((_task_dir(run, "evaluate") / "executor_output.json").read_text())
        evaluated.append(out["artifacts"]["report"]["artifacts"][0]["metadata"])
        assert (_task_dir(run, "evaluate") / "report" / "summary.json").is_file()
        registered.append(json.loads((_task_dir(run, "register") / "metrics").read_text()))
        decisions.append(json.loads((_task_dir(run, "register") / "executor_output.json").read_text())
                         ["parameterValues"]["Output"])
    model_uri = "models:/rewardops-rm-demo-tiny-qwen3/1"
    first, second = pointers
    assert (first["attached"], second["attached"]) == ("created", "reused")
    assert first["trainjob"] == second["trainjob"] == job["metadata"]["name"]
    assert first["model_uri"] == second["model_uri"] == model_uri
    assert first["mlflow_run_id"] == second["mlflow_run_id"] != ""
    # both evaluations loaded and scored the same registered model version (same weights: same scores)
    assert [e["model"] for e in evaluated] == [model_uri, model_uri]
    assert evaluated[0]["scores_percent"] == evaluated[1]["scores_percent"] and "world" in evaluated[0]["scores_percent"]
    # both registers scored version 1; the first promoted it, the second found it already champion
    assert [r["version"] for r in registered] == [1.0, 1.0]
    assert registered[0]["promoted"] == 1.0 and "already the champion" in decisions[1]

    client = MlflowClient()
    versions = client.search_model_versions("name = 'rewardops-rm-demo-tiny-qwen3'")
    assert [int(v.version) for v in versions] == [1]  # the rerun registered nothing new
    assert versions[0].run_id == first["mlflow_run_id"]
    assert client.get_model_version_by_alias("rewardops-rm-demo-tiny-qwen3", "champion").version in (1, "1")
