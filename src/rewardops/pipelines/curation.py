"""curation: seed annotation, stage-1 iterations, then stage 2 fanned out over pool shards."""

from kfp import dsl
from kfp.dsl import Dataset

from rewardops.pipelines.components.annotate import annotate
from rewardops.pipelines.components.shards import curation_models, list_shards, merge_shards
from rewardops.pipelines.components.stage1_iteration import stage1_iteration
from rewardops.pipelines.components.stage2_filter import stage2_filter
from rewardops.pipelines.resources import sized


def curate(dataset, data_version, iterations: int, gold_n, silver_n, pool_shards, settings):
    """The curation DAG on a Dataset channel; returns the merge task (outputs curated, recycled).

    Stage-1 iterations are sequential by nature (each trains on the last one's sets), so they are
    unrolled at compile time: `iterations` is a build option, not a run parameter.
    """
    state = sized(annotate(dataset=dataset, data_version=data_version, gold_n=gold_n, silver_n=silver_n,
                           pool_shards=pool_shards, settings=settings), "curation").set_display_name("seed annotation")
    current = state.outputs["state"]
    for i in range(1, iterations + 1):
        step = sized(stage1_iteration(state=current, iteration=i, data_version=data_version, settings=settings),
                     "curation").set_display_name(f"stage 1 iteration {i}")
        current = step.outputs["next_state"]
    models = sized(curation_models(state=current, data_version=data_version, settings=settings), "curation")
    shards = sized(list_shards(state=current, data_version=data_version), "light")
    with dsl.ParallelFor(items=shards.output, name="stage2-shards") as shard:
        filtered = sized(stage2_filter(state=current, models=models.outputs["models"], shard=shard,
                                       data_version=data_version, settings=settings), "curation")
    merged = sized(merge_shards(state=current, parts=dsl.Collected(filtered.outputs["filtered"]),
                                data_version=data_version), "data")
    return merged


def build(iterations: int = 2):
    @dsl.pipeline(name="rewardops-curation",
                  description=f"Two-stage curation: seed annotation, {iterations} stage-1 iterations, stage 2 per shard.")
    def curation_pipeline(dataset_uri: str, data_version: str, gold_n: int = 64, silver_n: int = 256,
                          pool_shards: int = 4, settings: str = ""):
        imported = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False,
                                metadata={"data_version": data_version})
        curate(imported.output, data_version, iterations, gold_n, silver_n, pool_shards, settings)

    return curation_pipeline
