"""The chart and the KFP shell agree on names: the client ConfigMap's keys are the ones every
pipeline task maps to env, and the Secrets the tasks mount are the ones the chart creates."""

from __future__ import annotations

import json

from support.chart_support import render

from rewardops.k8s.trainjob import GPU_NODE_SELECTOR_ENV, GPU_TOLERATIONS_ENV, GPUS_PER_NODE_ENV, ACCELERATOR_ENV
from rewardops.pipelines.resources import CLIENT_CONFIGMAP, CLIENT_KEYS, MLFLOW_AUTH_SECRET, S3_SECRET

GPU_VALUES = (
    "judge.enabled=true",
    "judge.gpus=1",
    "trainingRuntimes.gpuResource=amd.com/gpu",
    "trainingRuntimes.maxGpusPerNode=4",
    "trainingRuntimes.nodeSelector.pool=gpu",
    "trainingRuntimes.tolerations[0].key=amd.com/gpu",
    "trainingRuntimes.tolerations[0].operator=Exists",
    "trainingRuntimes.tolerations[0].effect=NoSchedule",
)


def _client_configmaps(docs):
    return [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == CLIENT_CONFIGMAP]


def test_client_configmap_keys_are_the_ones_pipeline_tasks_map():
    docs = render(set_values=GPU_VALUES)
    maps = _client_configmaps(docs)
    assert maps, f"no ConfigMap {CLIENT_CONFIGMAP} for a release named rewardops"
    for cm in maps:
        keys = set(cm["data"])
        # every key the chart writes reaches the tasks, and every key the tasks map exists
        assert keys <= set(CLIENT_KEYS), f"keys no task reads: {sorted(keys - set(CLIENT_KEYS))}"
        assert set(CLIENT_KEYS) <= keys, f"keys the chart does not set: {sorted(set(CLIENT_KEYS) - keys)}"


def test_accelerator_values_reach_the_launcher_in_the_format_it_parses():
    (cm, *_) = _client_configmaps(render(set_values=GPU_VALUES))
    data = cm["data"]
    assert data[ACCELERATOR_ENV] == "amd.com/gpu"
    assert data[GPUS_PER_NODE_ENV] == "4"
    assert data[GPU_NODE_SELECTOR_ENV] == "pool=gpu"
    assert json.loads(data[GPU_TOLERATIONS_ENV]) == [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_the_secrets_tasks_mount_are_the_charts():
    docs = render(set_values=GPU_VALUES)
    (cm, *_) = _client_configmaps(docs)
    assert cm["data"]["REWARDOPS_S3_SECRET"] == S3_SECRET
    assert cm["data"]["REWARDOPS_MLFLOW_AUTH_SECRET"] == MLFLOW_AUTH_SECRET
