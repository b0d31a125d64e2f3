"""annotate: seed the curation state: the gold seed verified by annotators, the silver seed, the pool."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def annotate(
    dataset: Input[Dataset],
    data_version: str,
    state: Output[Dataset],
    metrics: Output[Metrics],
    gold_n: int = 64,
    silver_n: int = 256,
    pool_shards: int = 4,
    settings: str = "",
):
    """Human (or simulated-human) verification of the gold seed; `settings` is CurationSettings JSON."""
    from rewardops.curation.steps import CurationSettings, seed_split
    from rewardops.pipelines.steps import begin_step, dataset_dir, log_metrics

    begin_step("annotate", data_version)
    counts = seed_split(dataset.path, dataset_dir(state), gold_n, silver_n, CurationSettings.from_json(settings),
                        pool_shards=pool_shards)
    state.metadata.update({"data_version": data_version, "iteration": 0, **counts})
    log_metrics(metrics, counts)
