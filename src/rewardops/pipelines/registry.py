"""The RewardOps pipelines (KFP v2), by name, with the checks `rewardops pipelines submit` runs.

| name           | what                                                                  |
|----------------|-----------------------------------------------------------------------|
| data           | ingest -> preprocess (runs locally in seconds)                        |
| curation       | seed -> pool prep and stage 2 per shard, stage-1 iterations between   |
| training-suite | ParallelFor over catalog sizes, each a TrainJob with its nodes / GPUs |
| evaluation     | benchmarks for one model                                              |
| end-to-end     | curation -> training suite (TrainJobs) -> evaluation -> registry      |
| demo           | end-to-end on the generated world, demo sizes trained in-process,    |
|                | and the data ablation: one size on arms a-d, one table               |
| ablation       | end-to-end on your data with the data ablation (arms a-c) on         |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rewardops.pipelines import curation, data, end_to_end, evaluation, training_suite
from rewardops.pipelines.resources import fast_task_config


@dataclass(frozen=True)
class PipelineEntry:
    name: str
    build: Callable[..., Any]  # (**options) -> the @dsl.pipeline function
    description: str
    options: Mapping[str, Any] = field(default_factory=dict)
    cluster: bool = True  # tasks get the chart's ConfigMap / Secret env (pipelines.resources.cluster_env)


PIPELINES: dict[str, PipelineEntry] = {
    "data": PipelineEntry("data", data.build, "ingest -> preprocess"),
    "curation": PipelineEntry("curation", curation.build, "two-stage curation", options={"iterations": curation.DEFAULT_ITERATIONS}),
    "training-suite": PipelineEntry("training-suite", training_suite.build, "every catalog size as a TrainJob"),
    "evaluation": PipelineEntry("evaluation", evaluation.build, "benchmarks for one model"),
    "end-to-end": PipelineEntry("end-to-end", lambda **o: end_to_end.build(local=False, **o),
                                "curation -> TrainJob suite -> evaluation -> registry", options={"iterations": curation.DEFAULT_ITERATIONS}),
    "demo": PipelineEntry("demo", lambda **o: end_to_end.build(local=True, **o),
                          "the end-to-end pipeline on the generated world, demo sizes in-process",
                          options={"iterations": curation.DEFAULT_ITERATIONS}, cluster=False),
    "ablation": PipelineEntry("ablation", lambda **o: end_to_end.build(local=False, ablation=True, **o),
                              "end-to-end plus the data ablation: one size on uncurated / curated / curated+recycled",
                              options={"iterations": curation.DEFAULT_ITERATIONS}),
}


def get(name: str) -> PipelineEntry:
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline {name!r}; choose one of: {', '.join(PIPELINES)}")
    return PIPELINES[name]


def build(name: str, **options: Any) -> Any:
    """The `@dsl.pipeline` function of pipeline `name` (built now, with `options`)."""
    entry = get(name)
    with fast_task_config(cluster=entry.cluster):
        return entry.build(**{**entry.options, **options})
