"""The train_launcher KFP component, run for real by kfp.local, against the stand-in Kubernetes API.

No Kubernetes API server can run on this machine: `KubeStandIn` (tests/k8s/test_launcher.py) is
a loopback HTTP server serving the API paths the launcher uses; a kubeconfig points the
component's `kubernetes` client at it, exactly as a pod's in-cluster config would point at the
real one.
"""


import json
import sys
from pathlib import Path

import pytest
from kfp import dsl, local
from kfp.dsl import Dataset

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "k8s"))
from test_launcher import FAILURE, LOG, NS, OOM_LOG, SUCCESS, KubeStandIn  # noqa: E402

from rewardops.pipelines.components.train_launcher import train_launcher  # noqa: E402


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "standin",
        "clusters": [{"name": "standin", "cluster": {"server": server}}],
        "users": [{"name": "standin", "user": {"token": "test"}}],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "standin", "namespace": NS}}],
    }))
    return path


@dsl.pipeline(name="launch-one")
def launch_one(dataset_uri: str, data_version: str):
    data = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False)
    train_launcher(dataset=data.output, size="qwen3-0.6b", nodes=2, gpus_per_node=4, data_version=data_version,
                   output_root="s3://rewardops-checkpoints/runs", overrides=["global_batch=256"])


@pytest.fixture()
def cluster_env(tmp_path, monkeypatch):
    def start(statuses, log):
        standin = KubeStandIn(statuses, log).__enter__()
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", standin.url)))
        return standin

    monkeypatch.setenv("REWARDOPS_TRAINJOB_NAMESPACE", NS)
    monkeypatch.setenv("REWARDOPS_S3_SECRET", "rewardops-s3")
    monkeypatch.setenv("REWARDOPS_LAUNCHER_POLL_S", "0.05")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.rewardops:5000")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=False)
    yield start


def test_component_creates_the_trainjob_streams_and_records_the_model(tmp_path, cluster_env):
    standin = cluster_env(SUCCESS, LOG)
    try:
        task = launch_one(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")
    finally:
        standin.__exit__(None, None, None)
    assert task is not None
    created = [p for m, p in standin.calls if m == "POST"]
    assert created == [f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs"]
    (body,) = standin.created
    trainer = body["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"]) == (2, 4)
    env = {e["name"]: e for e in trainer["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.rewardops:5000"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "rewardops-s3"
    assert env["REWARDOPS_DATA_VERSION"]["value"] == "dvc:3f2a9c0d.dir"
    assert trainer["command"][-6:] == ["--set", "global_batch=256", "--set", "nodes=2", "--set", "gpus_per_node=4"]
    (name,) = standin.gets
    assert name == "rm-qwen3-0-6b-3f2a9c0d" and standin.deleted == [name]
    pointer = json.loads(next((tmp_path / "root").glob("launch-one-*/train-launcher/model/model.json")).read_text())
    assert pointer["model_uri"] == "models:/rewardops-rm-qwen3-0.6b/3"
    assert pointer["output_uri"] == "s3://rewardops-checkpoints/runs/qwen3-0.6b/3f2a9c0d"


def test_component_fails_the_task_with_the_jobs_reason(tmp_path, cluster_env, capfd):
    standin = cluster_env(FAILURE, OOM_LOG)
    try:
        launch_one(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")
    finally:
        standin.__exit__(None, None, None)
    out = capfd.readouterr()
    text = out.out + out.err
    assert "TrainJobFailed" in text and "FailedJobs" in text and "CUDA out of memory" in text
    assert standin.deleted == []  # kept for kubectl describe
