"""annotate: seed the curation state: the gold seed verified by people, the silver seed, the pool."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def annotate(
    dataset: Input[Dataset],
    data_version: str,
    state: Output[Dataset],
    metrics: Output[Metrics],
    settings: str = "",
):
    """Attributes for pairs lacking them, the gold seed verified by the settings' annotator, the silver
    seed and the pool (`rewardops.curation.steps.seed_split`). `settings`: a profile name or JSON/YAML."""
    from rewardops.curation.settings import CurationSettings
    from rewardops.curation.steps import seed_split
    from rewardops.pipelines.steps import begin_step, log_metrics

    begin_step("annotate", data_version)
    counts = seed_split(dataset.path, state.path, CurationSettings.parse(settings))
    state.metadata.update({"data_version": data_version, "iteration": 0, **counts})
    log_metrics(metrics, counts)
