"""data: ingest -> preprocess. The smallest real pipeline; `rewardops run data --local` runs it."""

from typing import List

from kfp import dsl

from rewardops.pipelines.components.ingest import ingest
from rewardops.pipelines.components.preprocess import preprocess
from rewardops.pipelines.resources import sized


def build():
    @dsl.pipeline(name="rewardops-data", description="Ingest preference data, then dedup and decontaminate it.")
    def data_pipeline(
        sources: List[str],
        data_version: str,
        decontaminate: List[str] = [],
        benchmarks: str = "",
        eval_sources: List[str] = [],
        eval_data_dir: str = "",
        eval_world_n: int = 256,
    ):
        # `benchmarks` / `eval_sources` / `eval_data_dir` / `eval_world_n` name the evaluation the
        # data will be judged on (as the evaluate component takes them): its prompts are removed.
        raw = sized(ingest(sources=sources, data_version=data_version), "data")
        sized(preprocess(raw=raw.outputs["dataset"], data_version=data_version, decontaminate=decontaminate,
                         benchmarks=benchmarks, benchmark_sources=eval_sources, benchmark_data_dir=eval_data_dir,
                         world_n=eval_world_n), "data")

    return data_pipeline
