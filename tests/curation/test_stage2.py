from __future__ import annotations

from collections import Counter

import pytest

from rewardops.curation.judges import JudgeEnsemble, SimulatedJudge
from rewardops.curation.stage2 import Stage2Config, Stage2Filter
from rewardops.data.shards import read_pairs, write_pairs

from .conftest import TableScorer, toy_pairs


def _route(pb: float, pg: float, judge_err: float | None, **cfg):
    pair = toy_pairs(1)[0]
    judges = None if judge_err is None else JudgeEnsemble([SimulatedJudge(error_rate=judge_err)], n_samples=1)
    f = Stage2Filter(TableScorer({pair.id: pb}), TableScorer({pair.id: pg}), Stage2Config(**cfg), judges=judges)
    c = Counter()
    out = list(f.process_batch([pair], c))
    return [name for name, _ in out], out[0][1], c


@pytest.mark.parametrize(
    "pb,pg,judge_err,expected,counter",
    [
        (0.9, 0.9, 1.0, ["kept"], "best_rm_agrees"),  # confident best RM: no judging
        (0.9, 0.3, 0.0, ["discarded"], "gold_rm_disagrees"),  # gold RM vetoes; the best RM agrees: not flipped
        (0.05, 0.08, 0.0, ["discarded", "recycled"], "gold_rm_disagrees"),  # both RMs confidently reverse it
        (0.55, 0.9, 0.0, ["kept"], "judges_agree"),  # uncertain -> judges agree
        (0.55, 0.9, 1.0, ["discarded"], "judges_disagree"),  # the RMs do not reverse it: never flipped
        (0.2, 0.9, 0.0, ["kept"], "judges_agree"),  # best RM disagrees, judges + gold rescue it
        (0.2, 0.9, None, ["discarded"], "no_judges_best_rm_decides"),
    ],
)
def test_retention_rule(pb, pg, judge_err, expected, counter):
    names, pair, c = _route(pb, pg, judge_err)
    assert names == expected and c[counter] == 1
    assert pair.scores["stage2_best_rm_p"] == pb and pair.lineage[-1] == f"stage2:{expected[0]}"


def test_band_and_disagreement_options():
    assert _route(0.65, 0.9, 1.0, band=0.2)[0] == ["discarded"]  # inside the wider band: judged
    assert _route(0.65, 0.9, 1.0, band=0.1)[0] == ["kept"]
    names, _, c = _route(0.2, 0.9, 0.0, judge_disagreements=False, recycle=False)
    assert names == ["discarded"] and c["best_rm_disagrees"] == 1 and c["judged"] == 0


class SilentJudge:
    name = "silent"

    def vote(self, tasks):
        return [None] * len(tasks)


def test_no_verdict_is_neither_kept_nor_lost():
    pair = toy_pairs(1)[0]
    f = Stage2Filter(TableScorer({pair.id: 0.5}), TableScorer({pair.id: 0.9}),
                     judges=JudgeEnsemble([SilentJudge()], n_samples=3))
    c = Counter()
    (name, out), = list(f.process_batch([pair], c))
    assert name == "no_verdict" and c["no_verdict"] == 1 and out.lineage[-2].endswith(":no_verdict")


def test_recycled_pairs_are_flipped_copies():
    pair = toy_pairs(1)[0]
    f = Stage2Filter(TableScorer({pair.id: 0.02}), TableScorer({pair.id: 0.05}))
    (_, d), (_, r) = list(f.process_batch([pair], Counter()))
    assert r.chosen == d.rejected and r.label_source == "flipped" and r.truth_chosen_better is False


def _setup(tmp_path, n=300, shard_size=50):
    pairs = toy_pairs(n, noise=0.2, seed=3)
    write_pairs(pairs, tmp_path / "pool", shard_size=shard_size)
    import random

    rng = random.Random(0)
    best = {p.id: rng.random() for p in pairs}
    gold = {p.id: (0.8 if p.truth_chosen_better else 0.2) if rng.random() < 0.9 else 0.5 for p in pairs}
    return pairs, best, gold


def _run(tmp_path, out, best, gold, fail_after=None, only=None):
    judges = JudgeEnsemble([SimulatedJudge(error_rate=0.1, seed=2)], n_samples=3)
    f = Stage2Filter(TableScorer(best, fail_after=fail_after), TableScorer(gold), Stage2Config(batch_size=16), judges=judges)
    return f.run(tmp_path / "pool", out, only=only, progress=False)


def test_crash_mid_stage_resumes_without_duplicates_or_loss(tmp_path):
    pairs, best, gold = _setup(tmp_path)
    clean = _run(tmp_path, tmp_path / "clean", best, gold)
    # 6 shards x 4 batches of 16 (50 rows: 16+16+16+2): crash inside the 3rd shard
    with pytest.raises(RuntimeError, match="injected crash"):
        _run(tmp_path, tmp_path / "crashy", best, gold, fail_after=10)
    partial = sorted((tmp_path / "crashy" / "_progress").glob("shard-*.json"))
    assert len(partial) == 2
    resumed = _run(tmp_path, tmp_path / "crashy", best, gold)
    assert resumed["outputs"] == clean["outputs"] and resumed["input_rows"] == 300
    for name in ("kept", "discarded", "no_verdict"):
        a = sorted(p.id for p in read_pairs(tmp_path / "clean" / name))
        b = [p.id for p in read_pairs(tmp_path / "crashy" / name)]
        assert sorted(b) == a and len(b) == len(set(b))
    out_ids = [p.id for n in ("kept", "discarded", "no_verdict") for p in read_pairs(tmp_path / "crashy" / n)]
    assert sorted(out_ids) == sorted(p.id for p in pairs)  # every input pair is in exactly one output
    assert not list((tmp_path / "crashy" / "_work").glob("*"))


