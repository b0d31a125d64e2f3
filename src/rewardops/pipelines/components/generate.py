"""generate: the preference world (pairs whose right label is known by construction) as a Dataset."""

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def generate(
    n: int,
    noise: float,
    seed: int,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    shard_size: int = 100_000,
):
    """`rewardops generate`: n world pairs, `noise` of them with flipped labels."""
    from rewardops.data.commands import generate_to
    from rewardops.pipelines.steps import begin_step, dataset_dir, finish_dataset, log_metrics, report_totals

    # The world is a pure function of (n, noise, seed): that triple is its version.
    version = f"world:n={n},noise={noise},seed={seed}"
    begin_step("generate", version)
    report = generate_to(dataset_dir(dataset), n, noise, seed, shard_size=shard_size, show_progress=False)
    finish_dataset(dataset, version, stage="generate")
    log_metrics(metrics, report_totals(report))
