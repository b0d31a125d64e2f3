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


def _outcomes(n: int, right_kept: float, wrong_kept: float, wrong_recycled: float = 0.0) -> list[dict]:
    """n gold pairs replayed both ways: the first right_kept*n kept as labelled (else discarded), the
    first wrong_kept*n kept when flipped (else discarded, the first wrong_recycled*n also recycled)."""
    out = []
    for i in range(n):
        right = ["kept"] if i < right_kept * n else ["discarded"]
        wrong = ["kept"] if i < wrong_kept * n else (["discarded", "recycled"] if i >= n - wrong_recycled * n else ["discarded"])
        out.append({"id": str(i), "right": right, "wrong": wrong})
    return out


def test_decision_filters_when_kept_plus_recycled_is_shown_cleaner():
    """200 gold pairs, a rule that keeps 80% of right labels and 30% of wrong ones, on a pool whose
    kept share says 25% noise: kept is estimated at 0.3*.25/(0.3*.25+0.8*.75) = 0.111, kept + recycled
    (20% of wrong labels recycled right) at .075/.725 = 0.103, and filtering wins."""
    from rewardops.curation.stage2 import decide

    outcomes = _outcomes(200, 0.8, 0.3, wrong_recycled=0.2)
    pool = 1000
    q = 0.75 * 0.8 + 0.25 * 0.3  # the kept share such a pool would show
    counts = {"kept": round(q * pool), "discarded": pool - round(q * pool), "no_verdict": 0, "recycled": 50}
    d = decide(counts, outcomes, z=1.645)
    assert d["filter"] and d["shown_cleaner"] and d["why"].startswith("filter")
    noise = d["noise"]
    assert abs(noise["pool"]["estimate"] - 0.25) < 0.01 and abs(noise["kept"]["estimate"] - 0.111) < 0.01
    lo, hi = noise["kept"]["interval"]
    assert lo < noise["kept"]["estimate"] < hi and hi - lo > 0.01  # a real interval, not a point
    assert noise["recycled"]["estimate"] == 0.0  # no right gold pair was recycled
    assert d["ratio_upper_bound"] < 1 and abs(d["ratio"] - 0.075 / 0.725 / 0.25) < 0.01 and d["gold_pairs"] == 200


def test_decision_keeps_all_and_says_why_when_skill_is_not_shown():
    """A rule that barely separates right from wrong labels on 40 gold pairs is not shown to clean
    the pool: keep all, with the numbers in the reason. The paper's rule as is filters anyway."""
    from rewardops.curation.stage2 import decide

    outcomes = _outcomes(40, 0.6, 0.5)
    counts = {"kept": 575, "discarded": 425, "no_verdict": 0, "recycled": 0}
    d = decide(counts, outcomes, z=1.645)
    assert not d["filter"] and not d["shown_cleaner"]
    assert d["why"].startswith("keep every pool pair as labelled") and "40 gold pairs" in d["why"]
    assert d["ratio_upper_bound"] is None or d["ratio_upper_bound"] >= 1
    forced = decide(counts, outcomes, z=1.645, enforce=False)
    assert forced["filter"] and "paper's rule as is" in forced["why"]
    # a rule that keeps wrong labels as often as right ones: the pool's noise is not identifiable
    flat = decide(counts, _outcomes(40, 0.5, 0.5), z=1.645)
    assert not flat["filter"] and "not identifiable" in flat["why"]
    assert not decide(counts, [], z=1.645)["filter"] and not decide({}, outcomes, z=1.645)["filter"]


def test_a_few_perfect_gold_pairs_do_not_claim_certainty():
    """Six gold pairs all separated perfectly: the uninformative pseudo-pair keeps the bound honest."""
    from rewardops.curation.stage2 import decide

    counts = {"kept": 700, "discarded": 300, "no_verdict": 0, "recycled": 0}
    few, many = decide(counts, _outcomes(6, 1.0, 0.0), z=1.645), decide(counts, _outcomes(200, 1.0, 0.0), z=1.645)
    assert few["noise"]["kept"]["interval"][1] > many["noise"]["kept"]["interval"][1]
    assert many["filter"]


