"""The train_launcher KFP component, run for real by kfp.local, against the stand-in Kubernetes API.

No Kubernetes API server can run on this machine: `KubeStandIn` (tests/support/kube_standin.py) is
a loopback HTTP server serving the API paths the launcher uses, held to the upstream schemas; a
kubeconfig points the component's `kubernetes` client at it, exactly as a pod's in-cluster
config would point at the real one. When a TrainJob is created, the stand-in does what its pods
would do for the launcher's purposes: it logs an MLflow run (a real sqlite store) with the tags
from the resolved config in the job's command and registers a model version, so the component
finds the version in MLflow by the job's tag, as on a cluster.
"""

import inspect
import json
from pathlib import Path

import pytest
from kfp import dsl, local
from kfp.dsl import Dataset
from support.kube_standin import FAILURE, LOG, NS, OOM_LOG, SUCCESS, KubeStandIn, kubeconfig

from rewardops.pipelines.components.train_launcher import train_launcher
from rewardops.training.config import config_from_json


pytestmark = pytest.mark.slow  # kfp.local: every step a real subprocess


@dsl.pipeline(name="launch-one")
def launch_one(dataset_uri: str, data_version: str, overrides: dict = {"global_batch": 256, "lr": 1e-5}):
    data = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False)
    train_launcher(dataset=data.output, size="qwen3-0.6b", nodes=2, gpus_per_node=4, data_version=data_version,
                   output_root="s3://rewardops-checkpoints/runs", overrides=overrides,
                   run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)


def pod_logs_to_mlflow(tracking_uri: str):
    """What `rewardops train` on the job's pods leaves in MLflow: a run tagged from the resolved config
    in the job's command, and a registered model version."""
    def train(job: dict) -> None:
        from mlflow.tracking import MlflowClient

        config = config_from_json(job["spec"]["trainer"]["command"][-1])
        client = MlflowClient(tracking_uri=tracking_uri)
        exp = client.get_experiment_by_name(config.experiment) or client.get_experiment(
            client.create_experiment(config.experiment))
        run = client.create_run(exp.experiment_id, tags=config.run_tags)
        client.set_terminated(run.info.run_id)
        if not client.search_registered_models(f"name = '{config.model_name}'"):
            client.create_registered_model(config.model_name)
        client.create_model_version(config.model_name, f"{config.out}/model", run_id=run.info.run_id)
    return train


@pytest.fixture()
def cluster_env(tmp_path, monkeypatch):
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    started = []

    def start(statuses, log, **kwargs):
        standin = KubeStandIn(statuses, log, on_create=pod_logs_to_mlflow(tracking_uri), **kwargs).__enter__()
        started.append(standin)
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path / "kubeconfig", standin.url)))
        return standin

    monkeypatch.setenv("REWARDOPS_TRAINJOB_NAMESPACE", NS)
    monkeypatch.setenv("REWARDOPS_S3_SECRET", "rewardops-s3")
    monkeypatch.setenv("REWARDOPS_LAUNCHER_POLL_S", "0.05")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
               raise_on_error=False)
    yield start
    for standin in started:
        standin.__exit__(None, None, None)


def pointers(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("launch-one-*/train-launcher/model/model.json"))]


