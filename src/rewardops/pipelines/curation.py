"""curation: the seed split, pool preparation fanned out over the pool shards (attributes and
retrieval vectors, one pod per shard), stage-1 iterations, then stage 2 fanned out over the same
shards. The pool is one artifact (`assemble-pool`'s output) that stage 1 and stage 2 read and no
step copies; the shard count follows the pool size (settings `pool_shard_size`).

Every step reads one `settings` string (a profile name such as `demo`, or JSON/YAML) and parses it
into `rewardops.curation.settings.CurationSettings`, whose defaults are the only ones: the
pipeline declares none of its own.
"""

from kfp import dsl
from kfp.dsl import Dataset

from rewardops.curation.settings import CurationSettings
from rewardops.pipelines.components.labelstudio import labelstudio_collect, labelstudio_open
from rewardops.pipelines.components.seed import seed
from rewardops.pipelines.components.shards import (
    assemble_pool, curation_models, list_shards, merge_shards, prepare_pool_shard)
from rewardops.pipelines.components.stage1_iteration import stage1_iteration
from rewardops.pipelines.components.stage2_filter import stage2_filter
from rewardops.pipelines.resources import sized

DEFAULT_ITERATIONS = CurationSettings().iterations
# the collect step fails while people are not done; each retry waits up to its wait_s (50 min) again
LABELSTUDIO_RETRIES = 48


def curate(dataset, data_version, iterations: int, settings, labelstudio: bool = False):
    """The curation DAG on a Dataset channel; returns the merge task (outputs curated, recycled,
    no_verdict, discarded).

    Stage-1 iterations are sequential by nature (each trains on the last one's sets), so they are
    unrolled at compile time: `iterations` is a build option; the models step refuses settings
    whose `iterations` differ from it.
    """
    split = sized(seed(dataset=dataset, data_version=data_version, settings=settings),
                  "seed").set_display_name("seed: gold, silver, pool shards")
    shards = sized(list_shards(state=split.outputs["state"], data_version=data_version),
                   "light").set_display_name("pool shards")
    with dsl.ParallelFor(items=shards.output, name="pool-shards") as shard:
        prepared = sized(prepare_pool_shard(state=split.outputs["state"], shard=shard, data_version=data_version,
                                            settings=settings), "prepare").set_display_name("prepare pool shard")
    assembled = sized(assemble_pool(state=split.outputs["state"], parts=dsl.Collected(prepared.outputs["prepared"]),
                                    data_version=data_version), "light").set_display_name("pool")
    pool = assembled.outputs["pool"]
    current = pool
    for i in range(1, iterations + 1):
        if labelstudio:  # people label each iteration's gold batch in Label Studio (settings annotator labelstudio)
            opened = sized(labelstudio_open(state=current, pool=pool, iteration=i, data_version=data_version, settings=settings),
                           "curation").set_display_name(f"stage 1 iteration {i}: open Label Studio tasks")
            step = sized(labelstudio_collect(state=current, pool=pool, opened=opened.outputs["opened"], iteration=i,
                                             data_version=data_version, settings=settings),
                         "curation").set_display_name(f"stage 1 iteration {i}: collect people's labels")
            step.set_retry(num_retries=LABELSTUDIO_RETRIES, backoff_duration="60s", backoff_factor=2.0,
                           backoff_max_duration="3600s")
        else:
            step = sized(stage1_iteration(state=current, pool=pool, iteration=i, data_version=data_version,
                                          settings=settings), "stage1-iteration").set_display_name(f"stage 1 iteration {i}")
        current = step.outputs["next_state"]
    models = sized(curation_models(state=current, data_version=data_version, settings=settings),
                   "curation").set_display_name("stage 2 models")
    with dsl.ParallelFor(items=shards.output, name="stage2-shards") as shard:
        filtered = sized(stage2_filter(state=current, pool=pool, models=models.outputs["models"], shard=shard,
                                       data_version=data_version, settings=settings),
                         "stage2").set_display_name("stage 2 shard")
    merged = sized(merge_shards(state=current, models=models.outputs["models"],
                                parts=dsl.Collected(filtered.outputs["filtered"]), data_version=data_version,
                                settings=settings), "merge").set_display_name("curation sets")
    return merged


def build(iterations: int = DEFAULT_ITERATIONS, settings: str = "", labelstudio: bool = False):
    """`settings`: the default of the pipeline's `settings` parameter (a profile name, or "").
    `labelstudio`: each stage-1 iteration opens its human batch in Label Studio and a retried step
    collects the answers (settings annotator `labelstudio`, the server from LABEL_STUDIO_URL; see components/labelstudio.py)."""

    @dsl.pipeline(name="rewardops-curation",
                  description=f"Two-stage curation: seed, pool preparation per shard, {iterations} stage-1 iterations, stage 2 per shard.")
    def curation_pipeline(dataset_uri: str, data_version: str, settings: str = settings):
        """Two-stage curation of a preprocessed dataset.

        Args:
            dataset_uri: URI of the preprocessed dataset (a folder of preference-pair Parquet shards with its manifest).
            data_version: DVC hash or content hash of that data; part of every step's cache key.
            settings: Curation settings: a profile name (default, demo), or JSON/YAML over one (rewardops.curation.settings).
        """
        imported = dsl.importer(artifact_uri=dataset_uri, artifact_class=Dataset, reimport=False,
                                metadata={"data_version": data_version})
        imported.set_display_name("import preprocessed data")
        curate(imported.output, data_version, iterations, settings, labelstudio=labelstudio)

    return curation_pipeline
