"""Evaluation: the seven reward-model benchmarks of SRv2 Table 1 plus best-of-N, scored exactly as
their official code scores them, and the generated world as an eval set.

    from rewardops.evaluation.runner import EvalConfig, run_eval
    outcome = run_eval(EvalConfig(model="out/final", benchmarks=["rm-bench", "judgebench"],
                                  data_dir=Path("benchmarks"), out=Path("eval-out")))
    outcome.summary["average_7"]

Modules: `items` (records), `sources` (JSON/JSONL/Parquet/saved/hub readers), `loaders` (one
parser per official format, quarantine), `scorers` (the official rules, pure functions),
`benchmarks` (registry: where files live, how to load and score), `engine` (batched,
deterministic, cached reward inference), `report` (results.json, Table-1 summary, plots, MLflow),
`runner` and `commands` (`rewardops eval`).
"""
