"""`rewardops eval` end to end on small data: all seven benchmarks plus the world, the reports and
plots, the free re-run, missing data (skip vs --strict), and logging onto an MLflow run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.evaluation import scorers
from rewardops.evaluation.benchmarks import PAPER_BENCHMARKS

runner = CliRunner()


def write_world(folder: Path) -> None:
    from rewardops.data.schema import Message, PreferencePair
    from rewardops.data.shards import write_pairs

    pairs = [
        PreferencePair(id=f"w{i}", source="world", conversation=[Message("user", f"What is {i} times 3?")],
                       chosen=f"{3 * i}.", rejected=f"{3 * i + 1}.", task_category=cat, truth_chosen_better=truth)
        for i, (cat, truth) in enumerate([("math", True), ("math", False), ("code", True), ("factual", None)])
    ]
    write_pairs(pairs, folder)


def invoke(*args: str):
    result = runner.invoke(app, ["eval", *args])
    return result


def test_eval_all_seven_and_world_then_a_free_rerun(tiny_model: str, small_data_dir: Path, tmp_path: Path):
    write_world(small_data_dir / "world")
    out = tmp_path / "out"
    args = ["--model", tiny_model, "--benchmarks", "all+world", "--data-dir", str(small_data_dir), "--out", str(out),
            "--cache", str(tmp_path / "cache.sqlite"), "--no-mlflow"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["missing"] == {}
    assert summary["average_7"] is not None
    assert summary["average_7"] == pytest.approx(sum(summary["scores"][n] for n in PAPER_BENCHMARKS) / 7)
    assert set(summary["scores"]) == {*PAPER_BENCHMARKS, "world"}
    assert "RB v1" in result.output and "JudgeBench" in result.output and "Avg" in result.output
    for name in (*PAPER_BENCHMARKS, "world"):
        assert (out / name / "results.json").exists() and (out / name / "scores.jsonl").exists()
    for png in ("benchmarks.png", "best_of_n.png", "rm_bench_difficulty.png", "subsets_rewardbench2.png"):
        assert (out / "plots" / png).stat().st_size > 1000
    assert "| Model | RB v1 | RB v2 |" in (out / "summary.md").read_text()

    # results.json agrees with the scorer applied to the saved per-item scores
    rows = [json.loads(line) for line in (out / "judgebench" / "scores.jsonl").read_text().splitlines()]
    labels = {json.loads(line)["pair_id"]: json.loads(line)["label"] for line in (small_data_dir / "judgebench" / "judgebench_gpt-4o.jsonl").read_text().splitlines()}
    expect = scorers.judgebench((r["subset"], r["scores"][0], r["scores"][1], labels[r["id"].split("/", 1)[1]]) for r in rows)
    jb = json.loads((out / "judgebench" / "results.json").read_text())
    assert jb["overall"] == pytest.approx(expect["overall"]) and jb["official"] == pytest.approx(expect["official"])
    ppe = json.loads((out / "ppe-correctness" / "results.json").read_text())
    assert list(ppe["tasks"]["MATH"]["best_of_n"]) == ["1", "2", "3", "4"]

    # the same command again: every score from the cache, no forward pass, same numbers
    again = invoke(*args)
    assert again.exit_code == 0, again.output
    summary2 = json.loads((out / "summary.json").read_text())
    assert summary2["engine"]["forwarded_sequences"] == 0 and summary2["engine"]["forward_batches"] == 0
    assert summary2["scores"] == summary["scores"]


def test_missing_benchmark_is_skipped_or_fatal_with_strict(tiny_model: str, small_data_dir: Path, tmp_path: Path):
    shutil.rmtree(small_data_dir / "reward-bench")
    args = ["--model", tiny_model, "--benchmarks", "rewardbench,rmb", "--data-dir", str(small_data_dir),
            "--no-cache", "--no-mlflow"]
    strict = invoke(*args, "--out", str(tmp_path / "strict"), "--strict")
    assert strict.exit_code == 2
    flat = " ".join(strict.output.split())
    assert str(small_data_dir / "reward-bench") in flat.replace(" ", "") or "reward-bench" in flat
    assert "allenai/reward-bench" in flat
    assert not (tmp_path / "strict" / "rmb").exists()  # failed before scoring anything

    lenient = invoke(*args, "--out", str(tmp_path / "lenient"))
    assert lenient.exit_code == 0, lenient.output
    summary = json.loads((tmp_path / "lenient" / "summary.json").read_text())
    assert list(summary["missing"]) == ["rewardbench"]
    assert "filtered" in summary["missing"]["rewardbench"]  # says which split to get
    assert summary["scores"]["rmb"] is not None and summary["average_7"] is None


def test_quarantine_count_reaches_the_results(tiny_model: str, small_data_dir: Path, tmp_path: Path):
    path = small_data_dir / "ppe-preference" / "test.jsonl"
    with open(path, "a") as fh:
        fh.write('{"question_id": "bad", "winner": "model_c", "prompt": "x", "response_1": "a", "response_2": "b"}\n')
    out = tmp_path / "out"
    result = invoke("--model", tiny_model, "--benchmarks", "ppe-preference,rmb", "--data-dir", str(small_data_dir),
                    "--out", str(out), "--no-cache", "--no-mlflow", "--limit", "3")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "rmb" / "results.json").read_text())["n_items"] == 3  # --limit
    assert "--limit" in (out / "summary.md").read_text()
    res = json.loads((out / "ppe-preference" / "results.json").read_text())
    assert len(res["quarantined"]) == 1 and "row 3" in res["quarantined"][0] and "model_c" in res["quarantined"][0]
    assert json.loads((out / "summary.json").read_text())["quarantined"]["ppe-preference"] == 1
    assert "quarantined" in (out / "summary.md").read_text()


def test_eval_logs_to_the_models_mlflow_run(tiny_model: str, small_data_dir: Path, tmp_path: Path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("rm", artifact_location=str(tmp_path / "artifacts"))
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_artifacts(tiny_model, artifact_path="model")
    out = tmp_path / "out"
    cache = str(tmp_path / "cache.sqlite")
    result = invoke("--model", f"runs:/{run.info.run_id}/model", "--benchmarks", "judgebench",
                    "--data-dir", str(small_data_dir), "--out", str(out), "--cache", cache)
    assert result.exit_code == 0, result.output
    client = MlflowClient(uri)
    metrics = client.get_run(run.info.run_id).data.metrics
    summary = json.loads((out / "summary.json").read_text())
    assert metrics["eval/judgebench"] == pytest.approx(100 * summary["scores"]["judgebench"])
    assert "eval/judgebench/math" in metrics
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/summary.json", "evaluation/plots", "evaluation/judgebench"} <= logged
    assert not any(".model" in path for path in logged)  # the downloaded weights stay out

    # a registered version by alias: same weights -> same fingerprint -> all from the cache,
    # and the metrics go to the run that produced the version
    client.create_registered_model("rm-tiny")
    version = client.create_model_version("rm-tiny", f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
    client.set_registered_model_alias("rm-tiny", "candidate", version)
    again = invoke("--model", "models:/rm-tiny@candidate", "--benchmarks", "judgebench", "--data-dir", str(small_data_dir),
                   "--out", str(tmp_path / "out2"), "--cache", cache)
    assert again.exit_code == 0, again.output
    summary2 = json.loads((tmp_path / "out2" / "summary.json").read_text())
    assert summary2["fingerprint"] == summary["fingerprint"]
    assert summary2["engine"]["forwarded_sequences"] == 0
    assert f"logged to MLflow run {run.info.run_id}" in " ".join(again.output.split())


def test_results_folder_is_atomic_and_verifiable(tiny_model: str, small_data_dir: Path, tmp_path: Path):
    from rewardops.outputs import verify_output

    out = tmp_path / "eval"
    args = ["--model", tiny_model, "--benchmarks", "rewardbench", "--data-dir", str(small_data_dir), "--no-mlflow",
            "--cache", str(tmp_path / "c.sqlite")]
    result = invoke(*args, "--out", str(out))
    assert result.exit_code == 0, result.output
    manifest = verify_output(out, kind="evaluation")
    assert {"summary.json", "summary.md", "rewardbench/results.json"} <= {f["path"] for f in manifest["files"]}
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    result = invoke(*args, "--out", str(home))
    assert result.exit_code == 2 and "not written by rewardops" in " ".join(result.output.split())
    assert [p.name for p in home.iterdir()] == ["notes.txt"]
