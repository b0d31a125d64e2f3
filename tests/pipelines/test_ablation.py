"""The data ablation (paper §4.3) in the main job: the arms' datasets, the table, its MLflow
round trip (`rewardops compare` shows what the run printed) and its place in the compiled pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardops.curation.ablation import build_arms, table_rows, tag_arm_runs
from rewardops.data.shards import read_pairs, write_pairs
from rewardops.data.world import generate_world


def _world_sets(tmp_path: Path) -> dict[str, Path]:
    pool = list(generate_world(120, noise=0.25, seed=9))
    curated = [p for p in pool if p.truth_chosen_better][:60] + [p for p in pool if not p.truth_chosen_better][:5]
    recycled = [p.flipped() for p in pool if not p.truth_chosen_better][5:15]
    for name, pairs in (("pool", pool), ("curated", curated), ("recycled", recycled)):
        write_pairs(pairs, tmp_path / name)
    return {name: tmp_path / name for name in ("pool", "curated", "recycled")}


def test_arms_hold_the_pool_the_curated_sets_and_the_true_labels(tmp_path: Path):
    sets = _world_sets(tmp_path)
    outs = {arm: tmp_path / f"arm-{arm}" for arm in "acd"}
    estimates = {"pool": 0.24, "kept": 0.08, "kept+recycled": 0.07}
    info = build_arms(sets["pool"], sets["curated"], sets["recycled"], outs, estimates, filtered=True)
    pool_noise = info["a"]["true_noise"]
    assert info["a"]["pairs"] == 120 and 0.15 < pool_noise < 0.35
    assert info["b"] == {"name": "b-curated", "label": "curated", "pairs": 65, "true_noise": round(5 / 65, 4),
                         "estimated_noise": 0.08}
    assert info["c"]["pairs"] == 75 and info["c"]["true_noise"] == round(5 / 75, 4) and info["c"]["estimated_noise"] == 0.07
    assert info["d"]["true_noise"] == 0.0 and info["d"]["pairs"] == 120 and info["a"]["estimated_noise"] == 0.24
    truth = list(read_pairs(outs["d"]))
    assert all(p.truth_chosen_better for p in truth) and sum(p.label_source == "truth" for p in truth) == round(pool_noise * 120)
    # stage 2 kept everything: arms b and c carry the pool's estimate
    kept_all = build_arms(sets["pool"], sets["curated"], sets["recycled"], {"a": tmp_path / "a2", "c": tmp_path / "c2"},
                          estimates, filtered=False)
    assert kept_all["b"]["estimated_noise"] == kept_all["c"]["estimated_noise"] == 0.24 and "d" not in kept_all


def test_the_true_labels_arm_refuses_data_without_truth(tmp_path: Path):
    pairs = list(generate_world(10, noise=0.2, seed=1))
    pairs[3].truth_chosen_better = None
    write_pairs(pairs, tmp_path / "pool")
    write_pairs(pairs[:5], tmp_path / "cur")
    write_pairs([], tmp_path / "rec")
    with pytest.raises(ValueError, match=r"pair .* \(row 3\) has no truth_chosen_better.*leave it out"):
        build_arms(tmp_path / "pool", tmp_path / "cur", tmp_path / "rec", {"a": tmp_path / "a", "c": tmp_path / "c",
                                                                            "d": tmp_path / "d"}, {}, True)


def _report(folder: Path, correct: list[int], score: float) -> Path:
    """An evaluation report folder as `rewardops eval` writes it (summary + the world's results and scores)."""
    (folder / "world").mkdir(parents=True)
    acc = sum(correct) / len(correct)
    (folder / "summary.json").write_text(json.dumps({"scores": {"world": acc, "judgebench": 0.5}, "score_percent": score}))
    (folder / "world" / "results.json").write_text(json.dumps({"overall": acc, "n": len(correct)}))
    (folder / "world" / "scores.jsonl").write_text("".join(
        json.dumps({"id": f"w{i}", "subset": "math", "scores": [1.0, 0.0] if c else [0.0, 1.0]}) + "\n"
        for i, c in enumerate(correct)))
    return folder


def test_table_rows_give_accuracy_with_its_standard_error_and_the_paired_difference(tmp_path: Path):
    from rewardops.evaluation.report import ablation_markdown

    a = [1] * 60 + [0] * 40
    b = [1] * 60 + [1] * 20 + [0] * 20  # right wherever a is, and on 20 more pairs
    reports = {"a": _report(tmp_path / "a", a, 50.0), "b": _report(tmp_path / "b", b, 55.0)}
    facts = {"a": {"name": "a-uncurated", "label": "uncurated", "pairs": 1000, "true_noise": 0.25, "estimated_noise": 0.21},
             "b": {"name": "b-curated", "label": "curated", "pairs": 700, "true_noise": 0.12, "estimated_noise": 0.08}}
    rows = table_rows(facts, reports)
    assert [r["arm"] for r in rows] == ["a", "b"] and "world_vs_a" not in rows[0]
    assert rows[1]["world"]["accuracy"] == 0.8 and rows[1]["world"]["se"] == pytest.approx((0.8 * 0.2 / 100) ** 0.5)
    delta = rows[1]["world_vs_a"]
    assert delta["delta"] == pytest.approx(0.2) and delta["se"] == pytest.approx((0.2 * 0.8 * 100 / 99 / 100) ** 0.5)
    md = ablation_markdown(rows)
    assert "| (b) curated | 700 | 0.080 | 0.120 | 80.0 ± 4.0 | +20.0 ± 4.0 | 50.0 | 55.0 |" in md
    assert "| (a) uncurated | 1000 | 0.210 | 0.250 | 60.0 ± 4.9 | – |" in md


def _tracked_arms(tmp_path: Path, monkeypatch, suite: str, correct: dict) -> tuple[str, dict]:
    """A SQLite MLflow store and, per arm, one training run of demo-tiny-qwen3 (its eval/world) under
    the suite's parent: (tracking URI, {arm: run id})."""
    from rewardops.tracking.mlflow_tracker import start_tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("REWARDOPS_SUITE", suite)
    monkeypatch.setenv("REWARDOPS_MLFLOW_ARTIFACTS", str(tmp_path / "art"))
    run_ids = {}
    for arm, c in correct.items():
        with start_tracker("rewardops-training", "demo-tiny-qwen3", tags={"rewardops.size": "demo-tiny-qwen3"},
                           lineage=False) as tracker:
            tracker.log_metrics({"eval/world": 100 * sum(c) / len(c)})
            run_ids[arm] = tracker.run_id
    return uri, run_ids


def _facts(arm_c: tuple[int, float, float]) -> dict:
    """The arms' facts (pairs, true and estimated noise); arm (c)'s given."""
    return {arm: {"name": n, "label": lbl, "pairs": p, "true_noise": t, "estimated_noise": e}
            for arm, n, lbl, p, t, e in (("a", "a-uncurated", "uncurated", 1000, 0.25, 0.22),
                                         ("b", "b-curated", "curated", 680, 0.12, 0.07),
                                         ("c", "c-curated+recycled", "curated+recycled", *arm_c),
                                         ("d", "d-true-labels", "true labels", 1000, 0.0, 0.0))}


def test_arm_runs_are_named_by_arm_and_compare_rebuilds_the_same_table(tmp_path: Path, monkeypatch):
    """Real MLflow (a SQLite store): four training runs under one suite parent, renamed by arm, with
    their ablation metrics; `rewardops compare`'s loader gives back the rows the run printed."""
    from mlflow.tracking import MlflowClient

    from rewardops.evaluation.report import ablation_markdown
    from rewardops.tracking.compare import ablation_rows, load_suite, write_outputs

    correct = {"a": [1] * 55 + [0] * 45, "b": [1] * 70 + [0] * 30, "c": [1] * 68 + [0] * 32, "d": [1] * 80 + [0] * 20}
    uri, run_ids = _tracked_arms(tmp_path, monkeypatch, "ablation-test", correct)
    reports = {arm: _report(tmp_path / arm, c, 50.0) for arm, c in correct.items()}
    rows = table_rows(_facts((700, 0.13, 0.08)), reports)
    tagged = tag_arm_runs(rows, run_ids)
    client = MlflowClient(tracking_uri=uri)
    assert {client.get_run(r).info.run_name for r in tagged.values()} == {"a-uncurated", "b-curated",
                                                                          "c-curated+recycled", "d-true-labels"}
    parents = {client.get_run(r).data.tags["mlflow.parentRunId"] for r in tagged.values()}
    assert len(parents) == 1  # one parent: the suite
    (parent,) = parents
    assert any(f.path == "ablation/ablation.md" for f in client.list_artifacts(parent, "ablation"))

    table = load_suite(client, "ablation-test")
    assert list(table.rows) == ["a-uncurated", "b-curated", "c-curated+recycled", "d-true-labels"]  # arm order
    rebuilt = ablation_rows(table)
    expected = ablation_markdown(rows).splitlines()
    got = ablation_markdown(rebuilt).splitlines()
    # pairs, noise, world accuracy ± SE and the paired difference: the same cells
    assert [line.split("|")[1:7] for line in got[2:8]] == [line.split("|")[1:7] for line in expected[2:8]]
    paths = write_outputs(tmp_path / "cmp", table)
    assert "b-curated" in paths["md"].read_text() and "(b) curated" in paths["ablation"].read_text()
    from rewardops.evaluation.report import ablation_html

    page = ablation_html(rows, title="Data ablation of demo-tiny-qwen3", decision="filter: ratio 0.43")
    assert "<h1>Data ablation of demo-tiny-qwen3</h1>" in page and "Stage 2 decision:</b> filter: ratio 0.43" in page
    assert "<td>+15.0 ± " in page  # the paired difference (b) - (a) in points


def test_the_demo_trains_one_size_on_four_arms_and_the_ablation_pipeline_on_three(compiled):
    from support.pipeline_ir import load_ir  # noqa: F401 - the compiled fixture's helper module

    def tasks(ir: dict) -> dict[str, dict]:
        found = dict(ir["root"]["dag"]["tasks"])
        for comp in ir["components"].values():
            found.update(comp.get("dag", {}).get("tasks", {}))
        return found

    demo, e2e, ablation = compiled["demo"], compiled["end-to-end"], compiled["ablation"]
    params = {name: ir["root"]["inputDefinitions"]["parameters"] for name, ir in compiled.items()}
    assert params["end-to-end"]["ablation_plan"]["defaultValue"] == []  # off unless asked for
    demo_plan = params["demo"]["ablation_plan"]["defaultValue"]
    assert len(demo_plan) == 1 and demo_plan[0]["size"] == params["demo"]["plan"]["defaultValue"][0]["size"]
    assert params["demo"]["world_noise"]["defaultValue"] >= 0.2  # enough noise for curation to matter
    assert len(params["ablation"]["ablation_plan"]["defaultValue"]) == 1
    t = tasks(demo)
    table = t["ablation-table"]["inputs"]["artifacts"]
    assert set(table) == {"arms", *(f"{k}_{a}" for k in ("model", "report") for a in "abcd")}
    arms = t["ablation-arms"]["inputs"]
    assert arms["parameters"]["with_truth"]["runtimeValue"]["constant"] is True
    # arm b trains on the merge's curated set, the others on the arms step's datasets
    fed = {}
    for name, task in t.items():
        if task["componentRef"]["name"].startswith("comp-train"):
            ds = task["inputs"]["artifacts"]["dataset"]
            fed[name] = ds.get("taskOutputArtifact", {}).get("outputArtifactKey") or ds.get("componentInputArtifact")
    by_data = {v.replace("pipelinechannel--merge-shards-curated", "curated"): name for name, v in fed.items()}
    assert {"curated", "curated_recycled", "true_labels", "uncurated"} <= set(by_data)
    # arm (c) is handed arm (b)'s model: when stage 2 recycled nothing it is the same training
    same_as = t[by_data["curated_recycled"]]["inputs"]["artifacts"]["same_as"]["taskOutputArtifact"]
    assert same_as == {"producerTask": by_data["curated"], "outputArtifactKey": "model"}
    # each arm registers under the ablation's own model, never as a version (or candidate) of the size's
    arm_of = {data: t[task]["inputs"]["parameters"]["ablation_arm"]["runtimeValue"]["constant"]
              for data, task in by_data.items() if data in ("uncurated", "curated", "curated_recycled", "true_labels")}
    assert arm_of == {"uncurated": "a", "curated": "b", "curated_recycled": "c", "true_labels": "d"}
    arm_tasks = {by_data[data] for data in arm_of}
    sizes = [task for name, task in t.items() if task["componentRef"]["name"].startswith("comp-train")
             and name not in arm_tasks]
    assert sizes and all("ablation_arm" not in task["inputs"].get("parameters", {}) for task in sizes)
    t3 = tasks(ablation)
    # on the cluster too, each arm is its own TrainJob and registers under the ablation's model
    launched = [task["inputs"]["parameters"] for task in t3.values()
                if task["componentRef"]["name"].startswith("comp-train-launcher")]
    assert sorted(p["ablation_arm"]["runtimeValue"]["constant"] for p in launched if "ablation_arm" in p) == ["a", "b", "c"]
    assert len(launched) == 4  # the three arms and the size loop's own training (no arm)
    assert set(t3["ablation-table"]["inputs"]["artifacts"]) == {"arms", *(f"{k}_{a}" for k in ("model", "report") for a in "abc")}
    assert t3["ablation-arms"]["inputs"]["parameters"]["with_truth"]["runtimeValue"]["constant"] is False
    assert "ablation-table" not in tasks(e2e) or params["end-to-end"]["ablation_plan"]["defaultValue"] == []


@pytest.mark.slow
def test_the_ablation_runs_under_kfp_local_and_the_run_prints_its_table(tmp_path: Path, isolated_cache):
    """The ablation piece of the pipelines (arms step, one train + evaluate per arm, the table step)
    under kfp.local's SubprocessRunner with real training (1 step per arm) and MLflow (SQLite):
    the table has four rows, its Markdown is what the demo prints last, the arms' runs are named."""
    from kfp import dsl, local
    from kfp.dsl import Dataset
    from mlflow.tracking import MlflowClient

    from rewardops.pipelines.ablation import ablate, print_ablation
    from rewardops.pipelines.commands import prepare_tracking_store

    sets = _world_sets(tmp_path)

    @dsl.pipeline(name="ablation-test")
    def pipeline():
        def imported(name: str, **metadata):
            return dsl.importer(artifact_uri=str(sets[name]), artifact_class=Dataset, reimport=False,
                                metadata=metadata).output

        class Merged:  # stands for the merge step's outputs (the curated set carries stage 2's decision)
            outputs = {"curated": imported("curated", stage2_filtered=True, stage2_decision="filter: test",
                                           stage2_estimated_noise={"pool": 0.24, "kept": 0.08, "kept+recycled": 0.07}),
                       "recycled": imported("recycled")}

        with dsl.ParallelFor(items=[{"size": "demo-tiny-qwen3", "nodes": 1, "gpus_per_node": 1}]) as item:
            ablate(imported("pool"), Merged, "test:1", item, True, True, "", "final", 1, "world", [], 16, {})

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    import os

    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["REWARDOPS_SUITE"] = "ablation-kfp"
    prepare_tracking_store(uri, artifact_root=tmp_path / "mlartifacts")
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"), raise_on_error=True)
    try:
        pipeline()
    finally:
        os.environ.pop("REWARDOPS_SUITE", None)
    lines: list[str] = []
    assert print_ablation(tmp_path, echo=lines.append)
    text = "\n".join(lines)
    for row in ("(a) uncurated | 120 | 0.240", "(b) curated | 65 | 0.080", "(c) curated+recycled | 75 | 0.070",
                "(d) true labels | 120 | 0.000 | 0.000"):
        assert row in text, text
    assert "Stage 2 decision: filter: test" in text
    client = MlflowClient(tracking_uri=uri)
    names = {r.info.run_name for r in client.search_runs([e.experiment_id for e in client.search_experiments()])}
    assert {"a-uncurated", "b-curated", "c-curated+recycled", "d-true-labels"} <= names


def test_an_arm_on_the_same_pairs_and_settings_reuses_the_earlier_arms_model(tmp_path: Path):
    """Arm (c) when stage 2 recycled nothing: the same pairs as arm (b) (written by another step,
    other shard size and lineage), so the same training key, and the train step takes (b)'s model;
    one flipped label or one other setting is another training."""
    from types import SimpleNamespace

    from rewardops import training
    from rewardops.pipelines.steps import reuse_model, training_key

    pairs = list(generate_world(40, noise=0.25, seed=3))
    write_pairs(pairs, tmp_path / "b", shard_size=7)
    same = [p.copy() for p in pairs]
    for p in same:
        p.lineage.append("ablation:arm-c")
    write_pairs(same, tmp_path / "c", shard_size=100)
    write_pairs([pairs[0].flipped(), *pairs[1:]], tmp_path / "flipped")

    def key(data: str, **more) -> str:
        return training_key(training.load_config("demo-tiny-qwen3", {"data": str(tmp_path / data),
                                                                     "out": str(tmp_path / f"out-{data}"), **more}))

    assert key("b") == key("c") == key("c", register_name="rewardops-ablation-x", run_tags={"rewardops.ablation_arm": "c"})
    assert key("flipped") != key("b") and key("c", lr=1e-4) != key("b") and key("c", max_steps=3) != key("b")

    trained_b = SimpleNamespace(path=str(tmp_path / "model-b"), metadata={"training_key": key("b"), "mlflow_run_id": "r1",
                                                                          "steps": 4})
    (tmp_path / "model-b" / "export").mkdir(parents=True)
    (tmp_path / "model-b" / "export" / "config.json").write_text("{}")
    arm_c = SimpleNamespace(path=str(tmp_path / "model-c"), metadata={})
    assert reuse_model(arm_c, trained_b, key("c"))
    assert (tmp_path / "model-c" / "export" / "config.json").read_text() == "{}"
    assert arm_c.metadata["mlflow_run_id"] == "r1" and arm_c.metadata["reused_from"] == "r1"
    other = SimpleNamespace(path=str(tmp_path / "model-f"), metadata={})
    assert not reuse_model(other, trained_b, key("flipped")) and not (tmp_path / "model-f").exists()
    assert not reuse_model(other, None, key("c"))


def test_an_arm_that_is_another_arms_run_is_its_own_row_in_compare(tmp_path: Path, monkeypatch):
    """Real MLflow (SQLite): arms (b) and (c) share one training run (nothing recycled); the run
    is named (b) and says it is also (c); compare rebuilds four rows, (c) equal to (b)."""
    from mlflow.tracking import MlflowClient

    from rewardops.evaluation.report import SAME_RUN_TAG
    from rewardops.tracking.compare import ablation_rows, load_suite

    correct = {"a": [1] * 55 + [0] * 45, "b": [1] * 70 + [0] * 30, "d": [1] * 80 + [0] * 20}
    uri, run_ids = _tracked_arms(tmp_path, monkeypatch, "same-run-test", correct)
    run_ids["c"] = run_ids["b"]
    correct["c"] = correct["b"]
    reports = {arm: _report(tmp_path / arm, c, 50.0) for arm, c in correct.items()}
    rows = table_rows(_facts((680, 0.12, 0.07)), reports)
    tagged = tag_arm_runs(rows, run_ids)
    assert tagged["c-curated+recycled"] == tagged["b-curated"] == run_ids["b"]
    run = MlflowClient(tracking_uri=uri).get_run(run_ids["b"])
    assert run.info.run_name == "b-curated" and run.data.tags[SAME_RUN_TAG] == "c-curated+recycled"
    table = load_suite(MlflowClient(tracking_uri=uri), "same-run-test")
    assert list(table.rows) == ["a-uncurated", "b-curated", "c-curated+recycled", "d-true-labels"]
    rebuilt = {r["arm"]: r for r in ablation_rows(table)}
    assert rebuilt["c"]["world"] == rebuilt["b"]["world"] and rebuilt["c"]["pairs"] == 680
    assert rebuilt["c"]["world_vs_a"] == rebuilt["b"]["world_vs_a"]
