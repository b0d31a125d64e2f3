"""Small things a new user meets in the first hour: `compare` on a mistyped SQLite path, `data get
--model` after `demo-out/` moved, the demo's log filter and its closing summary."""

from __future__ import annotations

import io
import json
from pathlib import Path

from typer.testing import CliRunner

from rewardops.cli import app


def test_compare_refuses_a_sqlite_store_that_does_not_exist(tmp_path):
    real = tmp_path / "mlflow.db"
    real.write_bytes(b"")  # a neighbour the message can name
    typo = tmp_path / "mlfow.db"
    result = CliRunner().invoke(app, ["compare", "--tracking-uri", f"sqlite:///{typo}", "--out", str(tmp_path / "c")])
    assert result.exit_code == 2, result.output
    said = result.output.replace("\n", "")  # rich wraps long lines
    assert f"no MLflow store at {typo}" in said and f"{tmp_path} holds mlflow.db" in said
    assert "Traceback" not in result.output
    assert not typo.exists()  # nothing created


def test_data_get_finds_a_registry_that_moved_next_to_the_mlflow_store(tmp_path):
    from rewardops.tracking.commands import locate_registry

    moved = tmp_path / "demo-out-moved"
    (moved / "data-registry" / ".dvc").mkdir(parents=True)
    recorded = str(tmp_path / "demo-out" / "data-registry")  # what MLflow recorded before the move
    found = locate_registry(recorded, f"sqlite:///{moved / 'mlflow.db'}")
    assert found == str(moved / "data-registry")
    assert locate_registry(str(moved / "data-registry"), None) == str(moved / "data-registry")
    assert locate_registry("https://github.com/org/registry.git", None) == "https://github.com/org/registry.git"


def test_the_demo_log_keeps_the_steps_lines_and_drops_kfp_local_dumps():
    from rewardops.pipelines.local_run import QuietOutput

    target = io.StringIO()
    quiet = QuietOutput(target)
    quiet.write("12:00:00.000 - INFO - Executing task 'train'\n\n")
    quiet.write("    [KFP Executor 2026 INFO]: Looking for component `train` in x\n")
    quiet.write("    [KFP Executor 2026 INFO]: Got executor_input:\n    {\n        \"inputs\": {\n")
    quiet.write("            \"a\": 1\n        }\n    }\n    [train-demo] data version v1\n")
    quiet.write("    Loading weights:  50%|#####     | 1/2\n    Converting:  50%|##  | 1/2\n    Converting: 100%|####| 2/2\n")
    quiet.write("    [train demo] step 1/2 loss 0.7\n")
    quiet.write("12:00:01.000 - INFO - Task 'train' outputs:\n    metrics: Metrics( name='m',\n")
    quiet.write("                      uri='/x' )\n12:00:01.000 - INFO - Task 'train' finished with status SUCCESS\n")
    quiet.write("    Traceback (most recent call last):\n      File \"x.py\", line 1, in <module>\n        f()\n")
    quiet.write("        ^^^\n    KeyboardInterrupt\n")  # a step stopped by Ctrl-C: the run says so once
    quiet.write("    Traceback (most recent call last):\n      File \"y.py\", line 2, in g\n    ValueError: bad\n")
    quiet.drain()
    assert target.getvalue().splitlines() == [
        "12:00:00.000 - INFO - Executing task 'train'",
        "    [train-demo] data version v1",
        "    Converting: 100%|####| 2/2",
        "    [train demo] step 1/2 loss 0.7",
        "12:00:01.000 - INFO - Task 'train' finished with status SUCCESS",
        "    Traceback (most recent call last):",
        '      File "y.py", line 2, in g',
        "    ValueError: bad",
    ]


def test_the_summary_tells_counts_noise_scores_decisions_and_where_to_look(tmp_path, monkeypatch):
    from rewardops.pipelines.local_run import SizeResult, summary_lines

    monkeypatch.chdir(tmp_path)
    counts = {"curated": 160, "gold": 27, "silver": 118, "stage2_kept": 15, "counts/kept": 36, "counts/discarded": 93,
              "counts/recycled": 1, "counts/no_verdict": 27, "filtered": 1,
              "estimated_noise/pool": 0.1, "estimated_noise/kept": 0.05, "estimated_noise/discarded": 0.4,
              "estimated_noise/recycled": 0.2, "true_noise/pool": 0.1, "true_noise/kept": 0.02,
              "true_noise/discarded": 0.5, "true_noise/recycled": 0.1}
    sizes = {"demo-tiny-qwen3": SizeResult("demo-tiny-qwen3", score=62.5, scores={"world": 62.5}, run_id="r1",
                                           model="rewardops-rm-demo-tiny-qwen3", version=2, promoted=False,
                                           decision="62.50 <= champion v1 62.50 + 0.0",
                                           report=str(tmp_path / "demo-out/kfp/x/evaluate/report/summary.md"))}
    lines = summary_lines(sizes, counts, tracking_uri=f"sqlite:///{tmp_path / 'demo-out' / 'mlflow.db'}",
                          workdir=tmp_path / "demo-out", suite="local-demo-1", registry=tmp_path / "demo-out" / "data-registry",
                          data_rev="0123456789abcdef")
    text = "\n".join(lines)
    assert "curation: 160 curated pairs (gold 27, silver 118, stage2_kept 15)" in text
    assert "kept 36, discarded 93, recycled (label flipped) 1, no verdict 27 of 157 pool pairs" in text
    assert "estimated from the gold replay: pool 10.0%, kept 5.0%, discarded 40.0%, recycled 20.0%" in text
    assert "true label noise (known on the generated world): pool 10.0%, kept 2.0%, discarded 50.0%, recycled 10.0%" in text
    assert "label noise: not estimated" not in text
    assert "demo-tiny-qwen3: score 62.5 (world 62.5)" in text
    assert "registry: rewardops-rm-demo-tiny-qwen3 v2 stays candidate (62.50 <= champion v1 62.50 + 0.0)" in text
    assert ".venv/bin/rewardops ui --tracking-uri sqlite:///$PWD/demo-out/mlflow.db" in text
    assert "report (demo-tiny-qwen3): demo-out/kfp/x/evaluate/report/summary.md" in text
    assert "DVC:     git -C demo-out/data-registry log --oneline   (curated at 0123456789ab;" in text
    assert len(lines) <= 30
    json.dumps(lines)  # plain text, one line each


