"""preprocess: structural check, global exact dedup and n-gram decontamination."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def preprocess(
    raw: Input[Dataset],
    data_version: str,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    decontaminate: List[str] = [],
    ngram: int = 13,
    dedup: bool = True,
):
    """`rewardops preprocess` over the input Dataset; `decontaminate` lists benchmark prompt files."""
    from rewardops.data.decontaminate import load_prompts
    from rewardops.data.preprocess import preprocess as run_preprocess
    from rewardops.pipelines.steps import begin_step, dataset_dir, finish_dataset, log_metrics, report_totals

    begin_step("preprocess", data_version)
    prompts = list(load_prompts(decontaminate)) if decontaminate else None
    report = run_preprocess(raw.path, dataset_dir(dataset), prompts=prompts, n=ngram, dedup=dedup)
    finish_dataset(dataset, data_version, stage="preprocess")
    log_metrics(metrics, report_totals(report))
