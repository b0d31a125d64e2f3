"""seed: split a dataset into the curation seed: the gold seed verified by people, the silver seed,
and the pool written straight into shards (prepared per shard by `prepare_pool_shard`)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def seed(
    dataset: Input[Dataset],
    data_version: str,
    state: Output[Dataset],
    metrics: Output[Metrics],
    settings: str = "",
):
    """Gold seed (verified by the settings' annotator), silver seed and pool shards of at most the
    settings' pool_shard_size pairs (`rewardops.curation.steps.split_dataset`), streamed.
    `settings`: a profile name or JSON/YAML."""
    from rewardops.curation.settings import CurationSettings
    from rewardops.curation.steps import split_dataset
    from rewardops.pipelines.steps import begin_step, log_metrics

    begin_step("seed", data_version)
    counts = split_dataset(dataset.path, state.path, CurationSettings.parse(settings))
    state.metadata.update({"data_version": data_version, "iteration": 0, **counts})
    log_metrics(metrics, counts)