def test_replay_scores_each_gold_pair_both_ways_with_the_same_rule():
    from rewardops.curation.stage2 import replay_outcomes

    pairs = toy_pairs(3)
    p = {pairs[0].id: 0.85, pairs[1].id: 0.4, pairs[2].id: 0.95}

    class Symmetric(TableScorer):  # a BT model: the flipped pair gets 1 - p
        def score_pairs(self, batch):
            return [p[x.id] if x.label_source != "flipped" else 1 - p[x.id] for x in batch]

    f = Stage2Filter(Symmetric(p), Symmetric(p), Stage2Config(recycle_confidence=0.9))
    out = {o["id"]: o for o in replay_outcomes(f, pairs)}
    assert out[pairs[0].id] == {"id": pairs[0].id, "right": ["kept"], "wrong": ["discarded"]}
    assert out[pairs[1].id]["right"] == ["discarded"] and out[pairs[1].id]["wrong"] == ["kept"]
    assert out[pairs[2].id]["wrong"] == ["discarded", "recycled"]  # both RMs reverse it confidently
    assert all(not q.lineage or q.lineage[-1] != "stage2:kept" for q in pairs)  # the originals are untouched


def test_cross_fitted_gold_rm_scores_each_gold_pair_with_a_model_that_never_saw_it(tmp_path):
    from rewardops.curation.rms import train_gold_rm
    from rewardops.curation.settings import CurationSettings
    from rewardops.data.world import generate_world

    write_pairs(list(generate_world(80, noise=0.0, seed=4)), tmp_path / "gold")
    full, crossfit, pairs = train_gold_rm(CurationSettings(), tmp_path / "gold", tmp_path / "rm")
    assert len(pairs) == 80 and crossfit is not None and full.record["crossfit_folds"] == 4
    folds = crossfit.fold_of
    assert set(folds) == {p.id for p in pairs} and set(folds.values()) == {0, 1, 2, 3}
    for k in range(4):  # fold k's model trained on every gold pair except fold k's
        trained = {q.id for q in read_pairs(tmp_path / "rm" / "folds" / f"fold-{k}" / "train")}
        assert trained == {i for i, f in folds.items() if f != k}
    assert full.record["calibration_pairs"] == 80
    # each fold RM is calibrated on the other folds' out-of-fold probabilities (not on its own pairs)
    assert full.record["crossfit_fold_temperatures"] == [m.temperature for m in crossfit.models]


def test_each_pool_pair_is_also_decided_as_if_its_label_were_the_other_way_round():
    """The mirror a pool pair's counter records is what the rule decides for the flipped pair
    (antisymmetric RMs, a judged verdict reversing with the label); stage 1's pairs are not counted."""
    pairs = toy_pairs(24, noise=0.0)
    grid = [0.02, 0.15, 0.35, 0.45, 0.55, 0.65, 0.85, 0.98]
    pb = {p.id: grid[i % 8] for i, p in enumerate(pairs)}
    pg = {p.id: grid[(3 * i + 1) % 8] for i, p in enumerate(pairs)}

    class Symmetric(TableScorer):  # a BT model: the flipped pair gets 1 - p
        def score_pairs(self, batch):
            return [self.table[x.id] if x.label_source != "flipped" else 1 - self.table[x.id] for x in batch]

    for judges in (None, JudgeEnsemble([SimulatedJudge(error_rate=0.0)], n_samples=1)):
        def run(batch, protected=None):
            f = Stage2Filter(Symmetric(pb), Symmetric(pg), Stage2Config(band=0.1, recycle_confidence=0.9), judges=judges,
                             protected=protected)
            c = Counter()
            out = [(name, q) for name, q in f.process_batch(batch, c) if name != "recycled"]
            return out, c

        labelled, counters = run([p.copy() for p in pairs])
        flipped, _ = run([p.flipped() for p in pairs])
        flipped_set = {q.id: (name, q) for name, q in flipped}  # judged pairs come last: match by id

        def judged(q):
            return any(step.startswith("stage2:judges") for step in q.lineage)

        def mirror(q):  # no judge is called for the mirror: a pair only its flip sends to them gets the best RM's side
            name, f = flipped_set[q.id]
            if judged(f) and not judged(q):
                return "kept" if 1 - pb[q.id] > 0.5 else "discarded"
            return name

        expected = Counter(f"mirror:{a}>{mirror(q)}" for a, q in labelled)
        assert {k: v for k, v in counters.items() if k.startswith("mirror:")} == expected
        assert sum(expected.values()) == 24 and len(expected) > 2
        _, some_protected = run([p.copy() for p in pairs], protected=({pairs[0].id, pairs[1].id}, set()))
        assert sum(v for k, v in some_protected.items() if k.startswith("mirror:")) == 22


