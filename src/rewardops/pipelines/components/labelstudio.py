"""labelstudio_open / labelstudio_collect: stage-1 iterations with people labelling in Label Studio.

`labelstudio_open` runs the iteration up to its human batch and opens it as a Label Studio project
(output: the run's ledger). `labelstudio_collect` repeats the iteration with that ledger, polling
up to `wait_s` for the annotations; while people are not done it fails with a message saying how
many are decided, and KFP's retry runs it again (resumable: the annotations live in Label Studio
and nothing is lost). The server: LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY in the step's
environment (a Secret on the cluster; settings never name the server). How people label
comes from the settings (`annotators_per_pair`, `labelstudio_skip_limit`, `labelstudio_annotators`,
`labelstudio_graded`; see curation/README.md); the collect step's metrics add, per iteration, how
many answers confirmed and relabelled the dataset's label and the people's agreement.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def labelstudio_open(
    state: Input[Dataset],
    pool: Input[Dataset],
    iteration: int,
    data_version: str,
    opened: Output[Dataset],
    settings: str = "",
):
    """Open stage-1 iteration `iteration`'s human batch as a Label Studio project; output the ledger.
    `pool`: the seed state holding the pool (read, never copied)."""
    from rewardops.curation.labelstudio import open_iteration
    from rewardops.curation.settings import CurationSettings
    from rewardops.pipelines.steps import begin_step

    begin_step(f"labelstudio-open-{iteration}", data_version)
    info = open_iteration(state.path, opened.path, iteration, CurationSettings.parse(settings), pool=pool.path)
    opened.metadata.update({"data_version": data_version, "iteration": iteration,
                            **{k: v for k, v in info.items() if k in ("batch", "project", "url", "decided", "tasks", "complete")}})


@dsl.component(base_image=component_image(), install_kfp_package=False)
def labelstudio_collect(
    state: Input[Dataset],
    pool: Input[Dataset],
    opened: Input[Dataset],
    iteration: int,
    data_version: str,
    next_state: Output[Dataset],
    metrics: Output[Metrics],
    settings: str = "",
    wait_s: float = 3000.0,
    poll_s: float = 30.0,
):
    """Collect the people's answers (waiting up to `wait_s`) and finish the iteration; retried until they are in."""
    from rewardops.curation.labelstudio import collect_iteration
    from rewardops.curation.settings import CurationSettings
    from rewardops.pipelines.steps import begin_step, log_metrics

    begin_step(f"labelstudio-collect-{iteration}", data_version)
    values = collect_iteration(state.path, opened.path, next_state.path, iteration, CurationSettings.parse(settings),
                               wait_s=wait_s, poll_s=poll_s, pool=pool.path)
    next_state.metadata.update({"data_version": data_version, "iteration": iteration})
    log_metrics(metrics, values)
