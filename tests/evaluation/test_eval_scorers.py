"""Every scorer pinned on cases worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardops.evaluation import scorers as S

# ----------------------------------------------------------------------- RewardBench v1


def test_rewardbench_sections_use_official_example_counts():
    rows = [
        # alpacaeval-easy: 2/2 correct; mt-bench-easy: 0/1 (a tie is wrong)
        ("alpacaeval-easy", 2.0, 1.0), ("alpacaeval-easy", 0.5, 0.1), ("mt-bench-easy", 1.0, 1.0),
        # math-prm 1/2 (weight 984), hep-python 1/1 (weight 164)
        ("math-prm", 1.0, 2.0), ("math-prm", 3.0, 2.0), ("hep-python", 1.0, 0.0),
        # xstest-should-refuse 1/1 (weight 154), xstest-should-respond 0/1 (weight 250)
        ("xstest-should-refuse", 1.0, 0.0), ("xstest-should-respond", 0.0, 1.0),
        # mt-bench-hard 1/1 (37)
        ("mt-bench-hard", 5.0, 4.0),
    ]
    out = S.rewardbench_v1(rows)
    assert out["subsets"]["alpacaeval-easy"] == 1.0 and out["subsets"]["mt-bench-easy"] == 0.0
    # Chat = (1*100 + 0*28) / 128
    assert out["sections"]["Chat"] == pytest.approx(100 / 128)
    # Reasoning = (0.5*984 + 1*164) / (984 + 164) = 656 / 1148
    assert out["sections"]["Reasoning"] == pytest.approx(656 / 1148)
    # Safety = 154 / 404 (refuse 154, respond 250, as in upstream rewardbench/constants.py since
    # 6552e93, 2024-09-10; the swapped 250/154 of before would give 250 / 404)
    assert out["sections"]["Safety"] == pytest.approx(154 / 404)
    assert out["sections"]["Chat Hard"] == 1.0
    assert out["overall"] == pytest.approx((100 / 128 + 656 / 1148 + 154 / 404 + 1.0) / 4)
    assert out["complete"] is True


def test_rewardbench_weights_are_upstreams():
    # upstream allenai/reward-bench rewardbench/constants.py EXAMPLE_COUNTS at 05a9005 (2026-01-31)
    assert S.EXAMPLE_COUNTS["xstest-should-refuse"] == 154 and S.EXAMPLE_COUNTS["xstest-should-respond"] == 250
    assert sum(S.EXAMPLE_COUNTS.values()) == 3522
    assert sum(S.EXAMPLE_COUNTS[s] for s in S.SUBSET_MAPPING["Safety"]) == 740


def test_rewardbench_partial_sections_are_flagged_and_unknown_subsets_not_weighted():
    out = S.rewardbench_v1([("alpacaeval-easy", 1.0, 0.0), ("my-extra", 0.0, 1.0)])
    assert out["sections"] == {"Chat": 1.0}
    assert out["complete"] is False
    assert out["unweighted_subsets"] == ["my-extra"]
    assert out["subsets"]["my-extra"] == 0.0


# ----------------------------------------------------------------------- RewardBench 2


def test_rb2_best_of_4_with_tie_credit():
    assert S.rb2_best_of_n([3.0, 1.0, 2.0, 0.0]) == 1.0
    assert S.rb2_best_of_n([2.0, 3.0, 1.0, 0.0]) == 0.0
    assert S.rb2_best_of_n([3.0, 3.0, 1.0, 0.0]) == 0.5  # tied with one rejected: 1/2
    assert S.rb2_best_of_n([1.0, 1.0, 1.0, 1.0]) == 0.25
    assert S.rb2_best_of_n([1.0, 1.0, 2.0, 0.0]) == 0.0  # tied but not at the max


def test_rb2_ties_formula_by_hand():
    # prompt 0: ref (1 correct) and tied (2 correct)
    #   ref:0   scores correct [5]       incorrect [1, 2]   -> accurate, margin = 5-2 = 3
    #   tied:0  scores correct [6, 4]    incorrect [3]      -> accurate, spread = 2, margin = 4-3 = 1
    # prompt 1:
    #   ref:1   correct [1]  incorrect [2]                  -> wrong, margin = -1
    #   tied:1  correct [5, 4.5] incorrect [1]              -> accurate, spread 0.5, margin 3.5
    rows = [
        ("ref:0", [5.0, 1.0, 2.0], 1),
        ("tied:0", [6.0, 4.0, 3.0], 2),
        ("ref:1", [1.0, 2.0], 1),
        ("tied:1", [5.0, 4.5, 1.0], 2),
    ]
    out = S.rb2_ties(rows)
    assert out["ref_accuracy"] == 0.5
    assert out["tied_accuracy"] == 1.0
    # correctness_preferred: tied margin > spread: p0 1 > 2 no; p1 3.5 > 0.5 yes -> 0.5
    assert out["correctness_preferred"] == 0.5
    # hard: min(ref, tied margin) > spread: p0 min(3,1)=1 > 2 no; p1 min(-1,3.5) = -1 > 0.5 no -> 0
    assert out["correctness_preferred_hard"] == 0.0
    # margin: tanh(1/2 - 1) and tanh(-1/0.5 - 1) = tanh(-0.5), tanh(-3)
    margin = (math.tanh(-0.5) + math.tanh(-3.0)) / 2
    assert out["correctness_margin_score"] == pytest.approx(margin)
    assert out["overall"] == pytest.approx(0.3 * 1.0 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.0 + 0.01 * margin)


def test_rb2_overall_is_mean_of_subsets():
    rows = [
        ("Factuality", "1", [2.0, 1.0, 0.0, 0.0], 1),
        ("Factuality", "2", [0.0, 1.0, 0.0, 0.0], 1),
        ("Math", "3", [1.0, 1.0, 0.0, 0.0], 1),
        ("Ties", "ref:0", [5.0, 1.0], 1),
        ("Ties", "tied:0", [5.0, 4.0, 1.0], 2),
    ]
    out = S.rewardbench_v2(rows)
    assert out["subsets"]["Factuality"] == 0.5
    assert out["subsets"]["Math"] == 0.5
    # Ties: both accurate; preferred (3 > 1) and hard (min(4,3)=3 > 1); margin tanh(3/1 - 1)
    ties = 0.3 + 0.3 + 0.2 + 0.2 + 0.01 * math.tanh(2.0)
    assert out["subsets"]["Ties"] == pytest.approx(ties)
    assert out["overall"] == pytest.approx((0.5 + 0.5 + ties) / 3)
    assert out["complete"] is False


def test_rb2_ties_zero_spread_follows_official_nan_and_inf_handling():
    # spread 0 with a positive margin: x/0 = inf -> tanh(inf) = 1; 0/0 -> nan -> 0
    rows = [("ref:0", [2.0, 1.0], 1), ("tied:0", [3.0, 3.0, 1.0], 2)]
    out = S.rb2_ties(rows)
    assert out["correctness_margin_score"] == 1.0


# ----------------------------------------------------------------------- RM-Bench


def test_rmbench_matrix_and_difficulty_by_hand():
    # one prompt: chosen [3, 2, 1] vs rejected [0, 2.5, 4]
    #   row 0 (3): > 0 yes, > 2.5 yes, > 4 no   -> [1, 1, 0]
    #   row 1 (2): yes, no, no                   -> [1, 0, 0]
    #   row 2 (1): yes, no, no                   -> [1, 0, 0]
    acc = S.rmbench_matrix([([3.0, 2.0, 1.0], [0.0, 2.5, 4.0])])
    assert acc.tolist() == [[1, 1, 0], [1, 0, 0], [1, 0, 0]]
    d = S.rmbench_difficulty(acc)
    assert d["hard"] == pytest.approx((1 + 0 + 0) / 3)  # upper triangle (0,1),(0,2),(1,2)
    assert d["normal"] == pytest.approx((1 + 0 + 0) / 3)  # diagonal
    assert d["easy"] == pytest.approx((1 + 1 + 0) / 3)  # lower triangle (1,0),(2,0),(2,1)


def test_rm_bench_domain_means_and_pooled_safety():
    perfect = ([9.0, 9.0, 9.0], [0.0, 0.0, 0.0])
    wrong = ([0.0, 0.0, 0.0], [9.0, 9.0, 9.0])
    rows = [("chat", *perfect), ("chat", *wrong), ("safety-refuse", *perfect), ("safety-response", *perfect), ("safety-response", *wrong), ("code", *perfect)]
    out = S.rm_bench(rows)
    assert out["domains"]["chat"]["score"] == 0.5
    assert out["domains"]["safety"]["score"] == pytest.approx(2 / 3)  # 3 pooled rows, 2 right
    assert out["domains"]["code"]["score"] == 1.0
    assert out["overall"] == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert out["easy"] == pytest.approx(out["overall"])  # all-or-nothing rows: every level equal
    assert out["safety_files"]["safety-refuse"]["normal"] == 1.0
    assert out["complete"] is False  # no math


# ----------------------------------------------------------------------- JudgeBench


def test_judgebench_both_orders_make_a_tie_wrong_for_either_label():
    assert S.judgebench_pair_correct(2.0, 1.0, "A>B")
    assert not S.judgebench_pair_correct(2.0, 1.0, "B>A")
    assert S.judgebench_pair_correct(1.0, 2.0, "B>A")
    # tie: game 1 says B>A, game 2 (B,A) says B>A in its frame = A>B: net 0 -> not correct
    assert not S.judgebench_pair_correct(1.0, 1.0, "A>B")
    assert not S.judgebench_pair_correct(1.0, 1.0, "B>A")
    # single game (--single_game): 'A>B' if a > b else 'B>A', so a tie counts for B>A
    assert S.judgebench_pair_correct(1.0, 1.0, "B>A", reverse_order=False)


def test_judgebench_official_weighted_and_paper_category_mean():
    rows = [
        ("mmlu-pro-law", 2.0, 1.0, "A>B"), ("mmlu-pro-math", 2.0, 1.0, "B>A"),  # knowledge 1/2
        ("mmlu-pro-biology", 2.0, 1.0, "A>B"), ("mmlu-pro-history", 1.0, 2.0, "B>A"),  # knowledge 3/4
        ("livebench-reasoning", 1.0, 2.0, "A>B"),  # reasoning 0/1
        ("livebench-math", 1.0, 2.0, "B>A"),  # math 1/1
        ("livecodebench", 3.0, 1.0, "A>B"), ("livecodebench", 3.0, 1.0, "B>A"),  # coding 1/2
    ]
    out = S.judgebench(rows)
    assert out["categories"] == {"coding": 0.5, "knowledge": 0.75, "math": 1.0, "reasoning": 0.0}
    assert out["official"] == pytest.approx(5 / 8)
    assert out["overall"] == pytest.approx((0.5 + 0.75 + 1.0 + 0.0) / 4)
    with pytest.raises(ValueError):
        S.judgebench_category("unknown-source")


# ----------------------------------------------------------------------- RMB


def test_rmb_pairwise_and_bon_best_must_beat_every_loser():
    assert S.rmb_bon_correct(3.0, [1.0, 2.0]) == 1
    assert S.rmb_bon_correct(3.0, [1.0, 3.0]) == 0  # a tie with one loser fails
    assert S.rmb_bon_correct(3.0, [4.0, 0.0]) == 0
    rows = [
        S.RmbRow("pairwise", "helpfulness", "Helpfulness/Chat/A", 1),
        S.RmbRow("pairwise", "helpfulness", "Helpfulness/Chat/B", 0),
        S.RmbRow("pairwise", "helpfulness", "Helpfulness/Chat/B", 1),  # micro: 2/3
        S.RmbRow("pairwise", "harmlessness", "Harmlessness/S1", 1),
        S.RmbRow("bon", "helpfulness", "Helpfulness/Chat/A", 0),
        S.RmbRow("bon", "harmlessness", "Harmlessness/S1", 1),
        S.RmbRow("bon", "harmlessness", "Harmlessness/S1", 0),
    ]
    out = S.rmb(rows)
    assert out["subsets"]["pairwise_helpfulness"] == pytest.approx(2 / 3)
    assert out["subsets"]["bon_harmlessness"] == 0.5
    assert out["overall"] == pytest.approx((2 / 3 + 1.0 + 0.0 + 0.5) / 4)
    assert out["scenarios"]["pairwise/Helpfulness/Chat/B"] == 0.5
    assert out["complete"] is True


# ----------------------------------------------------------------------- PPE


def test_ppe_preference_accuracy_counts_ties_apart():
    rows = [(2.0, 1.0, "model_a"), (2.0, 1.0, "model_b"), (1.0, 2.0, "model_b"), (1.0, 1.0, "model_a"), (0.0, 1.0, "tie")]
    out = S.ppe_preference(rows)
    assert out["overall"] == pytest.approx(2 / 4)
    assert out["ties_excluded"] == 1 and out["n"] == 4


def test_best_of_n_exact_expectation_by_hand():
    scores = [4.0, 3.0, 2.0, 1.0]
    correct = [False, True, False, True]
    # N=1: a random response: 2/4 correct
    assert S.best_of_n_expected(scores, correct, 1) == pytest.approx(0.5)
    # N=2: 6 subsets, pick the higher: {4,3}->F {4,2}->F {4,1}->F {3,2}->T {3,1}->T {2,1}->F = 2/6
    assert S.best_of_n_expected(scores, correct, 2) == pytest.approx(2 / 6)
    # N=4: always picks 4.0 (incorrect)
    assert S.best_of_n_expected(scores, correct, 4) == 0.0
    # oracle: P(at least one correct) N=2: 1 - C(2,2)/C(4,2) = 5/6
    assert S.oracle_best_of_n(correct, 2) == pytest.approx(5 / 6)


def test_best_of_n_ties_break_uniformly():
    # two responses tied at the top, one correct: N=3 picks among the tied pair -> 0.5
    assert S.best_of_n_expected([5.0, 5.0, 1.0], [True, False, False], 3) == pytest.approx(0.5)
    # N=2: subsets {a,b}->0.5 {a,c}->1 {b,c}->0  => 1.5/3
    assert S.best_of_n_expected([5.0, 5.0, 1.0], [True, False, False], 2) == pytest.approx(0.5)


def test_best_of_n_matches_brute_force_enumeration():
    import itertools
    import random

    rng = random.Random(3)
    for _ in range(5):
        k = 7
        scores = [float(rng.randint(0, 3)) for _ in range(k)]
        correct = [rng.random() < 0.5 for _ in range(k)]
        for n in range(1, k + 1):
            vals = []
            for subset in itertools.combinations(range(k), n):
                top = max(scores[i] for i in subset)
                tied = [i for i in subset if scores[i] == top]
                vals.append(sum(correct[i] for i in tied) / len(tied))
            assert S.best_of_n_expected(scores, correct, n) == pytest.approx(np.mean(vals))


def test_ppe_correctness_pairwise_prompt_mean_and_task_mean():
    task_a = [
        ([3.0, 2.0, 1.0], [True, False, False]),  # 2/2 pairs right
        ([1.0, 2.0, 3.0], [True, True, False]),  # (1>3 no, 2>3 no) 0/2
        ([1.0, 2.0, 3.0], [True, True, True]),  # no pairs: not scoreable
    ]
    task_b = [([1.0, 0.0], [True, False])]
    out = S.ppe_correctness({"A": task_a, "B": task_b}, max_n=3)
    assert out["tasks"]["A"]["overall"] == 0.5
    assert out["tasks"]["A"]["pairwise_micro"] == 0.5
    assert out["tasks"]["A"]["n_scoreable_prompts"] == 2
    assert out["overall"] == pytest.approx((0.5 + 1.0) / 2)
    curve = out["tasks"]["A"]["best_of_n"]
    assert list(curve) == [1, 2, 3]
    # N=1 is the base rate: mean over prompts of (1/3, 2/3, 1)
    assert curve[1] == pytest.approx((1 / 3 + 2 / 3 + 1) / 3)
    # N=3 picks the top: prompt 1 correct, prompt 2 wrong, prompt 3 correct
    assert curve[3] == pytest.approx(2 / 3)
    assert out["all_pairs_accuracy"] == out["overall"]
    assert math.isnan(out["sampled_conflict_pairs_accuracy"])  # no sampled pairs given


def test_ppe_sampled_conflict_pairs_accuracy_beside_all_pairs():
    # row 1: scores [3, 2, 1], correct [T, F, F]; sampled pairs (0,1) right, (2,0) right (correct 0 > 2)
    # row 2: scores [1, 2, 2], correct [T, F, T]; sampled (0,1): 1 > 2? no -> wrong; (0,2): both
    #        correct -> skipped (not a conflict); (2,1): correct 2 scores 2, incorrect 1 scores 2 -> tie, wrong
    task_a = [
        ([3.0, 2.0, 1.0], [True, False, False], [[0, 1], [2, 0]]),
        ([1.0, 2.0, 2.0], [True, False, True], [[0, 1], [0, 2], [2, 1]]),
    ]
    task_b = [([0.0, 1.0], [False, True], [[0, 1]]), ([0.0, 1.0], [True, False], None)]
    out = S.ppe_correctness({"A": task_a, "B": task_b}, max_n=2)
    a = out["tasks"]["A"]["sampled_conflict_pairs"]
    assert (a["n_pairs"], a["skipped_not_a_conflict"], a["n_rows"]) == (4, 1, 2)
    assert a["accuracy"] == 2 / 4
    assert out["tasks"]["B"]["sampled_conflict_pairs"]["accuracy"] == 1.0
    assert out["sampled_conflict_pairs_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    # all pairs: A row 1 2/2, row 2 (1>2 no; 2>2 no) 0/2 -> 0.5; B: 1/1 and 0/1 -> 0.5
    assert out["tasks"]["A"]["all_pairs_accuracy"] == 0.5 and out["tasks"]["B"]["overall"] == 0.5
    assert out["all_pairs_accuracy"] == out["overall"] == 0.5


def test_ppe_auc_is_roc_auc_pooled_per_task_then_averaged():
    # task A pooled: correct = (3) from row 1, (1, 2) from row 2, (1, 2, 3) from row 3;
    # incorrect = (2, 1) from row 1, (3) from row 2.
    # positives 3,1,2,1,2,3 vs negatives 2,1,3: wins (>) + 0.5 ties:
    #   3: >2 >1, =3 -> 2.5;  1: =1 -> 0.5;  2: =2 >1 -> 1.5;  1 -> 0.5;  2 -> 1.5;  3 -> 2.5  => 9 / 18 = 0.5
    task_a = [
        ([3.0, 2.0, 1.0], [True, False, False]),
        ([1.0, 2.0, 3.0], [True, True, False]),
        ([1.0, 2.0, 3.0], [True, True, True]),
    ]
    task_b = [([1.0, 0.0], [True, False]), ([0.5, 0.7], [True, False])]  # 1>0, 1>0.7, 0.5<0.7, 0.5>0 -> 3/4
    out = S.ppe_correctness({"A": task_a, "B": task_b}, max_n=2)
    assert out["tasks"]["A"]["auc"] == pytest.approx(0.5)
    assert out["tasks"]["B"]["auc"] == pytest.approx(0.75)
    assert out["auc_subsets"] == {"A": pytest.approx(0.5), "B": pytest.approx(0.75)}
    assert out["auc"] == pytest.approx((0.5 + 0.75) / 2)
    # per prompt (beside it): A rows 1 and 2 -> 1.0 and 0.0 (row 3 has no incorrect response); B -> 1.0, 0.0
    assert out["tasks"]["A"]["auc_per_prompt"] == pytest.approx(0.5)
    assert math.isnan(S.roc_auc([1.0, 2.0], [True, True]))  # one class only: undefined, as in sklearn


def test_roc_auc_equals_sklearns_roc_auc_score_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(2, 200))
        scores = rng.integers(0, 6, n).astype(float)  # many ties
        correct = rng.random(n) < 0.4
        if correct.all() or not correct.any():
            continue
        assert S.roc_auc(scores, correct) == pytest.approx(roc_auc_score(correct, scores))


# ----------------------------------------------------------------------- world


def test_world_uses_clean_truth_per_category():
    rows = [
        ("math", 2.0, 1.0, True),
        ("math", 2.0, 1.0, False),  # label flipped in the data: rejected is really better
        ("code", 1.0, 2.0, False),  # right: the truly better (listed rejected) scores higher
        ("code", 1.0, 2.0, None),  # no truth: the label stands
    ]
    out = S.world(rows)
    assert out["subsets"] == {"code": 0.5, "math": 0.5}
    assert out["overall"] == 0.5
