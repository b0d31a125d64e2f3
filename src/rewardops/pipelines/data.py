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
        """Ingest preference data, then structural checks, exact dedup and decontamination.

        Args:
            sources: Files, folders or Hugging Face dataset ids to ingest (JSON/JSONL(.gz)/Parquet, hh-rlhf, TRL, ShareGPT, our shards).
            data_version: DVC hash or content hash of the sources; part of every step's cache key.
            decontaminate: Extra benchmark prompt files or folders to decontaminate against.
            benchmarks: The evaluation the data will be judged on (all, all+world or a comma list): its prompts are removed.
            eval_sources: NAME=PATH entries giving a benchmark's files, folder or Hugging Face id (as the evaluate step takes them).
            eval_data_dir: Folder with one sub-folder per benchmark (as the evaluate step takes it).
            eval_world_n: Held-out generated-world items when `world` is among the benchmarks.
        """
        raw = sized(ingest(sources=sources, data_version=data_version), "data").set_display_name("ingest sources")
        sized(preprocess(raw=raw.outputs["dataset"], data_version=data_version, decontaminate=decontaminate,
                         benchmarks=benchmarks, benchmark_sources=eval_sources, benchmark_data_dir=eval_data_dir,
                         world_n=eval_world_n), "data").set_display_name("preprocess (dedup, decontaminate)")

    return data_pipeline