def test_fan_out_one_shard_at_a_time(tmp_path):
    pairs, best, gold = _setup(tmp_path, n=100, shard_size=50)
    _run(tmp_path, tmp_path / "fan", best, gold, only=[1])
    assert [p.name for p in (tmp_path / "fan" / "kept").glob("*.parquet")] == ["part-00001.parquet"]
    summary = _run(tmp_path, tmp_path / "fan", best, gold, only=[0])
    assert summary["shards_done"] == 2 and summary["input_rows"] == 100
    with pytest.raises(IndexError, match="out of range"):
        _run(tmp_path, tmp_path / "fan", best, gold, only=[7])


def test_recycling_never_contradicts_or_repeats_stage_one_pairs():
    from rewardops.curation.stage2 import unordered_key

    pairs = toy_pairs(3)
    table = {p.id: 0.02 for p in pairs}
    twin = pairs[2].flipped()  # stage 1 already holds this pair (as its flipped copy, under another id)
    twin.id = "other-id"
    f = Stage2Filter(TableScorer(table), TableScorer(table),
                     protected=({pairs[1].id}, {unordered_key(twin)}))
    c = Counter()
    out = list(f.process_batch(pairs, c))
    assert [n for n, _ in out].count("recycled") == 1 and c["recycled"] == 1
    assert c["recycle_skipped:human_or_stage1_verified"] == 1 and c["recycle_skipped:duplicate_of_stage1"] == 1
    # a less confident reversal is not flipped
    c2 = Counter()
    f2 = Stage2Filter(TableScorer({pairs[0].id: 0.3}), TableScorer({pairs[0].id: 0.02}))
    assert [n for n, _ in f2.process_batch([pairs[0]], c2)] == ["discarded"] and c2["recycle_skipped:not_confident"] == 1


def test_judged_pairs_without_attributes_get_them_first():
    from rewardops.curation.attributes import HeuristicAttributes

    pair = toy_pairs(1)[0]
    pair.task_category = pair.desired_attributes = None
    f = Stage2Filter(TableScorer({pair.id: 0.5}), TableScorer({pair.id: 0.9}),
                     judges=JudgeEnsemble([SimulatedJudge(error_rate=0.0)], n_samples=1), attributes=HeuristicAttributes)
    c = Counter()
    (name, out), = list(f.process_batch([pair], c))
    assert name == "kept" and c["attributes_generated"] == 1 and out.task_category and "attributes:heuristic" in out.lineage
    bare = Stage2Filter(TableScorer({pair.id: 0.5}), TableScorer({pair.id: 0.9}),
                        judges=JudgeEnsemble([SimulatedJudge(error_rate=0.0)], n_samples=1))
    p2 = toy_pairs(1)[0]
    p2.objectivity = None
    with pytest.raises(ValueError, match="no attribute generator"):
        list(bare.process_batch([p2], Counter()))


def test_untrusted_gold_rm_keeps_every_pair_as_labelled():
    """A gold RM no better than chance on held-out gold must not filter: a coin would discard right
    and wrong pairs alike (the real-data bench saw kept noise above the pool's that way)."""
    from rewardops.curation.rms import CalibratedScorer, informative, skill_lower_bound
    from rewardops.curation.settings import CurationSettings
    from rewardops.curation.steps import make_filter

    pairs = toy_pairs(6)
    gold = TableScorer({p.id: 0.1 for p in pairs})  # would veto every pair
    best = TableScorer({p.id: 0.1 for p in pairs})
    coin = CalibratedScorer(gold, 1.0, {"gold_accuracy": 0.55, "calibration_pairs": 40})
    skilled = CalibratedScorer(gold, 1.0, {"gold_accuracy": 0.8, "calibration_pairs": 40})
    assert skill_lower_bound(0.55, 40, 1.645) < 0.5 < skill_lower_bound(0.8, 40, 1.645)
    assert not informative(coin, 1.645)[0] and informative(skilled, 1.645)[0]
    assert not informative(CalibratedScorer(gold, 1.0), 1.645)[0]  # nothing measured: not trusted

    settings = CurationSettings(stage2_judges=False)
    c = Counter()
    out = list(make_filter(settings, best, coin, None).process_batch([p.flipped().flipped() for p in pairs], c))
    assert [name for name, _ in out] == ["kept"] * len(pairs) and c["kept_untrusted_rms"] == len(pairs)
    assert all(p.lineage[-1] == "stage2:kept(untrusted RMs)" for _, p in out)
    assert not any(name == "recycled" for name, _ in out)

    c = Counter()
    out = list(make_filter(settings, best, skilled, None).process_batch(pairs, c))
    assert {name for name, _ in out} >= {"discarded"} and c["gold_rm_disagrees"] == len(pairs)

    # switched off: the paper's rule as is, even with a coin for a gold RM
    c = Counter()
    paper = CurationSettings(stage2_judges=False, keep_all_if_rms_untrusted=False)
    list(make_filter(paper, best, coin, None).process_batch(toy_pairs(6), c))
    assert c["gold_rm_disagrees"] == 6 and c["kept_untrusted_rms"] == 0
