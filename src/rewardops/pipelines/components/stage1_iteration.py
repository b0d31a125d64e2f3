"""stage1_iteration: one iteration of the stage-1 human-AI loop (train, retrieve, verify, judge)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def stage1_iteration(
    state: Input[Dataset],
    pool: Input[Dataset],
    iteration: int,
    data_version: str,
    next_state: Output[Dataset],
    metrics: Output[Metrics],
    settings: str = "",
):
    """Adds `stage1/iter-<iteration>` to the curation state: an RM trained on silver, selected and
    calibrated on gold, error-driven retrieval from the pool, people's verification and LLM judging.
    `pool`: the seed state holding the pool and its vectors (read, never copied)."""
    from rewardops.curation.settings import CurationSettings
    from rewardops.curation.steps import stage1_iteration as run_iteration
    from rewardops.pipelines.steps import begin_step, log_metrics

    begin_step(f"stage1-iteration-{iteration}", data_version)
    values = run_iteration(state.path, next_state.path, iteration, CurationSettings.parse(settings), pool=pool.path)
    next_state.metadata.update({"data_version": data_version, "iteration": iteration})
    log_metrics(metrics, values)
