"""The data ablation in the main job (paper §4.3): one size trained on (a) the uncurated pool,
(b) curated, (c) curated + recycled and, where every pair's truth is known (the generated world),
(d) the true labels; each evaluated on the run's benchmarks; one table at the end.

- `ablate(...)`: the DAG piece the end-to-end/demo/ablation pipelines add after curation, one
  iteration per entry of the `ablation_plan` parameter (normally one size; `[]` turns it off).
- the `ablation_table` component (`curation.ablation.table_rows` / `tag_arm_runs`): the arms' MLflow
  runs (children of the run's suite parent) are renamed by arm (`a-uncurated`, ...) and get
  `ablation/*` metrics, which `rewardops compare` reads back into the same table.
- `print_ablation(workdir)`: the table of the newest local run, printed at the end of `make demo`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rewardops.curation.ablation import ARMS


def ablate(pool: Any, merged: Any, data_version: Any, item: Any, local: bool, with_truth: bool, output_root: Any,
           profile: Any, max_steps: Any, benchmarks: Any, sources: Any, world_n: Any, overrides: Any) -> Any:
    """Inside a `dsl.ParallelFor` over the ablation plan (`item`: size, nodes, gpus_per_node): the arm
    datasets, one training + evaluation per arm, then the table. Returns the table task."""
    from kfp import dsl

    from rewardops.pipelines.components.ablation import ablation_arms, ablation_table
    from rewardops.pipelines.components.evaluate import evaluate
    from rewardops.pipelines.components.train import train
    from rewardops.pipelines.components.train_launcher import train_launcher
    from rewardops.pipelines.resources import launcher_credentials, retry, sized, with_gpu

    arms = sized(ablation_arms(pool=pool, curated=merged.outputs["curated"], recycled=merged.outputs["recycled"],
                               data_version=data_version, with_truth=with_truth), "data")
    arms.set_display_name("ablation: the arms' data")
    data = {"a": arms.outputs["uncurated"], "b": merged.outputs["curated"], "c": arms.outputs["curated_recycled"]}
    if with_truth:
        data["d"] = arms.outputs["true_labels"]
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    inputs: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for arm, dataset in data.items():
        if local:
            # arm (c) is arm (b) when stage 2 recycled nothing: the train step then takes (b)'s model
            same_as = {"same_as": models["b"]} if arm == "c" else {}
            trained = sized(train(dataset=dataset, size=item.size, data_version=data_version, profile=profile,
                                  max_steps=max_steps, overrides=overrides, run_id=run_id, ablation_arm=arm,
                                  **same_as), "train-cpu")
        else:
            trained = retry(sized(train_launcher(dataset=dataset, size=item.size, nodes=item.nodes,
                                                 gpus_per_node=item.gpus_per_node, data_version=data_version,
                                                 output_root=output_root, profile=profile, overrides=overrides,
                                                 run_id=run_id, ablation_arm=arm), "light"))
            launcher_credentials(trained)  # the launch step alone holds the launcher's token
        trained.set_display_name(f"ablation ({arm}) {ARMS[arm]}: train")
        scored = sized(evaluate(model=trained.outputs["model"], data_version=data_version, benchmarks=benchmarks,
                                sources=sources, world_n=world_n), "data")
        scored.set_display_name(f"ablation ({arm}) {ARMS[arm]}: evaluate")
        if not local:
            retry(with_gpu(scored))
        models[arm] = inputs[f"model_{arm}"] = trained.outputs["model"]
        inputs[f"report_{arm}"] = scored.outputs["report"]
    table = sized(ablation_table(arms=arms.outputs["arms"], data_version=data_version, **inputs), "light")
    table.set_display_name("ablation table")
    return table


def newest_table(workdir: str | Path) -> Path | None:
    """The newest ablation table (JSON) a local run wrote under `workdir`."""
    # kfp.local nests a ParallelFor's tasks: kfp/<run>/for-loop-N-iteration-I/ablation-table/table
    found = sorted(Path(workdir).glob("kfp/*/**/ablation-table/table"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def print_ablation(workdir: str | Path, echo: Any = print) -> bool:
    """Print the newest local run's ablation table and stage 2's decision (the last lines of
    `make demo`); False when the run had no ablation."""
    from rewardops.evaluation.report import ablation_markdown

    path = newest_table(workdir)
    if path is None:
        return False
    data = json.loads(path.read_text())
    echo("")
    echo(ablation_markdown(data["rows"], title="Data ablation: what curation buys (same size, four training sets)"))
    if data.get("stage2_decision"):
        echo(f"Stage 2 decision: {data['stage2_decision']}")
    return True
