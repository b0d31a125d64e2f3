"""Submit-time checks: a parameter that cannot work fails here, not an hour into a run.

`check(name, params)` returns every problem with `params` for pipeline `name` (empty when they
can work); `rewardops pipelines submit` and `run --local` refuse to start with any.

Endpoints are the cluster's, never a parameter's: `overrides` that name a host, a registry name
or a checkpoint destination (`rewardops.training.config.refuse_cluster_settings`) and curation
`settings` that name a server (`CurationSettings`) are refused here, and again by the step that
uses them (a pipeline can be submitted without this CLI).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

URI_SCHEMES = ("s3://", "minio://", "gs://", "https://", "http://", "oci://")


def _data_version(params: Mapping[str, Any]) -> list[str]:
    version = params.get("data_version")
    if not isinstance(version, str) or not version.strip():
        return ["data_version is missing: pass --data PATH (its DVC hash or content hash is computed) or "
                "--param data_version=<dvc md5 | sha256:...>; without it the pipeline cache cannot tell "
                "changed data from unchanged data"]
    return []


def _plan(params: Mapping[str, Any], output_root_needed: bool, demo: bool = False) -> list[str]:
    from rewardops.k8s.trainjob import TrainJobConfigError, confine_output_root, request_for_size

    from rewardops.training.config import ConfigError, refuse_cluster_settings

    problems: list[str] = []
    overrides = params.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        return [f"overrides={overrides!r}: give a JSON object of training settings, e.g. "
                "--param overrides='{\"lr\": 1e-5, \"zero_stage\": 3}'"]
    try:
        refuse_cluster_settings(overrides, "overrides")
    except ConfigError as exc:
        return [str(exc)]
    plan = params.get("plan")
    if plan is None:
        return problems
    if not isinstance(plan, list) or not plan:
        return ["plan must be a non-empty list of {size, nodes, gpus_per_node} entries"]
    for i, item in enumerate(plan):
        if not isinstance(item, Mapping) or "size" not in item:
            problems.append(f"plan[{i}]: {item!r} is not a {{size, nodes, gpus_per_node}} entry")
            continue
        nodes, gpus = item.get("nodes", 1), item.get("gpus_per_node", 1)
        if not isinstance(nodes, int) or nodes < 1:
            problems.append(f"plan[{i}] ({item['size']}): nodes={nodes!r} must be a positive integer")
            continue
        if not isinstance(gpus, int) or gpus < 0:
            problems.append(f"plan[{i}] ({item['size']}): gpus_per_node={gpus!r} must be a non-negative integer")
            continue
        try:
            request_for_size(item["size"], data_uri="s3://check/data", output_uri="s3://check/out",
                             overrides={**overrides, "nodes": nodes, "gpus_per_node": gpus},
                             profile=str(params.get("profile", "final")))
        except TrainJobConfigError as exc:
            problems.append(f"plan[{i}]: {exc}")
    if output_root_needed:
        root = params.get("output_root")
        if not isinstance(root, str) or not root.startswith(("s3://", "gs://")):
            problems.append(f"output_root={root!r}: the TrainJobs write the models there; give an s3:// URI "
                            "(e.g. s3://rewardops-checkpoints/runs)")
        else:
            try:  # where the submitting machine has the chart's env (a notebook in the cluster); the step checks again
                confine_output_root(root)
            except TrainJobConfigError as exc:
                problems.append(str(exc))
    return problems


def _uri(params: Mapping[str, Any], key: str) -> list[str]:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        return [f"{key} is missing"]
    if not value.startswith(URI_SCHEMES):
        return [f"{key}={value!r}: a cluster run reads artifacts from object storage; use one of {', '.join(URI_SCHEMES)}"]
    return []


def _settings(params: Mapping[str, Any]) -> list[str]:
    from rewardops.curation.settings import CurationSettings

    try:
        settings = CurationSettings.parse(params.get("settings") or "")
    except (ValueError, TypeError) as exc:
        return [f"settings: {exc}"]
    if settings.annotator.partition(":")[0] == "terminal":
        return [f"settings: annotator {settings.annotator!r} needs a person at a terminal, which a pipeline step does "
                "not have; use annotator labelstudio, or simulated:ERR on generated data (the `demo` profile)"]
    return []


def _benchmarks(params: Mapping[str, Any], key: str = "benchmarks") -> list[str]:
    if key not in params:
        return []
    try:
        from rewardops.evaluation.benchmarks import parse_names

        parse_names(str(params[key]))
    except (KeyError, ValueError) as exc:
        return [f"{key}={params[key]!r}: {exc}"]
    return []


def _eval_sources(params: Mapping[str, Any], key: str = "eval_sources") -> list[str]:
    bad = [v for v in params.get(key) or [] if "=" not in str(v) or not str(v).split("=", 1)[0].strip()]
    return [f"{key}: {v!r} is not NAME=PATH_OR_HF_ID" for v in bad]


def check(name: str, params: Mapping[str, Any], local: bool = False) -> list[str]:
    """Every reason `params` cannot work for pipeline `name` (`local`: a kfp.local run)."""
    problems = _data_version(params)
    if name == "data":
        if not params.get("sources"):
            problems.append("sources is missing: the files or folders to ingest")
        if params.get("benchmarks"):
            problems += _benchmarks(params)
        problems += _eval_sources(params)
    elif name == "curation":
        problems += ([] if local else _uri(params, "dataset_uri")) + _settings(params)
    elif name == "training-suite":
        problems += ([] if local else _uri(params, "dataset_uri")) + _plan(params, output_root_needed=True)
    elif name == "evaluation":
        problems += ([] if local else _uri(params, "model_uri")) + _benchmarks(params)
    elif name == "end-to-end":
        if not params.get("sources"):
            problems.append("sources is missing: the data to ingest")
        problems += _settings(params) + _plan(params, output_root_needed=True) + _benchmarks(params)
    elif name == "demo":
        problems += _settings(params) + _plan(params, output_root_needed=False) + _benchmarks(params)
    return problems
