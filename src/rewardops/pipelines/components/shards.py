"""list_shards / merge_shards / curation_models: the glue around stage 2's per-shard fan-out."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def list_shards(state: Input[Dataset], data_version: str) -> List[int]:
    """Indices of the pool's shards, for `dsl.ParallelFor`."""
    from pathlib import Path

    from rewardops.data.shards import shard_paths
    from rewardops.pipelines.steps import begin_step

    begin_step("list-shards", data_version)
    return list(range(len(shard_paths(Path(state.path) / "pool"))))


@dsl.component(base_image=component_image(), install_kfp_package=False)
def curation_models(state: Input[Dataset], data_version: str, models: Output[Model], settings: str = ""):
    """The best RM (final silver, selected on final gold) and the gold RM, trained once for all shards."""
    from rewardops.curation.steps import CurationSettings, final_models
    from rewardops.pipelines.steps import begin_step

    begin_step("curation-models", data_version)
    info = final_models(state.path, models.path, CurationSettings.from_json(settings))
    models.metadata.update({"data_version": data_version, **info})


@dsl.component(base_image=component_image(), install_kfp_package=False)
def merge_shards(
    state: Input[Dataset],
    parts: List[Dataset],
    data_version: str,
    curated: Output[Dataset],
    recycled: Output[Dataset],
    metrics: Output[Metrics],
):
    """The curated training set (stage 1's final gold + silver, then stage 2's kept pairs) and
    stage 2's recycled (flipped) pairs."""
    from rewardops.curation.steps import merge_curated
    from rewardops.curation.steps import merge_shards as merge
    from rewardops.pipelines.steps import begin_step, dataset_dir, finish_dataset, log_metrics

    begin_step("merge-shards", data_version)
    paths = [p.path for p in parts]
    counts = merge_curated(state.path, paths, dataset_dir(curated))
    merge(paths, dataset_dir(recycled), "recycled")
    kept = finish_dataset(curated, data_version, stage="curated", shards=len(paths), **counts)
    flipped = finish_dataset(recycled, data_version, stage="stage2-recycled")
    log_metrics(metrics, {"curated": kept, "recycled": flipped, "shards": len(paths), **counts})
