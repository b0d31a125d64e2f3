"""The paper's data ablation (paper §4.3, Table 3: what curation buys at a fixed model size), as
datasets: one training set per arm, trained on with the same size and evaluated on the same
benchmarks.

| arm | training set                                   | exists                                  |
|-----|------------------------------------------------|-----------------------------------------|
| a   | uncurated: the pool as labelled (curation's input) | always                              |
| b   | curated: stage 1's gold + silver + stage 2's kept  | always                              |
| c   | curated + recycled (discarded pairs flipped)   | always (= b when stage 2 kept all)      |
| d   | true labels: the pool with every label right   | only where every pair's truth is known (the generated world) |

`build_arms` writes the arm datasets (each an atomic, manifested folder) and returns, per arm, its
size, its true label noise (when the truth is known) and stage 2's estimate for it: the estimated
noise of the stage-2 pairs in the arm (pool for a, kept for b, kept + recycled for c; 0 for d by
construction), read from the merge report's decision (`stage2.decide`). Gold and stage-1 silver pairs
are outside that estimate (no replay measures them), which the table says.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rewardops.evaluation.report import ABLATION_ARMS as ARMS, SAME_RUN_TAG, arm_name


def _noise(pairs: list[Any]) -> float | None:
    known = [p.truth_chosen_better for p in pairs if p.truth_chosen_better is not None]
    return round(sum(not t for t in known) / len(known), 4) if known and len(known) == len(pairs) else None


def estimated_noise(arm: str, stage2_estimates: Mapping[str, Any], filtered: bool) -> float | None:
    """Stage 2's estimated noise for the stage-2 pairs of the arm (None when not estimated)."""
    if arm == "d":
        return 0.0
    key = "pool" if arm == "a" or not filtered else ("kept" if arm == "b" else "kept+recycled")
    value = stage2_estimates.get(key)
    return None if value is None else round(float(value), 4)


def truth_labelled(pairs: list[Any], source: str) -> list[Any]:
    """Every pair with its true label (a wrong one flipped back); an error naming the first pair
    without truth (arm d exists only on data whose truth is known)."""
    out = []
    for row, p in enumerate(pairs):
        if p.truth_chosen_better is None:
            raise ValueError(f"{source}: pair {p.id} (row {row}) has no truth_chosen_better; the true-labels arm (d) "
                             "exists only for data whose truth is known (the generated world): leave it out")
        q = p.flipped() if not p.truth_chosen_better else p
        if q is not p:
            q.label_source = "truth"
            q.lineage.append("ablation:true_label")
        out.append(q)
    return out


def build_arms(pool: str | Path, curated: str | Path, recycled: str | Path, outs: Mapping[str, str | Path],
               stage2_estimates: Mapping[str, Any], filtered: bool, shard_size: int = 100_000) -> dict[str, Any]:
    """The arm datasets into `outs` (keys: a, c and, for arm d, d; arm b IS the curated folder) and
    the arms' facts: {arm: {name, pairs, true_noise, estimated_noise}}."""
    from rewardops.data.shards import read_pairs, write_pairs

    pool_pairs = list(read_pairs(pool))
    curated_pairs = list(read_pairs(curated))
    recycled_pairs = list(read_pairs(recycled))
    sets = {"a": pool_pairs, "b": curated_pairs, "c": curated_pairs + recycled_pairs}
    if "d" in outs:
        sets["d"] = truth_labelled(pool_pairs, str(pool))
    info: dict[str, Any] = {}
    for arm, pairs in sets.items():
        if arm != "b":
            write_pairs(pairs, outs[arm], shard_size=shard_size)
        info[arm] = {"name": arm_name(arm), "label": ARMS[arm], "pairs": len(pairs), "true_noise": _noise(pairs),
                     "estimated_noise": estimated_noise(arm, stage2_estimates, filtered)}
    return info


def table_rows(facts: Mapping[str, Any], reports: Mapping[str, Path]) -> list[dict[str, Any]]:
    """One row per arm with a report: the arm's facts (pairs, noise) and its evaluation scores."""
    from rewardops.evaluation.report import ablation_scores

    rows = []
    for arm in ARMS:
        if arm not in reports or arm not in facts:
            continue
        baseline = reports.get("a") if arm != "a" else None
        rows.append({"arm": arm, **facts[arm], **ablation_scores(reports[arm], baseline)})
    return rows


def arm_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The `ablation/*` metrics of an arm's run (what `rewardops compare` rebuilds the table from)."""
    values = {"pairs": row.get("pairs"), "estimated_noise": row.get("estimated_noise"), "true_noise": row.get("true_noise")}
    world, delta = row.get("world") or {}, row.get("world_vs_a") or {}
    values.update({"world_accuracy": world.get("accuracy"), "world_se": world.get("se"), "world_n": world.get("n"),
                   "world_vs_a": delta.get("delta"), "world_vs_a_se": delta.get("se")})
    return {f"ablation/{k}": float(v) for k, v in values.items() if v is not None}


def tag_arm_runs(rows: list[dict[str, Any]], run_ids: Mapping[str, str]) -> dict[str, str]:
    """Name each arm's training run by arm and log its `ablation/*` metrics; the table goes to the
    suite parent run as `ablation/ablation.md`. An arm whose model is an earlier arm's (arm (c) when
    stage 2 recycled nothing) is named on that run's `SAME_RUN_TAG`. Returns {arm name: run id}."""
    from mlflow.tracking import MlflowClient

    from rewardops.evaluation.report import ablation_markdown
    from rewardops.tracking.uri import resolve_tracking_uri

    client = MlflowClient(tracking_uri=resolve_tracking_uri())
    tagged, parents = {}, set()
    for row in rows:
        run_id = run_ids.get(row["arm"])
        if not run_id:
            continue
        if run_id in tagged.values():  # an arm that reused an earlier arm's model (same pairs, same settings)
            tagged[row["name"]] = run_id
            first = next(name for name, rid in tagged.items() if rid == run_id)
            client.set_tag(run_id, SAME_RUN_TAG, ",".join(n for n, rid in tagged.items() if rid == run_id and n != first))
            continue
        client.set_tag(run_id, "mlflow.runName", row["name"])
        client.set_tag(run_id, "rewardops.arm", row["name"])
        for key, value in arm_metrics(row).items():
            client.log_metric(run_id, key, value)
        parent = client.get_run(run_id).data.tags.get("mlflow.parentRunId")
        if parent:
            parents.add(parent)
        tagged[row["name"]] = run_id
    for parent in parents:
        client.log_text(parent, ablation_markdown(rows), "ablation/ablation.md")
    return tagged
