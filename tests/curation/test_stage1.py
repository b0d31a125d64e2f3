from __future__ import annotations

import json

from rewardops.curation.cheap_rm import HashedBTTrainer
from rewardops.curation.human import SimulatedAnnotator
from rewardops.curation.judges import JudgeEnsemble, SimulatedJudge
from rewardops.curation.stage1 import Stage1Config, Stage1Loop, train_final_models
from rewardops.data.shards import read_pairs, write_pairs

from .conftest import toy_pairs


class ListTracker:
    def __init__(self):
        self.logged = []

        self.figures = []

    def log_metrics(self, metrics, step=None):
        self.logged.append((step, dict(metrics)))

    def log_figure(self, figure, name=None):
        self.figures.append((name, len(figure.axes)))


def test_stage1_loop_grows_gold_and_silver_per_iteration_and_resumes(tmp_path, embedder):
    write_pairs(toy_pairs(20, noise=0.0, seed=1, prefix="g"), tmp_path / "gold")
    write_pairs(toy_pairs(60, noise=0.3, seed=2, prefix="s"), tmp_path / "silver")
    write_pairs(toy_pairs(200, noise=0.3, seed=3, prefix="u"), tmp_path / "pool")
    judges = JudgeEnsemble([SimulatedJudge(error_rate=0.1, seed=1, name="sim-a"), SimulatedJudge(error_rate=0.2, seed=2, name="sim-b")],
                           n_samples=3)
    tracker = ListTracker()
    loop = Stage1Loop(HashedBTTrainer(dim=1 << 12, epochs=3), embedder, SimulatedAnnotator(error_rate=0.0, undecidable_rate=0.1),
                      judges, Stage1Config(iterations=2, human_per_iteration=5), tracker=tracker)
    reports = loop.run(tmp_path / "gold", tmp_path / "silver", tmp_path / "pool", tmp_path / "s1", progress=False)
    assert [r.iteration for r in reports] == [1, 2]
    r1, r2 = reports
    assert r1.retrieved > 0 and r1.added_gold + r1.undecidable == min(5, r1.retrieved)
    assert r1.added_silver + r1.no_verdict == r1.retrieved - 5
    assert r2.gold_size == 20 + r1.added_gold + r2.added_gold and r2.silver_size == 60 + r1.added_silver + r2.added_silver
    # labelled and undecidable pairs leave the pool; no-verdict pairs go back to it
    assert r2.pool_left == 200 - (r1.retrieved - r1.no_verdict) - (r2.retrieved - r2.no_verdict)
    assert r1.rm_temperature > 0 and r1.retrieval_texts > 0
    assert 0.0 <= r1.gold_accuracy <= 1.0 and "inter_model_agreement" in r1.judge
    assert [s for s, _ in tracker.logged] == [1, 2] and "gold_accuracy" in tracker.logged[0][1]
    assert tracker.figures == [("stage1_iterations.png", 2)]

    it1 = tmp_path / "s1" / "iter-01"
    gold1 = list(read_pairs(it1 / "gold"))
    added = list(read_pairs(it1 / "added_gold"))
    assert len(gold1) == r1.gold_size and all(p.label_source == "human" for p in added)
    assert all(p.truth_chosen_better for p in added)  # perfect simulated humans orient every pair correctly
    assert all(any("simulated-annotator" in step for step in p.lineage) for p in added)
    assert all(any(step.startswith("stage1:iter-01:retrieved") for step in p.lineage) for p in added)
    silver_added = list(read_pairs(it1 / "added_silver"))
    assert all(p.label_source == "llm" for p in silver_added)
    assert (it1 / "rm" / "hashed_bt.npy").exists() and json.loads((it1 / "metrics.json").read_text())["report"]["iteration"] == 1
    all_ids = [p.id for p in read_pairs(tmp_path / "s1" / "iter-02" / "gold")] + [p.id for p in read_pairs(tmp_path / "s1" / "iter-02" / "silver")]
    assert len(all_ids) == len(set(all_ids))  # a pool pair enters gold or silver once

    # resume: a rerun with more iterations continues from iter-02 instead of redoing it
    loop.config.iterations = 3
    more = loop.run(tmp_path / "gold", tmp_path / "silver", tmp_path / "pool", tmp_path / "s1", progress=False)
    assert [r.iteration for r in more] == [1, 2, 3] and more[1] == r2
    from rewardops.curation.steps import latest_iteration

    assert latest_iteration(tmp_path / "s1").name == "iter-03"

    best, gold_rm = train_final_models(HashedBTTrainer(dim=1 << 12, epochs=3), tmp_path / "s1", tmp_path / "final")
    test = toy_pairs(30, seed=9, prefix="t")
    assert sum(p > 0.5 for p in gold_rm.score_pairs(test)) >= 27


