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


GOOD_WORDS = ("correct", "example", "step", "precise", "clear")


def _goodness(text: str) -> int:
    return sum(w in text.lower() for w in GOOD_WORDS)


class ContentReader:
    """A stand-in for a PERSON reading the two responses (no truth column needed): the response with
    more signs of a real explanation wins. Registered as an annotator kind, as a new one would be."""

    name = "content-reader"

    def verify(self, pairs):
        return [_goodness(p.chosen) >= _goodness(p.rejected) for p in pairs]


def content_reader(arg, settings, **context):
    return ContentReader()


def _judge_or_attributes(body):
    """The loopback OpenAI-compatible server: attributes when asked for them, else a verdict by content."""
    import re

    if (body.get("response_format") or {}).get("json_schema", {}).get("name") == "preference_attributes":
        return Reply(content=json.dumps(VALID))
    text = "\n".join(m["content"] for m in body["messages"] if m["role"] == "user").split("# Item to judge")[-1]
    c1 = re.search(r"<candidate_1>(.*?)</candidate_1>", text, re.S).group(1)
    c2 = re.search(r"<candidate_2>(.*?)</candidate_2>", text, re.S).group(1)
    return Reply(content=json.dumps({"verdict": 1 if _goodness(c1) >= _goodness(c2) else 2}))


def _real_pool(n, seed):
    """Toy pairs as real data arrives: no truth column, no attributes."""
    pairs = toy_pairs(n, noise=0.25, seed=seed, prefix=f"r{seed}-")
    for p in pairs:
        p.truth_chosen_better = None
        p.task_category = p.objectivity = p.controversiality = p.desired_attributes = p.annotation_guideline = None
    return pairs


