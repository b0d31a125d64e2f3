"""Every pipeline compiles to KFP IR with the inputs, DAG, resources and caching we mean."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.pipeline_ir import load_ir
from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.k8s.images import component_image
from rewardops.training.config import catalog_sizes, load_config

PIPELINE_NAMES = ["data", "curation", "training-suite", "evaluation", "end-to-end", "demo", "ablation"]


def all_tasks(ir: dict) -> dict[str, dict]:
    """Every task of the root DAG and of nested DAGs (ParallelFor bodies), by task name."""
    tasks = dict(ir["root"]["dag"]["tasks"])
    for comp in ir["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


def executor_of(ir: dict, task: dict) -> dict:
    comp = ir["components"][task["componentRef"]["name"]]
    return ir["deploymentSpec"]["executors"][comp["executorLabel"]]


def container_tasks(ir: dict) -> dict[str, dict]:
    return {name: t for name, t in all_tasks(ir).items()
            if "executorLabel" in ir["components"][t["componentRef"]["name"]]
            and "container" in executor_of(ir, t)}


def test_compile_command_writes_one_ir_file_per_pipeline(tmp_path: Path):
    result = CliRunner().invoke(app, ["pipelines", "compile", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in tmp_path.glob("*.yaml")) == sorted(PIPELINE_NAMES)
    ir = load_ir(tmp_path / "data.yaml")
    assert ir["pipelineInfo"]["name"] == "rewardops-data"


@pytest.mark.parametrize("name", PIPELINE_NAMES)
def test_every_step_takes_the_data_version_from_the_pipeline_and_is_cached(compiled, name):
    ir = compiled[name]
    assert ir["root"]["inputDefinitions"]["parameters"]["data_version"]["parameterType"] == "STRING"
    assert "defaultValue" not in ir["root"]["inputDefinitions"]["parameters"]["data_version"]  # required
    for task_name, task in container_tasks(ir).items():
        params = task["inputs"].get("parameters", {})
        if task_name.startswith("generate"):
            continue  # the world's parameters are its version
        wired = params.get("data_version", {})
        # straight from the pipeline input, or through the ParallelFor's channel of it
        assert wired.get("componentInputParameter") in ("data_version", "pipelinechannel--data_version"), task_name
        if task_name.startswith("register"):
            assert task.get("cachingOptions", {}) == {}, "register reflects the registry's current state"
        else:
            assert task["cachingOptions"] == {"enableCache": True}, task_name


@pytest.mark.parametrize("name", PIPELINE_NAMES)
def test_every_step_runs_in_the_component_image_with_cpu_and_memory_requests(compiled, name):
    ir = compiled[name]
    for task_name, task in container_tasks(ir).items():
        container = executor_of(ir, task)["container"]
        assert container["image"] == component_image()
        resources = container["resources"]
        assert resources["resourceCpuRequest"] and resources["resourceMemoryRequest"], task_name
        assert resources["resourceCpuLimit"] and resources["resourceMemoryLimit"], task_name


def test_data_pipeline_dag(compiled):
    tasks = compiled["data"]["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest", "preprocess"}
    raw = tasks["preprocess"]["inputs"]["artifacts"]["raw"]["taskOutputArtifact"]
    assert raw == {"outputArtifactKey": "dataset", "producerTask": "ingest"}
    assert set(compiled["data"]["root"]["inputDefinitions"]["parameters"]) == {
        "sources", "data_version", "decontaminate", "benchmarks", "eval_sources", "eval_data_dir", "eval_world_n"}
    # decontamination follows evaluation: the benchmarks and their sources reach preprocess
    params = tasks["preprocess"]["inputs"]["parameters"]
    assert params["benchmarks"]["componentInputParameter"] == "benchmarks"
    assert params["benchmark_sources"]["componentInputParameter"] == "eval_sources"


def test_end_to_end_decontaminates_against_what_it_evaluates_on(compiled):
    for name in ("end-to-end", "demo"):
        params = compiled[name]["root"]["dag"]["tasks"]["preprocess"]["inputs"]["parameters"]
        assert params["benchmarks"] == {"componentInputParameter": "benchmarks"}, name
        assert params["benchmark_sources"] == {"componentInputParameter": "eval_sources"}, name
        assert params["world_n"] == {"componentInputParameter": "eval_world_n"}, name


def test_curation_chains_stage1_iterations_then_fans_stage2_out_over_shards(compiled):
    ir = compiled["curation"]
    tasks = ir["root"]["dag"]["tasks"]
    assert tasks["seed"]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]["producerTask"] == "importer"
    # the pool is prepared shard by shard (attributes, vectors), then assembled once
    prep = tasks["for-loop-1"]
    assert prep["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--list-shards-Output"
    assert set(ir["components"][prep["componentRef"]["name"]]["dag"]["tasks"]) == {"prepare-pool-shard"}
    assembled = tasks["assemble-pool"]["inputs"]["artifacts"]
    assert assembled["parts"]["taskOutputArtifact"] == {"outputArtifactKey": "pipelinechannel--prepare-pool-shard-prepared",
                                                        "producerTask": "for-loop-1"}
    pool = {"outputArtifactKey": "pool", "producerTask": "assemble-pool"}
    first = tasks["stage1-iteration"]["inputs"]
    second = tasks["stage1-iteration-2"]["inputs"]
    assert first["artifacts"]["state"]["taskOutputArtifact"] == pool
    assert second["artifacts"]["state"]["taskOutputArtifact"] == {"outputArtifactKey": "next_state",
                                                                   "producerTask": "stage1-iteration"}
    assert second["artifacts"]["pool"]["taskOutputArtifact"] == pool  # every iteration reads the one pool artifact
    assert [first["parameters"]["iteration"]["runtimeValue"]["constant"],
            second["parameters"]["iteration"]["runtimeValue"]["constant"]] == [1, 2]
    loop = tasks["for-loop-2"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--list-shards-Output"
    body = ir["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    assert set(body) == {"stage2-filter"}
    shard = body["stage2-filter"]["inputs"]["parameters"]["shard"]["componentInputParameter"]
    assert shard == "pipelinechannel--list-shards-Output-loop-item"
    merged = tasks["merge-shards"]["inputs"]["artifacts"]
    assert merged["parts"]["taskOutputArtifact"] == {"outputArtifactKey": "pipelinechannel--stage2-filter-filtered",
                                                     "producerTask": "for-loop-2"}
    assert merged["state"]["taskOutputArtifact"]["producerTask"] == "stage1-iteration-2"


def test_iterations_is_a_build_option(tmp_path):
    result = CliRunner().invoke(app, ["pipelines", "compile", "--out", str(tmp_path), "--name", "curation",
                                      "--iterations", "3"])
    assert result.exit_code == 0, result.output
    tasks = load_ir(tmp_path / "curation.yaml")["root"]["dag"]["tasks"]
    assert {"stage1-iteration", "stage1-iteration-2", "stage1-iteration-3"} <= set(tasks)


def test_training_suite_fans_out_over_the_eight_sizes_with_their_nodes_and_gpus(compiled):
    ir = compiled["training-suite"]
    plan = ir["root"]["inputDefinitions"]["parameters"]["plan"]["defaultValue"]
    paper = [s for s in catalog_sizes() if not load_config(s).demo]
    assert [p["size"] for p in plan] == paper and len(plan) == 8
    for item in plan:
        config = load_config(item["size"])
        assert (item["nodes"], item["gpus_per_node"]) == (config.nodes, config.gpus_per_node)
    loop = ir["root"]["dag"]["tasks"]["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--plan"
    launcher = ir["components"][loop["componentRef"]["name"]]["dag"]["tasks"]["train-launcher"]
    params = launcher["inputs"]["parameters"]
    for key, field in (("size", "size"), ("nodes", "nodes"), ("gpus_per_node", "gpus_per_node")):
        assert params[key]["parameterExpressionSelector"] == f'parseJson(string_value)["{field}"]'


def test_evaluation_requests_a_gpu_on_the_cluster_and_the_demo_does_not(compiled):
    ir = compiled["evaluation"]
    accelerator = executor_of(ir, ir["root"]["dag"]["tasks"]["evaluate"])["container"]["resources"]["accelerator"]
    assert accelerator["resourceType"] == "nvidia.com/gpu" and accelerator["resourceCount"] == "1"
    e2e, demo = compiled["end-to-end"], compiled["demo"]
    assert "accelerator" in executor_of(e2e, all_tasks(e2e)["evaluate"])["container"]["resources"]
    assert "accelerator" not in executor_of(demo, all_tasks(demo)["evaluate"])["container"]["resources"]


def test_end_to_end_runs_curation_then_train_evaluate_register_per_size(compiled):
    for name, trainer in (("end-to-end", "train-launcher"), ("demo", "train")):
        ir = compiled[name]
        tasks = all_tasks(ir)
        first = "ingest" if name == "end-to-end" else "generate"
        assert {first, "preprocess", "seed", "prepare-pool-shard", "stage1-iteration", "stage1-iteration-2", "merge-shards",
                trainer, "evaluate", "register"} <= set(tasks)
        # the demo versions the curated subset in its DVC registry before training reads it
        fed_by = "version-data-versioned" if name == "demo" else "merge-shards-curated"
        assert tasks[trainer]["inputs"]["artifacts"]["dataset"]["componentInputArtifact"] == \
            f"pipelinechannel--{fed_by}"
        if name == "demo":
            assert tasks["version-data"]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"] == \
                {"outputArtifactKey": "curated", "producerTask": "merge-shards"}
        assert tasks["evaluate"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == trainer
        register = tasks["register"]["inputs"]["artifacts"]
        assert register["report"]["taskOutputArtifact"]["producerTask"] == "evaluate"
    demo_plan = compiled["demo"]["root"]["inputDefinitions"]["parameters"]["plan"]["defaultValue"]
    assert len(demo_plan) >= 2 and all(load_config(p["size"]).demo for p in demo_plan)


def test_the_demo_trains_its_sizes_one_at_a_time_and_the_cluster_all_at_once(compiled):
    """In-process trainings share the laptop's cores; TrainJobs each have their own nodes."""
    def sizes_loop(ir: dict) -> dict:
        (loop,) = [t for t in ir["root"]["dag"]["tasks"].values() if t.get("parameterIterator", {}).get(
            "itemInput", "").endswith("plan-loop-item") and "sizes" in t["taskInfo"]["name"]]
        return loop

    assert sizes_loop(compiled["demo"])["iteratorPolicy"]["parallelismLimit"] == 1
    assert "iteratorPolicy" not in sizes_loop(compiled["end-to-end"])