def test_judge_budget_caps_llm_labels_and_returns_the_rest_to_the_pool(tmp_path, embedder):
    write_pairs(toy_pairs(20, noise=0.0, seed=1, prefix="g"), tmp_path / "gold")
    write_pairs(toy_pairs(60, noise=0.3, seed=2, prefix="s"), tmp_path / "silver")
    write_pairs(toy_pairs(200, noise=0.3, seed=3, prefix="u"), tmp_path / "pool")
    judges = JudgeEnsemble([SimulatedJudge(error_rate=0.1, seed=1, name="sim-a")], n_samples=1)
    loop = Stage1Loop(HashedBTTrainer(dim=1 << 12, epochs=3), embedder, SimulatedAnnotator(error_rate=0.0),
                      judges, Stage1Config(iterations=1, human_per_iteration=5, judge_budget=7))
    (r1,) = loop.run(tmp_path / "gold", tmp_path / "silver", tmp_path / "pool", tmp_path / "s1", progress=False)
    assert r1.retrieved > 12, "the toy pool should retrieve more than the budget"
    assert r1.added_silver + r1.no_verdict == 7
    assert r1.unreviewed == r1.retrieved - 5 - 7
    # deferred and no-verdict pairs stay in the pool for the next iteration
    assert r1.pool_left == 200 - 5 - r1.added_silver


class SilentJudge:
    """A judge whose server answers nothing usable (every vote None)."""

    name = "silent"
    failures: dict = {"unparseable": 0}

    def vote(self, tasks):
        return [None] * len(tasks)


def test_judges_that_never_vote_stop_the_run_and_keep_finished_iterations(tmp_path, embedder):
    import pytest

    from rewardops.curation.stage1 import NoVerdictError

    write_pairs(toy_pairs(20, noise=0.0, seed=1, prefix="g"), tmp_path / "gold")
    write_pairs(toy_pairs(60, noise=0.3, seed=2, prefix="s"), tmp_path / "silver")
    write_pairs(toy_pairs(100, noise=0.3, seed=3, prefix="u"), tmp_path / "pool")
    loop = Stage1Loop(HashedBTTrainer(dim=1 << 12, epochs=2), embedder, SimulatedAnnotator(error_rate=0.0),
                      JudgeEnsemble([SilentJudge()], n_samples=1), Stage1Config(iterations=1, human_per_iteration=2))
    with pytest.raises(NoVerdictError, match="no valid vote"):
        loop.run(tmp_path / "gold", tmp_path / "silver", tmp_path / "pool", tmp_path / "s1", progress=False)
    assert not (tmp_path / "s1" / "iter-01" / "metrics.json").exists()  # nothing half-written
    assert (tmp_path / "s1" / "iter-00" / "metrics.json").exists()


def test_a_simulated_annotator_or_judge_refuses_pairs_without_truth():
    import pytest

    pair = toy_pairs(1)[0]
    pair.truth_chosen_better = None
    with pytest.raises(ValueError, match="needs truth_chosen_better"):
        SimulatedAnnotator().verify([pair])
    with pytest.raises(ValueError, match="needs truth_chosen_better"):
        JudgeEnsemble([SimulatedJudge()], n_samples=1).judge([(pair, [])])