def _mirror(n: int, kept_as_labelled: float, kept_if_flipped: float) -> dict[str, int]:
    a, b = round(n * kept_as_labelled), round(n * kept_if_flipped)
    return {"mirror:kept>discarded": a, "mirror:discarded>kept": b, "mirror:discarded>discarded": n - a - b}


def test_the_pool_shows_modest_skill_the_gold_alone_cannot():
    """200 gold pairs keep right labels 0.27 and wrong ones 0.23 of the time: not enough to bound
    the ratio below 1. The 3,000-pair pool keeps 0.31 as labelled and 0.26 flipped: that is enough
    (0.05 difference, SE about 0.01), and the gold agrees in direction: filter."""
    from rewardops.curation.stage2 import decide

    # right labels kept for the first 54 pairs, wrong ones for the last 46 (no pair kept both ways)
    outcomes = [{"id": str(i), "right": ["kept" if i < 54 else "discarded"], "wrong": ["kept" if i >= 154 else "discarded"]}
                for i in range(200)]
    counts = {"kept": 930, "discarded": 2070, "no_verdict": 0, "recycled": 0}
    gold_only = decide(counts, outcomes, z=1.645)
    assert not gold_only["filter"]
    d = decide(counts, outcomes, z=1.645, counters=_mirror(3000, 0.31, 0.26))
    assert d["filter"] and d["pool_mirror"]["shows_skill"] and d["pool_mirror"]["lower_bound"] > 0
    assert "3000 pool pairs" in d["why"] and "pool mirror test" in d["method"]


def test_gold_that_looks_skilled_by_chance_does_not_filter_a_pool_that_shows_none():
    """The gold replay bounds the ratio below 1 (0.60 vs 0.45 kept), but on the pool the rule keeps
    pairs as labelled no more often than flipped: keep every pair and say so; and a pool that
    shows skill while the gold says the opposite direction keeps all too."""
    from rewardops.curation.stage2 import decide

    outcomes = _outcomes(200, 0.60, 0.30)
    counts = {"kept": 210, "discarded": 190, "no_verdict": 0, "recycled": 0}  # 0.75 * 0.6 + 0.25 * 0.3 kept
    assert decide(counts, outcomes, z=1.645)["filter"]  # the gold alone would filter
    flat = {"mirror:kept>discarded": 110, "mirror:discarded>kept": 106, "mirror:kept>kept": 100,
            "mirror:discarded>discarded": 84}  # kept 0.525 as labelled, 0.515 flipped
    d = decide(counts, outcomes, z=1.645, counters=flat)
    assert not d["filter"] and not d["pool_mirror"]["shows_skill"]
    assert d["why"].startswith("keep every pool pair as labelled") and "400 pool pairs" in d["why"]
    backwards = decide(counts, _outcomes(200, 0.30, 0.40), z=1.645, counters=_mirror(3000, 0.31, 0.26))
    assert backwards["pool_mirror"]["shows_skill"] and not backwards["filter"]
