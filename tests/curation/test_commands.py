"""The curation CLI end to end on a tiny world (cheap RM, simulated humans and judges, loopback LLM)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.data.shards import count_pairs, read_pairs, write_pairs

from .conftest import toy_pairs
from .openai_stub import OpenAIStub, Reply

runner = CliRunner()

VALID = {"task_category": "code", "objectivity": "objective", "controversiality": "low",
         "desired_attributes": "Correct code.", "annotation_guideline": "Run it mentally."}


def _ok(result):
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_annotate_command_against_loopback_server(tmp_path, monkeypatch):
    pairs = toy_pairs(6)
    for p in pairs:
        p.task_category = None
    write_pairs(pairs, tmp_path / "in", shard_size=3)
    with OpenAIStub(lambda body: Reply(content=json.dumps(VALID))) as stub:
        monkeypatch.setenv("REWARDOPS_LLM_BASE_URL", stub.base_url)
        monkeypatch.setenv("REWARDOPS_LLM_MODEL", "stub")
        _ok(runner.invoke(app, ["annotate", str(tmp_path / "in"), str(tmp_path / "out")]))
    out = list(read_pairs(tmp_path / "out"))
    assert [p.id for p in out] == [p.id for p in pairs] and all(p.task_category == "code" for p in out)
    summary = json.loads((tmp_path / "out" / "annotate-summary.json").read_text())
    assert summary["input_rows"] == 6 and summary["tokens"]["requests"] == 6
    monkeypatch.delenv("REWARDOPS_LLM_BASE_URL")
    res = runner.invoke(app, ["annotate", str(tmp_path / "in"), str(tmp_path / "out2")])
    assert res.exit_code == 2 and "REWARDOPS_LLM_BASE_URL" in res.output


def test_stage1_final_rms_stage2_and_review_commands(tmp_path, embedder, monkeypatch):
    import rewardops.curation.retrieval as retrieval

    # the same real MiniLM model, loaded once per session instead of once per command (CPU time)
    monkeypatch.setattr(retrieval, "SentenceTransformerEmbedder", lambda *a, **k: embedder)
    write_pairs(toy_pairs(20, seed=1, prefix="g"), tmp_path / "gold")
    write_pairs(toy_pairs(60, noise=0.3, seed=2, prefix="s"), tmp_path / "silver")
    write_pairs(toy_pairs(100, noise=0.3, seed=3, prefix="u"), tmp_path / "pool")
    write_pairs(toy_pairs(120, noise=0.3, seed=4, prefix="w"), tmp_path / "wild", shard_size=40)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    _ok(runner.invoke(app, ["curate", "stage1", "--gold", str(tmp_path / "gold"), "--silver", str(tmp_path / "silver"),
                            "--pool", str(tmp_path / "pool"), "--out", str(tmp_path / "s1"), "--iterations", "2",
                            "--human-per-iteration", "4", "--rm", "hashed-bt", "--judge", "simulated:0.1",
                            "--judge", "simulated:0.3", "--tracking-uri", uri]))
    assert count_pairs(tmp_path / "s1" / "latest" / "gold") > 20

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("rewardops-curation")
    (run,) = client.search_runs([exp.experiment_id])
    hist = client.get_metric_history(run.info.run_id, "gold_size")
    assert [m.step for m in hist] == [1, 2] and hist[1].value > hist[0].value
    assert "judge_inter_model_agreement" in run.data.metrics
    assert "figures/stage1_iterations.png" in {a.path for a in client.list_artifacts(run.info.run_id, "figures")}

    _ok(runner.invoke(app, ["curate", "final-rms", str(tmp_path / "s1"), str(tmp_path / "rms"), "--rm", "hashed-bt"]))
    args = ["curate", "stage2", "--pool", str(tmp_path / "wild"), "--best-rm", str(tmp_path / "rms" / "best_rm"),
            "--gold-rm", str(tmp_path / "rms" / "gold_rm"), "--out", str(tmp_path / "s2"), "--judge", "simulated:0.1"]
    _ok(runner.invoke(app, args + ["--shard", "1"]))
    assert json.loads((tmp_path / "s2" / "manifest.json").read_text())["shards_done"] == 1
    _ok(runner.invoke(app, args))
    manifest = json.loads((tmp_path / "s2" / "manifest.json").read_text())
    o = manifest["outputs"]
    assert manifest["input_rows"] == 120 and o["kept"] + o["discarded"] + o["no_verdict"] == 120
    assert o["recycled"] == o["discarded"]

    _ok(runner.invoke(app, ["review", "export", str(tmp_path / "wild"), str(tmp_path / "ls"), "--limit", "3"]))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    for t in tasks:
        t["annotations"] = [{"completed_by": 1, "result": [{"from_name": "preference", "to_name": "response_a",
                                                             "type": "choices", "value": {"choices": ["A is better"]}}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    _ok(runner.invoke(app, ["review", "import", str(tmp_path / "export.json"), str(tmp_path / "wild"), str(tmp_path / "rev")]))
    assert count_pairs(tmp_path / "rev" / "gold") == 3 and count_pairs(tmp_path / "rev" / "pending") == 117
