"""stage2_filter: the stage-2 consistency filter over one pool shard (fanned out with ParallelFor)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def stage2_filter(
    state: Input[Dataset],
    models: Input[Model],
    shard: int,
    data_version: str,
    filtered: Output[Dataset],
    settings: str = "",
):
    """Keep a pair iff the gold RM agrees with its label and (the judges or the best RM) agree;
    discarded pairs are also written flipped to `recycled`."""
    from pathlib import Path

    from rewardops.curation.steps import CurationSettings, stage2_shard
    from rewardops.pipelines.steps import begin_step

    begin_step(f"stage2-shard-{shard}", data_version)
    summary = stage2_shard(Path(state.path) / "pool", models.path, state.path, shard, filtered.path,
                           CurationSettings.from_json(settings))
    filtered.metadata.update({"data_version": data_version, "shard": shard, **summary.get("outputs", {})})
