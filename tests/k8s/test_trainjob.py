"""TrainJob manifests from the training catalog, checked against the vendored Trainer CRD schema."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import pytest

from rewardops.k8s.schema import ManifestInvalid, load_openapi_schema, trainjob_errors, validate_trainjob
from rewardops.k8s.trainjob import (
    S3Credentials,
    TrainJobConfigError,
    Accelerator,
    TrainJobRequest,
    build_trainjob,
    dns_label,
    size_plan,
    trainjob_for_size,
)
from rewardops.training.config import catalog_sizes, config_from_json, load_config

REPO = Path(__file__).resolve().parents[2]
S3 = S3Credentials("rewardops-s3", endpoint_url="http://minio.rewardops:9000")
PAPER_SIZES = [s for s in catalog_sizes() if not load_config(s).demo]
DEMO_SIZES = [s for s in catalog_sizes() if load_config(s).demo]


def job(size: str, **kwargs) -> dict:
    kwargs.setdefault("data_uri", "s3://rewardops-dvc/subsets/stage2")
    kwargs.setdefault("output_uri", f"s3://rewardops-checkpoints/{size}")
    kwargs.setdefault("mlflow_tracking_uri", "http://mlflow.rewardops:5000")
    kwargs.setdefault("s3", S3)
    return trainjob_for_size(size, **kwargs)


def env_of(manifest: dict) -> dict[str, dict]:
    return {e["name"]: e for e in manifest["spec"]["trainer"]["env"]}


def test_the_catalog_has_the_eight_paper_sizes_and_a_demo_ladder():
    assert len(PAPER_SIZES) == 8 and len(DEMO_SIZES) >= 2


@pytest.mark.parametrize("size", PAPER_SIZES)
def test_paper_sizes_run_deepspeed_under_mpi_with_the_catalogs_nodes_and_gpus(size):
    config = load_config(size)
    manifest = job(size)
    assert trainjob_errors(manifest) == []
    trainer = manifest["spec"]["trainer"]
    assert manifest["spec"]["runtimeRef"]["name"] == "deepspeed-distributed"
    assert trainer["numNodes"] == config.nodes == 8
    resources = trainer["resourcesPerNode"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == config.gpus_per_node == 8
    assert trainer["numProcPerNode"] == 8  # one MPI slot per GPU
    command = trainer["command"]
    assert command[:3] == ["mpirun", "--hostfile", "/etc/mpi/hostfile"]
    start = command.index("rewardops")
    assert command[start:start + 4] == ["rewardops", "train", "--no-progress", "--config-json"]
    resolved = config_from_json(command[start + 4])  # the config travels once, resolved
    assert (resolved.size, resolved.lr, resolved.data) == (size, config.lr, "s3://rewardops-dvc/subsets/stage2")
    assert len(command) == start + 5
    assert manifest["metadata"]["labels"]["rewardops.io/size"] == dns_label(size)


@pytest.mark.parametrize("size", catalog_sizes())
def test_every_node_gets_mlflow_s3_credentials_path_and_nccl_from_the_launcher(size):
    """mpirun exports (-x) every env name the trainer sets, PATH and NCCL_*; values stay out of the command."""
    manifest = job(size, nccl_env={"NCCL_DEBUG": "WARN", "NCCL_SOCKET_IFNAME": "eth0"}, run_id="run-7",
                   data_version="md5-1", mlflow_auth_secret="rewardops-mlflow-client")
    trainer = manifest["spec"]["trainer"]
    names = [e["name"] for e in trainer["env"]]
    needed = {"MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
              "AWS_SECRET_ACCESS_KEY", "NCCL_DEBUG", "NCCL_SOCKET_IFNAME", "REWARDOPS_PIPELINE_RUN_ID",
              "REWARDOPS_DATA_DVC_HASH", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"}
    assert needed <= set(names)
    env = env_of(manifest)
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "rewardops-mlflow-client", "key": key, "optional": True}
    command = trainer["command"]
    if command[0] == "mpirun":
        head = command[:command.index("rewardops")]
        exported = [head[i + 1] for i, arg in enumerate(head) if arg == "-x"]
        assert set(exported) == {*names, "PATH"}
        assert all("=" not in name for name in exported)  # by name: values (secrets) are never inlined
    else:  # torch runtime: every node's container gets the same env list, torchrun needs no export
        assert command[:3] == ["torchrun", "--no-python", "rewardops"]
    assert "minio123" not in str(manifest) and "eth0" not in " ".join(command)


@pytest.mark.parametrize("size", DEMO_SIZES)
def test_demo_sizes_run_torchrun_on_one_node(size):
    trainer = job(size)["spec"]["trainer"]
    assert trainer["command"][:3] == ["torchrun", "--no-python", "rewardops"]
    assert trainer["numNodes"] == 1 and trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 1
    assert trainer["resourcesPerNode"]["requests"]["nvidia.com/gpu"] == 1


def test_env_carries_mlflow_and_data_uris_and_s3_keys_only_by_secret_reference():
    manifest = job("qwen3-4b", eval_data_uri="s3://rewardops-dvc/gold", data_version="md5-3f2a", nccl_env={})
    env = env_of(manifest)
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.rewardops:5000"
    assert env["REWARDOPS_DATA_DVC_HASH"]["value"] == "md5-3f2a"  # read by the lineage tags
    # only what the pod reads: the data and output URIs travel in the resolved config, not as env
    assert set(env) == {"MLFLOW_TRACKING_URI", "REWARDOPS_DATA_DVC_HASH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                        "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"}
    command = manifest["spec"]["trainer"]["command"]
    assert config_from_json(command[-1]).eval_data == "s3://rewardops-dvc/gold"
    assert env["AWS_ENDPOINT_URL"]["value"] == env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.rewardops:9000"
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert "value" not in env[key]
        assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "rewardops-s3", "key": key}
    assert "minio123" not in str(manifest)


def test_cluster_specific_runtime_names_come_from_the_client_configmap_env(monkeypatch):
    monkeypatch.setenv("REWARDOPS_DEEPSPEED_RUNTIME", "rewardops-deepspeed")
    assert job("qwen3-8b")["spec"]["runtimeRef"]["name"] == "rewardops-deepspeed"
    # a runtime the chart did not install is refused: TrainJobs reach only the chart's runtimes
    with pytest.raises(ManifestInvalid, match="ClusterTrainingRuntime/deepspeed-distributed is not one of the chart's"):
        job("qwen3-8b", runtime="deepspeed-distributed")


def test_overrides_reshape_the_job_and_bad_ones_fail_before_the_cluster():
    trainer = job("qwen3-0.6b", overrides={"nodes": 2, "gpus_per_node": 4, "global_batch": 256, "lr": 1e-5})["spec"]["trainer"]
    assert trainer["numNodes"] == 2 and trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == 4
    resolved = config_from_json(trainer["command"][-1])
    assert (resolved.global_batch, resolved.lr, resolved.nodes) == (256, 1e-5, 2)
    with pytest.raises(TrainJobConfigError, match="not divisible by the world size 64"):
        job("qwen3-0.6b", overrides={"global_batch": 1000})
    with pytest.raises(TrainJobConfigError, match=r"unknown size 'qwen3-9b'.*qwen3-0.6b"):
        job("qwen3-9b")
    with pytest.raises(TrainJobConfigError, match="at least one node"):
        job("qwen3-0.6b", overrides={"nodes": 0})


def test_names_carry_the_run_and_what_is_trained_and_mlflow_tags_name_the_job():
    a = job("qwen3-0.6b", run_id="7f3c2a9e-1111-2222", data_version="md5-1")
    b = job("qwen3-0.6b", run_id="0d9e8f7a-3333-4444", data_version="md5-1")  # a rerun on the same data
    c = job("qwen3-0.6b", run_id="7f3c2a9e-1111-2222", data_version="md5-2")
    la, lb, lc = (m["metadata"]["labels"] for m in (a, b, c))
    assert a["metadata"]["name"].endswith("-7f3c2a9e") and la["rewardops.io/pipeline-run-id"] == "7f3c2a9e-1111-2222"
    assert la["rewardops.io/content-hash"] == lb["rewardops.io/content-hash"] != lc["rewardops.io/content-hash"]
    tags = config_from_json(a["spec"]["trainer"]["command"][-1]).run_tags
    assert tags == {"rewardops.trainjob": a["metadata"]["name"], "rewardops.pipeline.run_id": "7f3c2a9e-1111-2222"}


def test_accelerator_name_and_per_node_count_come_from_the_settings(monkeypatch):
    amd = job("qwen3-0.6b", accelerator=Accelerator("amd.com/gpu", 8, {"gpu.vendor": "amd"}))
    resources = amd["spec"]["trainer"]["resourcesPerNode"]
    assert resources["limits"] == resources["requests"] == {"amd.com/gpu": 8}
    (patch,) = amd["spec"]["runtimePatches"]
    pod = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu.vendor": "amd"}
    assert pod["tolerations"] == [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    monkeypatch.setenv("REWARDOPS_ACCELERATOR", "nvidia.com/gpu")
    monkeypatch.setenv("REWARDOPS_GPUS_PER_NODE", "4")
    with pytest.raises(TrainJobConfigError, match="gpus_per_node=8 is more than one node has \\(4 nvidia.com/gpu"):
        job("qwen3-0.6b")
    monkeypatch.setenv("REWARDOPS_ACCELERATOR", "gpu")
    with pytest.raises(TrainJobConfigError, match="'gpu' is not an extended resource name.*REWARDOPS_ACCELERATOR"):
        job("qwen3-0.6b")


@pytest.mark.parametrize("max_per_node", [8, 6, 4, 2, 1])
def test_the_eight_size_plan_never_asks_a_node_for_more_gpus_than_it_has(max_per_node):
    accelerator = Accelerator("nvidia.com/gpu", max_per_node)
    plan = size_plan(accelerator=accelerator)
    assert len(plan) == 8
    for item in plan:
        config = load_config(item["size"])
        assert item["gpus_per_node"] <= max_per_node
        assert item["nodes"] * item["gpus_per_node"] == config.nodes * config.gpus_per_node == 64  # same world
        manifest = job(item["size"], accelerator=accelerator,
                       overrides={"nodes": item["nodes"], "gpus_per_node": item["gpus_per_node"]})
        assert trainjob_errors(manifest) == []


def test_request_level_checks():
    base = dict(name="x", train_args=["train"])
    with pytest.raises(TrainJobConfigError, match="framework 'jax'"):
        build_trainjob(TrainJobRequest(**base, framework="jax"))
    with pytest.raises(TrainJobConfigError, match="in plain text"):
        build_trainjob(TrainJobRequest(**base, s3=S3, env={"AWS_SECRET_ACCESS_KEY": "oops"}))
    cpu = build_trainjob(TrainJobRequest(**base, gpus_per_node=0, cpu_per_node="4", memory_per_node="16Gi"))
    resources = cpu["spec"]["trainer"]["resourcesPerNode"]
    assert resources == {"limits": {"memory": "16Gi"}, "requests": {"cpu": "4", "memory": "16Gi"}}


def test_names_become_rfc1035_labels():
    assert dns_label("Qwen3-0.6B_run#1") == "qwen3-0-6b-run-1"
    assert dns_label("8b-run").startswith("rm-8b-run")
    long = dns_label("llama-3.1-8b-40m-" + "x" * 80)
    assert len(long) <= 63 and long != dns_label("llama-3.1-8b-40m-" + "y" * 80)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m["spec"]["trainer"].__setitem__("numNode", 2), "Additional properties are not allowed ('numNode'"),
        (lambda m: m["spec"]["trainer"].__setitem__("numNodes", "8"), "spec.trainer.numNodes: '8' is not of type 'integer'"),
        (lambda m: m["spec"]["trainer"].__setitem__("numNodes", 2**31), "spec.trainer.numNodes: 2147483648 is greater than"),
        (lambda m: m["spec"]["trainer"]["resourcesPerNode"]["limits"].__setitem__("nvidia.com/gpu", "8 GPUs"),
         "spec.trainer.resourcesPerNode.limits.nvidia.com/gpu"),
        (lambda m: m["spec"]["trainer"]["env"].append({"name": "MLFLOW_TRACKING_URI", "value": "x"}),
         "duplicate entry with {'name': 'MLFLOW_TRACKING_URI'}"),
        (lambda m: m["spec"]["trainer"]["env"].append({"value": "nameless"}), "'name' is a required property"),
        (lambda m: m["spec"].pop("runtimeRef"), "spec: 'runtimeRef' is a required property"),
        (lambda m: m["spec"]["runtimeRef"].__setitem__("name", ""), "spec.runtimeRef.name"),
        (lambda m: m["metadata"].__setitem__("name", "RM-Qwen"), "must match RFC 1035 DNS label format"),
        (lambda m: m["metadata"].__setitem__("name", "a" * 64), "no more than 63 characters"),
        (lambda m: m["spec"].__setitem__("managedBy", "me"), "spec.managedBy: must be one of"),
        (lambda m: m.__setitem__("apiVersion", "kubeflow.org/v1"), "apiVersion: expected trainer.kubeflow.org/v1alpha1"),
    ],
)
def test_schema_rejects_what_the_api_server_would(mutate, expected):
    manifest = copy.deepcopy(job("qwen3-0.6b"))
    mutate(manifest)
    errors = trainjob_errors(manifest)
    assert any(expected in e for e in errors), errors
    with pytest.raises(ManifestInvalid, match="is not a valid TrainJob for this cluster"):
        validate_trainjob(manifest)


def test_vendored_schema_records_its_source_and_keeps_the_fields_we_use():
    schema = load_openapi_schema()
    trainer = schema["properties"]["spec"]["properties"]["trainer"]["properties"]
    assert {"image", "command", "args", "env", "numNodes", "resourcesPerNode", "numProcPerNode"} <= set(trainer)
    status = schema["properties"]["status"]["properties"]
    assert {"conditions", "jobsStatus", "trainerStatus"} <= set(status)
    # v2.3.0's release CRD: trainerStatus with its CEL rule, the 1 MiB command items
    assert status["trainerStatus"]["x-kubernetes-validations"][0]["rule"] == "has(self.lastUpdatedTime)"
    assert trainer["command"]["items"]["maxLength"] == 1048576
    readme = (REPO / "src/rewardops/k8s/crds/README.md").read_text()
    digest = hashlib.sha256((REPO / "src/rewardops/k8s/crds/trainer.kubeflow.org_trainjobs.yaml").read_bytes()).hexdigest()
    assert "v2.3.0" in readme and "658725bdae5c7e3a0854d93ac6ff492e109a22ab" in readme and digest in readme
