"""list_shards / prepare_pool_shard / assemble_pool / merge_shards / curation_models: the glue
around the per-shard fan-outs (pool preparation before stage 1, stage 2 after it)."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def list_shards(state: Input[Dataset], data_version: str) -> List[int]:
    """Indices of the pool's shards, for `dsl.ParallelFor`."""
    from rewardops.curation.steps import shard_count
    from rewardops.pipelines.steps import begin_step

    begin_step("list-shards", data_version)
    return list(range(shard_count(state.path)))


@dsl.component(base_image=component_image(), install_kfp_package=False)
def prepare_pool_shard(state: Input[Dataset], shard: int, data_version: str, prepared: Output[Dataset],
                       settings: str = ""):
    """One pool shard: attributes for pairs lacking them, then its retrieval vectors
    (`rewardops.curation.steps.prepare_shard`)."""
    from rewardops.curation.settings import CurationSettings
    from rewardops.curation.steps import prepare_shard
    from rewardops.pipelines.steps import begin_step

    begin_step(f"prepare-pool-shard-{shard}", data_version)
    info = prepare_shard(state.path, shard, prepared.path, CurationSettings.parse(settings))
    prepared.metadata.update({"data_version": data_version, **info})


@dsl.component(base_image=component_image(), install_kfp_package=False)
def assemble_pool(state: Input[Dataset], parts: List[Dataset], data_version: str, pool: Output[Dataset],
                  metrics: Output[Metrics]):
    """The seed state with its prepared pool shards: what stage 1 and stage 2 read
    (`rewardops.curation.steps.assemble_pool`)."""
    from rewardops.curation.steps import assemble_pool as assemble
    from rewardops.pipelines.steps import begin_step, log_metrics

    begin_step("assemble-pool", data_version)
    counts = assemble(state.path, [p.path for p in parts], pool.path)
    pool.metadata.update({"data_version": data_version, "iteration": 0, **counts})
    log_metrics(metrics, counts)


@dsl.component(base_image=component_image(), install_kfp_package=False)
def curation_models(state: Input[Dataset], data_version: str, models: Output[Model], settings: str = ""):
    """The best RM (final silver, selected and calibrated on final gold), the gold RM and the gold
    replay stage 2's noise estimates use, trained once for all shards."""
    from rewardops.curation.settings import CurationSettings
    from rewardops.curation.steps import final_models
    from rewardops.pipelines.steps import begin_step

    begin_step("curation-models", data_version)
    info = final_models(state.path, models.path, CurationSettings.parse(settings))
    models.metadata.update({"data_version": data_version, **info})


@dsl.component(base_image=component_image(), install_kfp_package=False)
def merge_shards(
    state: Input[Dataset],
    models: Input[Model],
    parts: List[Dataset],
    data_version: str,
    curated: Output[Dataset],
    recycled: Output[Dataset],
    no_verdict: Output[Dataset],
    discarded: Output[Dataset],
    metrics: Output[Metrics],
    settings: str = "",
):
    """The published sets (`rewardops.curation.steps.merge`): curated = stage 1's final gold + silver
    + stage 2's kept pairs, deduplicated; recycled; no_verdict; discarded; with counts and noise."""
    from rewardops.curation.settings import CurationSettings
    from rewardops.curation.steps import merge
    from rewardops.pipelines.steps import begin_step, finish_dataset, log_metrics

    begin_step("merge-shards", data_version)
    outs = {"curated": curated.path, "recycled": recycled.path, "no_verdict": no_verdict.path,
            "discarded": discarded.path}
    result = merge(state.path, models.path, [p.path for p in parts], outs, CurationSettings.parse(settings))
    estimates = {k: v["estimate"] for k, v in (result["stage2"]["decision"].get("noise") or {}).items()}
    finish_dataset(curated, data_version, stage="curated", shards=len(parts), **result["sets"],
                   stage2_filtered=result["stage2"]["filtered"], stage2_estimated_noise=estimates,
                   stage2_decision=result["stage2"]["decision"]["why"])
    finish_dataset(recycled, data_version, stage="stage2-recycled")
    finish_dataset(no_verdict, data_version, stage="stage2-no-verdict")
    finish_dataset(discarded, data_version, stage="stage2-discarded")
    log_metrics(metrics, {"curated": result["curated"], **result["sets"], "counts": result["stage2"]["counts"],
                          "filtered": int(result["stage2"]["filtered"]),
                          "estimated_noise": estimates,
                          "true_noise": result["stage2"]["true_noise"] or {}})