def test_every_curate_command_runs_on_real_data_without_truth(tmp_path, monkeypatch):
    """seed -> stage1 -> final-rms -> stage2 -> merge on a pool with no truth_chosen_better and no
    attributes: a person (registered annotator kind), an OpenAI-compatible judge and attribute
    generator on loopback; the simulations refuse it by name, and a missing judge config says what to set."""
    from rewardops.curation import builders

    monkeypatch.setitem(builders.ANNOTATORS, "reader", builders.Kind(f"{__name__}:content_reader", "none", "test person"))
    write_pairs(_real_pool(160, 1), tmp_path / "pre")
    settings = json.dumps({"annotator": "reader", "embedder": "hashed", "gold_n": 20, "silver_n": 50,
                           "pool_shards": 2, "iterations": 1, "human_per_iteration": 4, "judge_samples": 1,
                           "noise_gold_n": 8, "band": 0.2})
    s = ["--settings", settings]

    # no judge / attribute server configured: a clear message naming what to set
    for var in ("REWARDOPS_LLM_BASE_URL", "OPENAI_BASE_URL", "REWARDOPS_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    res = runner.invoke(app, ["curate", "seed", str(tmp_path / "pre"), "--out", str(tmp_path / "seed")] + s)
    assert res.exit_code == 2 and "REWARDOPS_LLM_BASE_URL" in res.output and "attributes" in res.output
    # a simulation on real data is refused, by name
    res = runner.invoke(app, ["curate", "seed", str(tmp_path / "pre"), "--out", str(tmp_path / "seed"),
                              "--annotator", "simulated:0.05", "--attributes", "heuristic"] + s)
    assert res.exit_code == 2 and "needs truth_chosen_better" in res.output
    # the default annotator is a person at a terminal: refused without one, with what to use instead
    res = runner.invoke(app, ["curate", "seed", str(tmp_path / "pre"), "--out", str(tmp_path / "seed"),
                              "--settings", "default", "--attributes", "heuristic"])
    assert res.exit_code == 2 and "interactive terminal" in res.output and "labelstudio" in res.output

    with OpenAIStub(_judge_or_attributes) as stub:
        monkeypatch.setenv("REWARDOPS_LLM_BASE_URL", stub.base_url)
        monkeypatch.setenv("REWARDOPS_LLM_MODEL", "stub")
        _ok(runner.invoke(app, ["curate", "seed", str(tmp_path / "pre"), "--out", str(tmp_path / "seed")] + s))
        state = json.loads((tmp_path / "seed" / "state.json").read_text())
        assert state["counts"]["attributes_generated"] == 160 and state["counts"]["gold"] == 20
        _ok(runner.invoke(app, ["curate", "stage1", "--state", str(tmp_path / "seed"), "--out", str(tmp_path / "s1")] + s))
        _ok(runner.invoke(app, ["curate", "final-rms", str(tmp_path / "s1"), str(tmp_path / "rms")] + s))
        _ok(runner.invoke(app, ["curate", "stage2", "--state", str(tmp_path / "s1"), "--models", str(tmp_path / "rms"),
                                "--out", str(tmp_path / "s2")] + s))
        _ok(runner.invoke(app, ["curate", "merge", "--state", str(tmp_path / "s1"), "--models", str(tmp_path / "rms"),
                                "--stage2", str(tmp_path / "s2"), "--out", str(tmp_path / "data")] + s))
        assert any("Item to judge" in json.dumps(r) for r in stub.requests)
    report = json.loads((tmp_path / "data" / "subsets.json").read_text())
    c = report["stage2"]["counts"]
    assert c["kept"] + c["discarded"] + c["no_verdict"] == 90  # the pool: every pair accounted for
    assert report["stage2"]["true_noise"] is None  # no truth: only the estimate from gold can be reported
    decision = report["stage2"]["decision"]  # filter or keep all, decided from every gold pair, and why
    assert decision["gold_pairs"] > 0 and decision["why"] and isinstance(report["stage2"]["filtered"], bool)
    curated = list(read_pairs(tmp_path / "data" / "curated"))
    assert len(curated) == report["curated"] and all(p.task_category == "code" for p in curated)  # from the server


def test_stage_commands_resume_and_train_the_gold_rm(tmp_path):
    from rewardops.data.world import generate_world

    write_pairs(list(generate_world(200, noise=0.2, seed=2)), tmp_path / "pre")
    s = ["--settings", json.dumps({"profile": "demo", "judges": ["simulated:0.1"], "judge_samples": 1,
                                   "embedder": "hashed", "gold_n": 24, "silver_n": 40, "iterations": 2,
                                   "human_per_iteration": 4, "judge_budget": 10})]
    _ok(runner.invoke(app, ["curate", "seed", str(tmp_path / "pre"), "--out", str(tmp_path / "seed")] + s))
    _ok(runner.invoke(app, ["curate", "stage1", "--state", str(tmp_path / "seed"), "--out", str(tmp_path / "s1"),
                            "--iterations", "1"] + s))
    assert [p.name for p in sorted((tmp_path / "s1" / "stage1").glob("iter-*"))] == ["iter-00", "iter-01"]
    res = _ok(runner.invoke(app, ["curate", "stage1", "--state", str(tmp_path / "seed"), "--out", str(tmp_path / "s1")] + s))
    assert "iter 1" in res.output and [p.name for p in sorted((tmp_path / "s1" / "stage1").glob("iter-*"))][-1] == "iter-02"
    metrics = json.loads((tmp_path / "s1" / "stage1" / "iter-02" / "metrics.json").read_text())["report"]
    assert metrics["unreviewed"] > 0  # past the judge budget: back in the pool, counted

    # the gold RM from imported gold: trained on every gold pair, calibrated on cross-fitted probabilities
    _ok(runner.invoke(app, ["curate", "gold-rm", "--gold", str(tmp_path / "s1" / "stage1" / "iter-02" / "gold"),
                            "--out", str(tmp_path / "goldrm")] + s))
    rm = json.loads((tmp_path / "goldrm" / "rm.json").read_text())
    assert rm["kind"] == "hashed-bt" and rm["calibration_pairs"] == count_pairs(tmp_path / "goldrm" / "train") > 0
    assert rm["crossfit_folds"] == 4 and len(list((tmp_path / "goldrm" / "folds").glob("fold-*"))) == 4
    res = runner.invoke(app, ["curate", "gold-rm", "--gold", str(tmp_path / "nothing"), "--out", str(tmp_path / "g2")] + s)
    assert res.exit_code == 2 and "nothing" in res.output
    res = runner.invoke(app, ["curate", "stage1", "--state", str(tmp_path / "seed"), "--out", str(tmp_path / "x"),
                              "--judge", "gpt-9"] + s)
    assert res.exit_code == 2 and "judges 'gpt-9': use one of openai, local, simulated" in res.output


def test_review_commands(tmp_path):
    write_pairs(toy_pairs(120, noise=0.3, seed=4, prefix="w"), tmp_path / "wild", shard_size=40)
    _ok(runner.invoke(app, ["review", "export", str(tmp_path / "wild"), str(tmp_path / "ls"), "--limit", "3"]))
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    for t in tasks:
        t["annotations"] = [{"completed_by": 1, "result": [{"from_name": "preference", "to_name": "response_a",
                                                             "type": "choices", "value": {"choices": ["A is better"]}}]}]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    _ok(runner.invoke(app, ["review", "import", str(tmp_path / "export.json"), str(tmp_path / "wild"), str(tmp_path / "rev")]))
    assert count_pairs(tmp_path / "rev" / "gold") == 3 and count_pairs(tmp_path / "rev" / "pending") == 117
