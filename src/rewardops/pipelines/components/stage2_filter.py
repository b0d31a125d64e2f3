"""stage2_filter: the stage-2 consistency filter over one pool shard (fanned out with ParallelFor)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def stage2_filter(
    state: Input[Dataset],
    pool: Input[Dataset],
    models: Input[Model],
    shard: int,
    data_version: str,
    filtered: Output[Dataset],
    settings: str = "",
):
    """Keep a pair iff the gold RM agrees with its label and (the judges or the best RM) agree;
    confidently reversed discarded pairs are also written flipped to `recycled`; undecided pairs
    go to `no_verdict` (`rewardops.curation.steps.stage2_shard`)."""
    from rewardops.curation.settings import CurationSettings
    from rewardops.curation.steps import stage2_shard
    from rewardops.pipelines.steps import begin_step

    begin_step(f"stage2-shard-{shard}", data_version)
    summary = stage2_shard(state.path, models.path, shard, filtered.path, CurationSettings.parse(settings),
                           pool=pool.path)
    filtered.metadata.update({"data_version": data_version, "shard": shard, **summary.get("outputs", {})})
