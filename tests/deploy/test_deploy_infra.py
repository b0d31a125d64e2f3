"""infra/: the images, the kind cluster and the bootstrap script agree with the chart and the
package. No Docker daemon or cluster runs here, so these are consistency checks; the images are
built by infra/bootstrap.sh."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib

import yaml

from support.chart_support import CHART, KIND_VALUES, REPO, render
from rewardops.k8s.images import component_image, training_image

INFRA = REPO / "infra"


def _dockerfile(name: str) -> str:
    return (INFRA / name).read_text()


def _arg(dockerfile: str, name: str) -> str:
    match = re.search(rf"^ARG {name}=(\S*)$", dockerfile, re.M)
    assert match, f"no ARG {name}"
    return match.group(1)


def _pyproject_pin(package: str) -> str:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if re.match(rf"{package}\b", d)]
    return pin


def test_images_run_as_non_root_user_1000() -> None:
    for name in ("Dockerfile.component", "Dockerfile.training"):
        text = _dockerfile(name)
        users = re.findall(r"^USER (\S+)$", text, re.M)
        assert users and all(u == "1000:1000" for u in users), f"{name}: USER {users}"
        assert (INFRA / f"{name}.dockerignore").is_file(), f"{name}: no .dockerignore (the context is the repo root)"


def test_torch_pin_matches_pyproject() -> None:
    pin = _pyproject_pin("torch")
    for name in ("Dockerfile.component", "Dockerfile.training"):
        assert pin == f"torch=={_arg(_dockerfile(name), 'TORCH_VERSION')}", f"{name} drifted from pyproject {pin}"


def test_mlflow_server_matches_the_client_version() -> None:
    assert _arg(_dockerfile("Dockerfile.component"), "MLFLOW_VERSION") == importlib.metadata.version("mlflow")


def test_training_image_matches_the_runtime_contract() -> None:
    """The chart's DeepSpeed runtime runs sshd from the image with a config path, port, user and
    HOME that the training Dockerfile must provide."""
    text = _dockerfile("Dockerfile.training")
    runtime = next(d for d in render() if d["kind"] == "ClusterTrainingRuntime" and d["spec"]["mlPolicy"].get("mpi"))
    node = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]
    container = node["spec"]["containers"][0]
    config = container["args"][container["args"].index("-f") + 1]
    assert f"> {config}" in text, f"the image does not write {config}"
    assert "'Port 2222'" in text and container["readinessProbe"]["tcpSocket"]["port"] == 2222
    assert "PidFile /tmp/sshd.pid" in text  # / is read-only; /tmp is an emptyDir
    assert "--uid 1000" in text and node["spec"]["securityContext"]["runAsUser"] == 1000
    home = {e["name"]: e.get("value") for e in container["env"]}["HOME"]
    assert home == "/home/mpiuser" and "HOME=/home/mpiuser" in text
    assert runtime["spec"]["mlPolicy"]["mpi"]["sshAuthMountPath"] == "/home/mpiuser/.ssh"
    assert "HostKey /home/mpiuser/.ssh/id_rsa" in text
    assert "setcap" not in re.sub(r"#.*", "", text), "a setcap sshd cannot exec with every capability dropped"
    assert "flash-attn" in text and "deepspeed" in (REPO / "pyproject.toml").read_text()


def test_chart_images_are_the_ones_pipelines_use() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == importlib.metadata.version("rewardops")
    docs = render()
    test_pod = next(d for d in docs if d["kind"] == "Pod")
    assert test_pod["spec"]["containers"][0]["image"] == component_image()
    runtime = next(d for d in docs if d["kind"] == "ClusterTrainingRuntime")
    images = {rj["template"]["spec"]["template"]["spec"]["containers"][0]["image"]
              for rj in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    assert images == {training_image()}


def test_kind_cluster_config() -> None:
    config = yaml.safe_load((INFRA / "kind-cluster.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    roles = [n["role"] for n in config["nodes"]]
    assert roles.count("control-plane") == 1 and roles.count("worker") >= 2  # a 2-node TrainJob spans nodes
    values = yaml.safe_load(KIND_VALUES.read_text())
    assert values["minio"]["persistence"]["storageClassName"] == "standard"  # kind's provisioner
    assert values["judge"]["enabled"] is False and values["trainingRuntimes"]["gpusPerNode"] == 0


def test_bootstrap_script() -> None:
    script = INFRA / "bootstrap.sh"
    text = script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert script.stat().st_mode & 0o111, "bootstrap.sh must be executable"
    for path in re.findall(r"\b((?:infra|charts)/[\w./-]+)", text):
        assert (REPO / path).exists(), f"bootstrap.sh refers to missing {path}"
    for needle in ("kubeflow/trainer.git/manifests/overlays/manager?ref=$TRAINER_VERSION",
                   "kubeflow/trainer.git/manifests/overlays/runtimes?ref=$TRAINER_VERSION",
                   "kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=$PIPELINE_VERSION",
                   "pod-security.kubernetes.io/enforce=restricted", '"$HELM" test rewardops', "kind load docker-image"):
        assert needle in text, needle
    # The releases it installs are the ones the stand-ins' vendored schemas come from.
    from support.contracts import vendored_sources

    tags = {(src["repository"], src["tag"]) for src in vendored_sources()}
    trainer = re.search(r'TRAINER_VERSION="\$\{TRAINER_VERSION:-([^}]+)\}"', text).group(1)
    pipelines = re.search(r'PIPELINE_VERSION="\$\{PIPELINE_VERSION:-([^}]+)\}"', text).group(1)
    assert ("kubeflow/trainer", trainer) in tags and ("kubeflow/pipelines", pipelines) in tags, (trainer, pipelines)
    # Every Secret the default chart references is created by the script.
    referenced = {ref["name"] for doc in render() for ref in _secret_refs(doc)}
    created = set(re.findall(r"ensure_secret \"\$NAMESPACE\" (\S+)", text))
    assert referenced <= created, f"bootstrap.sh does not create {referenced - created}"


def _secret_refs(node):
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for value in node.values():
            yield from _secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_refs(item)