def test_subset_bars_show_n_and_the_chance_line(tmp_path):
    from rewardops.evaluation.items import EvalItem
    from rewardops.evaluation.report import plot_subsets, write_benchmark

    result = {"overall": 0.6, "subsets": {"math": 0.75, "a-very-long-subset-name-that-needs-room": 0.5}}
    items = [EvalItem(f"i{i}", "math" if i < 4 else "a-very-long-subset-name-that-needs-room", (), ()) for i in range(6)]
    write_benchmark(tmp_path, "world", result, items, {f"i{i}": [] for i in range(6)})
    saved = json.loads((tmp_path / "world" / "results.json").read_text())
    assert saved["subset_n"] == {"math": 4, "a-very-long-subset-name-that-needs-room": 2}

    import matplotlib.pyplot as plt

    made = []
    monkey_savefig = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        made.append(fig)
        return monkey_savefig(fig, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        path = plot_subsets("world", saved, tmp_path / "subsets.png")
    finally:
        plt.Figure.savefig = monkey_savefig
    assert path.is_file()
    (ax,) = made[0].axes
    assert sorted(t.get_text() for t in ax.get_xticklabels()) == [
        "a-very-long-subset-name-that-needs-room\n(n=2)", "math\n(n=4)"]
    assert any(list(line.get_ydata()) == [50, 50] for line in ax.get_lines())  # the chance line
    assert ax.get_ylabel() == "accuracy (%)"


def test_the_ablation_arms_do_not_stand_in_for_their_size(tmp_path):
    """The data ablation trains the same size four times; the size's score, report and registry
    decision come from the size's own tasks, not from the last arm that ran (the merged demo printed
    arm (a)'s score as demo-tiny-qwen3's and the suite parent pointed at that arm's run)."""
    from types import SimpleNamespace

    from rewardops.pipelines.local_run import TaskRecord, TaskRecorder, size_results

    def art(path, **meta):
        return SimpleNamespace(metadata=meta, path=str(tmp_path / path))

    size = "demo-tiny-qwen3"
    recorder = TaskRecorder()
    recorder.records += [
        TaskRecord("train", "comp-train", {}, {"model": art("t", size=size, mlflow_run_id="own")}, True,
                   "train (in process)"),
        TaskRecord("evaluate", "comp-evaluate", {}, {"report": art("own", size=size, score=60.0)}, True,
                   "evaluate on the benchmarks"),
        TaskRecord("train-2", "comp-train-2", {}, {"model": art("t2", size=size, mlflow_run_id="arm-a")}, True,
                   "ablation (a) uncurated: train"),
        TaskRecord("evaluate-2", "comp-evaluate-2", {}, {"report": art("arm", size=size, score=51.0)}, True,
                   "ablation (a) uncurated: evaluate"),
    ]
    found = size_results(recorder)
    assert list(found) == [size]
    assert found[size].run_id == "own" and found[size].score == 60.0
    assert found[size].report == str(tmp_path / "own" / "summary.md")
    assert [r.task for r in recorder.of("train", ablation=True)] == ["train-2"]


def test_a_rerun_points_its_suite_at_the_ablation_runs_the_cached_table_names(tmp_path):
    """A rerun serves the ablation from the cache, so its arm runs belong to the earlier suite: the
    new suite points at them (parent tags, like the sizes) and `compare` shows the table again."""
    import json
    from types import SimpleNamespace

    from rewardops.pipelines.local_run import TaskRecord, TaskRecorder, ablation_runs

    (tmp_path / "table").write_text(json.dumps({"rows": [], "mlflow_runs": {"a-uncurated": "r1", "c-curated+recycled": "r3"}}))
    recorder = TaskRecorder()
    recorder.records.append(TaskRecord("ablation-table", "comp-ablation-table", {},
                                       {"table": SimpleNamespace(path=str(tmp_path / "table"), metadata={})}, True,
                                       "ablation table"))
    assert ablation_runs(recorder) == {"a-uncurated": "r1", "c-curated+recycled": "r3"}
