"""ingest: read preference data from files, folders or hub ids; validate every row; write shards."""

from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from rewardops.k8s.images import component_image


@dsl.component(base_image=component_image(), install_kfp_package=False)
def ingest(
    sources: List[str],
    data_version: str,
    dataset: Output[Dataset],
    metrics: Output[Metrics],
    fmt: str = "",
    strict: bool = False,
    keep_partial: bool = False,
):
    """`rewardops ingest`: good rows to the Dataset, bad rows to its quarantine.jsonl.

    `data_version` (the DVC hash or content hash of `sources`) is what makes a changed input
    re-run this step: KFP's cache key sees the source paths, not their bytes. A damaged file fails
    the step (naming the file and its last good row) unless `keep_partial`.
    """
    from rewardops.data.ingest import ingest as run_ingest
    from rewardops.pipelines.steps import begin_step, dataset_dir, finish_dataset, log_metrics, report_totals

    begin_step("ingest", data_version)
    report = run_ingest(sources, dataset_dir(dataset), fmt=fmt or None, strict=strict, keep_partial=keep_partial)
    totals = report_totals(report)
    finish_dataset(dataset, data_version, stage="ingest", quarantined=totals["quarantined"])
    log_metrics(metrics, totals)