@pytest.mark.parametrize("name", ["data", "curation", "training-suite", "evaluation", "end-to-end"])
def test_cluster_pipelines_give_every_task_the_charts_configmap_and_s3_secret_env(compiled, name):
    from rewardops.pipelines.resources import (
        CLIENT_CONFIGMAP, CLIENT_ENV, MLFLOW_AUTH_KEYS, MLFLOW_AUTH_SECRET, S3_KEYS, S3_SECRET)

    ir = compiled[name]
    executors = ir["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for task in container_tasks(ir).values():
        label = ir["components"][task["componentRef"]["name"]]["executorLabel"]
        config = executors[label]
        (configmap,) = config["configMapAsEnv"]
        assert configmap["configMapName"] == CLIENT_CONFIGMAP
        assert {kv["configMapKey"]: kv["envVar"] for kv in configmap["keyToEnv"]} == CLIENT_ENV
        assert CLIENT_ENV["REWARDOPS_JUDGE_BASE_URL"] == "REWARDOPS_LLM_BASE_URL"  # what the curation client reads
        secrets = {secret["secretName"]: secret for secret in config["secretAsEnv"]}
        assert set(secrets) == {S3_SECRET, MLFLOW_AUTH_SECRET}
        assert {kv["envVar"] for kv in secrets[S3_SECRET]["keyToEnv"]} == set(S3_KEYS)
        assert {kv["envVar"] for kv in secrets[MLFLOW_AUTH_SECRET]["keyToEnv"]} == set(MLFLOW_AUTH_KEYS)
        assert all(secret["optional"] for secret in secrets.values())


@pytest.mark.parametrize("name", PIPELINE_NAMES)
def test_only_the_launch_task_mounts_the_launchers_token(compiled, name):
    """The TrainJob launcher's service-account token Secret is mounted into train-launcher tasks
    and no other: every other step runs with the pipeline account alone (no TrainJob rights)."""
    from rewardops.k8s.trainjob import LAUNCHER_TOKEN_DIR, LAUNCHER_TOKEN_SECRET

    ir = compiled[name]
    executors = ir.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
    launch_tasks = 0
    for task_name, task in container_tasks(ir).items():
        label = ir["components"][task["componentRef"]["name"]]["executorLabel"]
        volumes = executors.get(label, {}).get("secretAsVolume", [])
        mounted = [(v.get("secretName") or v["secretNameParameter"]["runtimeValue"]["constant"], v["mountPath"])
                   for v in volumes]
        if task["componentRef"]["name"].startswith("comp-train-launcher"):
            launch_tasks += 1
            assert mounted == [(LAUNCHER_TOKEN_SECRET, LAUNCHER_TOKEN_DIR)], (task_name, volumes)
        else:
            assert mounted == [], (task_name, volumes)
    if name in ("training-suite", "end-to-end"):
        assert launch_tasks >= 1


def test_the_local_demo_carries_no_kubernetes_config(compiled):
    assert "platforms" not in compiled["demo"]


def test_the_label_studio_steps_read_the_one_pool_artifact(tmp_path):
    """With people in the loop, the open and collect steps run the iteration too: on a cluster they
    can reach the pool only as an input artifact (a path in state.json names another pod's disk)."""
    from kfp import compiler

    from rewardops.pipelines import curation

    path = tmp_path / "curation-labelstudio.yaml"
    compiler.Compiler().compile(curation.build(iterations=2, labelstudio=True), str(path))
    tasks = load_ir(path)["root"]["dag"]["tasks"]
    pool = {"outputArtifactKey": "pool", "producerTask": "assemble-pool"}
    ls_steps = [name for name in tasks if name.startswith(("labelstudio-open", "labelstudio-collect"))]
    assert len(ls_steps) == 4
    for name in ls_steps:
        assert tasks[name]["inputs"]["artifacts"]["pool"]["taskOutputArtifact"] == pool, name
