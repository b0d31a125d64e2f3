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
    benchmarks: str = "",
    benchmark_sources: List[str] = [],
    benchmark_data_dir: str = "",
    world_n: int = 256,
):
    """`rewardops preprocess` over the input Dataset. `decontaminate` lists benchmark prompt files;
    `benchmarks` ('all', 'all+world' or a comma list) with `benchmark_sources` (NAME=PATH entries,
    the evaluation's `sources`), `benchmark_data_dir` and `world_n` decontaminate against the
    prompts of the benchmarks the run evaluates on, read by the evaluation loaders. A benchmark
    without data is skipped, as evaluation skips it, and listed in report.json."""
    from rewardops.data.decontaminate import load_prompts
    from rewardops.data.preprocess import PROMPT_FILES
    from rewardops.data.preprocess import preprocess as run_preprocess
    from rewardops.pipelines.steps import begin_step, dataset_dir, finish_dataset, log_metrics, report_totals

    begin_step("preprocess", data_version)
    prompts = {PROMPT_FILES: list(load_prompts(decontaminate))} if decontaminate else None
    info = {}
    if benchmarks:
        from rewardops.evaluation.prompts import benchmark_prompts, parse_sources

        found = benchmark_prompts(benchmarks, data_dir=benchmark_data_dir or None,
                                  sources=parse_sources(benchmark_sources), world_n=world_n, strict=False)
        prompts = {**(prompts or {}), **found.prompts}
        info["benchmarks_missing"] = found.missing
        for name, why in found.missing.items():
            print(f"[preprocess] no decontamination against {name}: {why}", flush=True)
    report = run_preprocess(raw.path, dataset_dir(dataset), prompts=prompts, n=ngram, dedup=dedup, report_info=info)
    finish_dataset(dataset, data_version, stage="preprocess")
    totals = report_totals(report)
    if "contaminated_by_benchmark" in report.info:
        totals = {**totals, "contaminated_by_benchmark": report.info["contaminated_by_benchmark"]}
    log_metrics(metrics, totals)