def test_resume_and_run_iteration_are_the_api_and_iterations_record_what_left_the_pool(tmp_path, embedder):
    import pytest

    write_pairs(toy_pairs(20, noise=0.0, seed=1, prefix="g"), tmp_path / "gold")
    write_pairs(toy_pairs(60, noise=0.3, seed=2, prefix="s"), tmp_path / "silver")
    write_pairs(toy_pairs(150, noise=0.3, seed=3, prefix="u"), tmp_path / "pool", shard_size=50)
    judges = JudgeEnsemble([SimulatedJudge(error_rate=0.1, seed=1, name="sim-a")], n_samples=1)
    loop = Stage1Loop(HashedBTTrainer(dim=1 << 12, epochs=2), embedder, SimulatedAnnotator(error_rate=0.0, undecidable_rate=0.2),
                      judges, Stage1Config(iterations=1, human_per_iteration=5))
    args = (tmp_path / "gold", tmp_path / "silver", tmp_path / "pool", tmp_path / "s1")
    state = loop.resume(*args)
    assert state.next_iteration == 1 and len(state.pool) == 150 and len(state.pool.shards) == 3
    with pytest.raises(ValueError, match="the next is 1, not 2"):
        loop.run_iteration(state, 2)
    r1 = loop.run_iteration(state, 1)
    assert state.next_iteration == 2 and loop.config.iterations == 1  # nothing steered through the config
    moved = json.loads((tmp_path / "s1" / "iter-01" / "moved.json").read_text())
    left = {p.id for name in ("added_gold", "added_silver", "undecidable")
            for p in read_pairs(tmp_path / "s1" / "iter-01" / name)}
    assert set(moved["ids"]) == left and len(moved["positions"]) == len(left) == r1.retrieved - r1.no_verdict
    assert moved["pool"] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    vectors = sorted((tmp_path / "s1" / "pool_vectors").glob("*.npy"))
    mtimes = [v.stat().st_mtime_ns for v in vectors]
    # a fresh process resumes: the same pool minus what moved out, the vectors reused, iteration 2 next
    again = loop.resume(*args)
    assert again.next_iteration == 2 and len(again.pool) == 150 - len(left) == r1.pool_left
    assert [v.stat().st_mtime_ns for v in vectors] == mtimes and len(again.gold) == r1.gold_size
    r2 = loop.run_iteration(again, 2)
    ids2 = {p.id for name in ("added_gold", "added_silver") for p in read_pairs(tmp_path / "s1" / "iter-02" / name)}
    assert not ids2 & left and r2.pool_left == r1.pool_left - (r2.retrieved - r2.no_verdict)


class PacedJudges:
    """The ensemble behind a judge that needs `per_pair` seconds a pair (as a local LLM judge does
    on CPU); records the size of every call."""

    def __init__(self, inner, per_pair):
        self.inner, self.per_pair, self.calls = inner, per_pair, []

    name = property(lambda self: self.inner.name)
    stats = property(lambda self: self.inner.stats, lambda self, v: setattr(self.inner, "stats", v))

    def judge(self, items):
        import time

        self.calls.append(len(items))
        time.sleep(self.per_pair * len(items))
        return self.inner.judge(items)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_judge_calls_are_sized_by_the_judges_pace_so_progress_shows_while_they_work(tmp_path, embedder, monkeypatch):
    from rewardops.curation import stage1

    monkeypatch.setattr(stage1, "JUDGE_CHUNK_S", 0.2)
    write_pairs(toy_pairs(10, noise=0.0, seed=1, prefix="g"), tmp_path / "gold")
    write_pairs(toy_pairs(30, noise=0.3, seed=2, prefix="s"), tmp_path / "silver")
    write_pairs(toy_pairs(120, noise=0.3, seed=3, prefix="u"), tmp_path / "pool")
    judges = PacedJudges(JudgeEnsemble([SimulatedJudge(error_rate=0.1, seed=1, name="sim-a")], n_samples=1), 0.02)
    loop = Stage1Loop(HashedBTTrainer(dim=1 << 10, epochs=2), embedder, SimulatedAnnotator(error_rate=0.0),
                      judges, Stage1Config(iterations=1, human_per_iteration=2))
    (report,) = loop.run(tmp_path / "gold", tmp_path / "silver", tmp_path / "pool", tmp_path / "s1", progress=False)
    assert sum(judges.calls) == report.added_silver + report.no_verdict > stage1.JUDGE_FIRST_CHUNK
    # the first call measures the pace (0.02 s a pair); later calls take about 0.2 s: at most 10 pairs, not 64
    assert judges.calls[0] == stage1.JUDGE_FIRST_CHUNK and len(judges.calls) > 2
    assert all(1 <= n <= 10 for n in judges.calls[1:]) and max(judges.calls[1:-1] or [5]) > stage1.JUDGE_FIRST_CHUNK
