"""data: ingest -> preprocess. The smallest real pipeline; `rewardops run data --local` runs it."""

from typing import List

from kfp import dsl

from rewardops.pipelines.components.ingest import ingest
from rewardops.pipelines.components.preprocess import preprocess
from rewardops.pipelines.resources import sized


def build():
    @dsl.pipeline(name="rewardops-data", description="Ingest preference data, then dedup and decontaminate it.")
    def data_pipeline(sources: List[str], data_version: str, decontaminate: List[str] = []):
        raw = sized(ingest(sources=sources, data_version=data_version), "data")
        sized(preprocess(raw=raw.outputs["dataset"], data_version=data_version, decontaminate=decontaminate), "data")

    return data_pipeline