def test_component_creates_the_trainjob_and_finds_the_model_in_mlflow(tmp_path, cluster_env):
    standin = cluster_env(SUCCESS, LOG)
    task = launch_one(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")
    assert task is not None
    created = [p for m, p in standin.calls if m == "POST"]
    assert created == [f"/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs"]
    (body,) = standin.created
    trainer = body["spec"]["trainer"]
    assert (trainer["numNodes"], trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"]) == (2, 4)
    env = {e["name"]: e for e in trainer["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"].startswith("sqlite:///")
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "rewardops-s3"
    assert env["REWARDOPS_DATA_DVC_HASH"]["value"] == "dvc:3f2a9c0d.dir"
    config = config_from_json(trainer["command"][-1])  # the pipeline's overrides mapping, resolved once
    assert (config.global_batch, config.lr, config.nodes, config.gpus_per_node) == (256, 1e-5, 2, 4)
    run_id = body["metadata"]["labels"]["rewardops.io/pipeline-run-id"]
    assert run_id and run_id != "local" and config.run_tags["rewardops.pipeline.run_id"] == run_id
    assert env["REWARDOPS_PIPELINE_RUN_ID"]["value"] == run_id
    name = body["metadata"]["name"]
    assert name.startswith("rm-qwen3-0-6b-") and run_id[:8] in name and standin.deleted == []
    (pointer,) = pointers(tmp_path / "root")
    assert pointer["model_uri"] == "models:/rewardops-rm-qwen3-0.6b/1" and pointer["trainjob"] == name
    assert pointer["output_uri"] == "s3://rewardops-checkpoints/runs/qwen3-0.6b/3f2a9c0d"


def test_a_rerun_on_the_same_data_reuses_the_first_runs_trainjob(tmp_path, cluster_env):
    standin = cluster_env(SUCCESS, LOG)
    launch_one(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")
    launch_one(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")  # a new KFP run, same data
    assert len(standin.created) == 1 and standin.deleted == []
    first, second = pointers(tmp_path / "root")
    assert (first["attached"], second["attached"]) == ("created", "reused")
    assert first["trainjob"] == second["trainjob"] and first["model_uri"] == second["model_uri"] != ""


@dsl.pipeline(name="launch-arms")
def launch_arms(dataset_uri: str, data_version: str):
    data = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False)
    for arm in ("a", "b"):
        train_launcher(dataset=data.output, size="qwen3-0.6b", nodes=1, gpus_per_node=1, data_version=data_version,
                       output_root="s3://rewardops-checkpoints/runs", run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                       ablation_arm=arm)


def test_the_ablation_arms_are_their_own_trainjobs_outputs_and_registered_model(tmp_path, cluster_env):
    """Two arms of one size on one pipeline data version: two jobs (not the second re-attaching to
    the first's), two output folders, both versions of `rewardops-ablation-<size>`, none of the size's model."""
    standin = cluster_env(SUCCESS, LOG)
    launch_arms(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")
    assert len(standin.created) == 2 and len({b["metadata"]["name"] for b in standin.created}) == 2
    found = [json.loads(p.read_text()) for p in sorted((tmp_path / "root").glob("launch-arms-*/train-launcher*/model/model.json"))]
    assert sorted(p["output_uri"] for p in found) == [f"s3://rewardops-checkpoints/runs/qwen3-0.6b/3f2a9c0d-ablation-{a}"
                                                      for a in "ab"]
    assert sorted(p["model_uri"] for p in found) == ["models:/rewardops-ablation-qwen3-0.6b/1",
                                                     "models:/rewardops-ablation-qwen3-0.6b/2"]
    configs = [config_from_json(b["spec"]["trainer"]["command"][-1]) for b in standin.created]
    assert {c.model_name for c in configs} == {"rewardops-ablation-qwen3-0.6b"}


def test_component_fails_the_task_with_the_jobs_reason(tmp_path, cluster_env, capfd):
    standin = cluster_env(FAILURE, OOM_LOG)
    launch_one(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")
    out = capfd.readouterr()
    text = out.out + out.err
    assert "TrainJobFailed" in text and "FailedJobs" in text and "CUDA out of memory" in text
    assert standin.deleted == []  # kept for kubectl describe, until a retry replaces it


def test_bad_input_is_a_message_before_any_pod(tmp_path, cluster_env, capfd, monkeypatch):
    monkeypatch.setenv("REWARDOPS_GPUS_PER_NODE", "2")
    standin = cluster_env(SUCCESS, LOG)
    launch_one(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")
    text = "".join(capfd.readouterr())
    assert "gpus_per_node=4 is more than one node has (2 nvidia.com/gpu" in text
    assert standin.calls == []  # nothing reached the cluster


# -- what the compiled pipelines hand the training steps ----------------------------------------

def _nested_tasks(ir: dict) -> dict[str, dict]:
    tasks = dict(ir["root"]["dag"]["tasks"])
    for comp in ir["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


@pytest.mark.parametrize(("name", "trainer"), [("training-suite", "train-launcher"), ("end-to-end", "train-launcher"),
                                               ("demo", "train")])
def test_compiled_pipelines_carry_the_run_identity_and_the_overrides_mapping_into_training(compiled, name, trainer):
    ir = compiled[name]
    overrides = ir["root"]["inputDefinitions"]["parameters"]["overrides"]
    assert overrides["parameterType"] == "STRUCT" and overrides["defaultValue"] == {}
    task = _nested_tasks(ir)[trainer]
    params = task["inputs"]["parameters"]
    assert params["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"  # dsl.PIPELINE_JOB_ID_PLACEHOLDER
    assert params["overrides"]["componentInputParameter"] == "pipelinechannel--overrides"
    if trainer == "train-launcher":
        assert task["retryPolicy"]["maxRetryCount"] >= 1  # a retry re-attaches to the same TrainJob


@pytest.mark.parametrize("name", ["data", "curation", "training-suite", "evaluation", "end-to-end"])
def test_every_cluster_task_gets_the_kfp_run_id_through_the_downward_api(compiled, name):
    executors = compiled[name]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for label, executor in executors.items():
        assert {"name": "KFP_RUN_ID", "fieldPath": "metadata.labels['pipeline/runid']"} in executor["fieldPathAsEnv"], label


def test_gpu_steps_tolerate_the_gpu_nodes_and_retry(compiled):
    ir = compiled["end-to-end"]
    executors = ir["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors["exec-evaluate"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                          "effect": "NoSchedule"}]
    assert "tolerations" not in executors["exec-train-launcher"]  # a CPU pod; its TrainJob's pods get them
    assert _nested_tasks(ir)["evaluate"]["retryPolicy"]["maxRetryCount"] >= 1


def test_gpu_settings_reach_the_compiled_gpu_steps(tmp_path, monkeypatch):
    from support.pipeline_ir import load_ir

    from rewardops.pipelines.commands import compile_all

    monkeypatch.setenv("REWARDOPS_ACCELERATOR", "amd.com/gpu")
    monkeypatch.setenv("REWARDOPS_GPUS_PER_NODE", "4")
    monkeypatch.setenv("REWARDOPS_GPU_NODE_SELECTOR", "pool=gpu")
    (path,) = compile_all(tmp_path, names=["end-to-end"])
    ir = load_ir(path)
    plan = ir["root"]["inputDefinitions"]["parameters"]["plan"]["defaultValue"]
    assert all(item["gpus_per_node"] <= 4 and item["nodes"] * item["gpus_per_node"] == 64 for item in plan)
    evaluate = ir["deploymentSpec"]["executors"]["exec-evaluate"]["container"]["resources"]["accelerator"]
    assert evaluate["resourceType"] == "amd.com/gpu"
    executor = ir["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-evaluate"]
    assert executor["nodeSelector"] == {"labels": {"pool": "gpu"}}
    assert executor["tolerations"][0]["key"] == "amd.com/gpu"


@dsl.pipeline(name="train-one")
def train_one(dataset_uri: str, data_version: str, overrides: dict = {}):
    from rewardops.pipelines.components.train import train

    data = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False)
    train(dataset=data.output, size="demo-tiny-qwen3", data_version=data_version, overrides=overrides, max_steps=1,
          run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)


def test_the_in_process_train_component_takes_the_overrides_mapping(tmp_path, monkeypatch):
    """The `train` component (demo / single node) under kfp.local: one training entry, overrides as a dict."""
    from rewardops.data.schema import Message, PreferencePair
    from rewardops.data.shards import write_pairs

    pairs = [PreferencePair(id=f"p{i}", source="test", conversation=[Message("user", f"What is {i} + {i}?")],
                            chosen=f"It is {2 * i}.", rejected=f"It is {2 * i + 1}.") for i in range(16)]
    write_pairs(pairs, tmp_path / "pairs")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = train_one(dataset_uri=str(tmp_path / "pairs"), data_version="sha256:abc",
                     overrides={"lr": 2e-4, "global_batch": 8, "num_threads": 1, "max_length": 256,
                                "micro_batch_tokens": 1024, "export": False})
    (config_file,) = (tmp_path / "root").glob("train-one-*/train/model/checkpoints/step-*/config.json")
    ran = json.loads(config_file.read_text())
    assert (ran["lr"], ran["global_batch"], ran["max_steps"]) == (2e-4, 8, 1)
    assert ran["run_tags"]["rewardops.pipeline.run_id"]
    assert task is not None


def test_the_component_is_begin_step_one_library_call_and_metadata():
    """The launcher's logic lives in rewardops.k8s.launcher.launch_size; the component only wires it."""
    source = inspect.getsource(train_launcher.python_func)
    body = source.split('"""')[2]
    assert "launch_size(" in body and "begin_step(" in body
    assert "train_args" not in body and "re.sub" not in body and "config_from_json" not in body
    assert len([line for line in body.splitlines() if line.strip()]) <= 16


def test_a_missing_mlflow_uri_is_a_message_before_any_pod(tmp_path, cluster_env, capfd, monkeypatch):
    standin = cluster_env(SUCCESS, LOG)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    launch_one(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir")
    text = "".join(capfd.readouterr())
    assert "MLFLOW_TRACKING_URI is not set for this step" in text and standin.calls == []



def test_rerunning_the_training_suite_on_the_same_data_reuses_its_trainjobs(tmp_path, cluster_env):
    """The whole training-suite pipeline (importer -> ParallelFor over sizes -> train_launcher), twice."""
    from rewardops.pipelines.training_suite import build

    standin = cluster_env(SUCCESS, LOG)
    suite = build(["qwen3-0.6b", "llama-3.2-1b"])
    args = dict(dataset_uri=str(tmp_path), data_version="dvc:3f2a9c0d.dir", output_root="s3://rewardops-checkpoints/runs",
                overrides={"lr": 2e-6})
    suite(**args)
    assert len(standin.created) == 2
    suite(**args)  # a new run of the same pipeline on the same data
    assert len(standin.created) == 2 and standin.deleted == []  # nothing trained twice
    sizes = sorted(config_from_json(job["spec"]["trainer"]["command"][-1]).size for job in standin.created)
    assert sizes == ["llama-3.2-1b", "qwen3-0.6b"]
    assert all(config_from_json(job["spec"]["trainer"]["command"][-1]).lr == 2e-6 for job in standin.created)
