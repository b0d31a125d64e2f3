from __future__ import annotations

import threading
from collections import defaultdict

import pytest

from rewardops.curation.judges import ChatJudge, JudgeEnsemble, SimulatedJudge, judge_messages, parse_verdict
from rewardops.curation.llm.openai_client import OpenAIChatClient, OpenAIConfig

from .conftest import toy_pairs
from .openai_stub import OpenAIStub, Reply, user_text


@pytest.mark.parametrize(
    "text,expected",
    [('{"verdict": 1}', 1), ('{"verdict": "2"}', 2), ('{"verdict": "Candidate 2"}', 2), ("2", 2),
     ("Candidate 1 is better.", 1), ("Candidate 1 or Candidate 2, hard to say", None), ('{"verdict": 3}', None),
     ("I cannot help with that.", None), ("", None), (None, None)],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


def test_prompt_has_guideline_examples_and_candidates_in_the_requested_order():
    pair, *examples = toy_pairs(4)
    msgs = judge_messages(pair, examples, chosen_first=False, guideline="GUIDE-LINE")
    user = msgs[1]["content"]
    assert "GUIDE-LINE" in user and user.count("<example index=") == 3 and "Human label: Candidate" in user
    item = user.split("# Item to judge")[1]
    assert item.index(pair.rejected) < item.index(pair.chosen)  # rejected shown as Candidate 1
    assert "DATA" in msgs[0]["content"]


def test_self_consistency_merge_rules_and_stats():
    pairs = toy_pairs(200, noise=0.0)
    perfect = SimulatedJudge(error_rate=0.0, name="perfect")
    wrong = SimulatedJudge(error_rate=1.0, name="always-wrong")
    biased = SimulatedJudge(error_rate=0.0, position_bias=1.0, name="first-always")

    ens = JudgeEnsemble([perfect], n_samples=3, seed=1)
    assert all(v.agrees for v in ens.judge([(p, []) for p in pairs]))
    s = ens.stats.as_dict()
    assert s["label_agreement"] == 1.0 and s["per_model"]["perfect"]["self_consistency"] == 1.0
    assert 0.4 < s["per_model"]["perfect"]["first_position_rate"] < 0.6  # orders are randomised

    ens = JudgeEnsemble([perfect, wrong], n_samples=3, merge="majority")
    verdicts = ens.judge([(p, []) for p in pairs[:20]])
    assert all(v.agrees is None for v in verdicts)  # 1 vs 1: no verdict, never a guess
    assert ens.stats.as_dict()["inter_model_agreement"] == 0.0 and ens.stats.no_verdict == 20

    perfect2 = SimulatedJudge(error_rate=0.0, name="perfect-2")
    ens = JudgeEnsemble([perfect, perfect2, wrong], n_samples=1, merge="majority")
    assert all(v.agrees for v in ens.judge([(p, []) for p in pairs[:20]]))
    ens = JudgeEnsemble([perfect, perfect2, wrong], n_samples=1, merge="unanimous")
    assert all(v.agrees is None for v in ens.judge([(p, []) for p in pairs[:20]]))

    ens = JudgeEnsemble([biased], n_samples=5)
    ens.judge([(p, []) for p in pairs])
    st = ens.stats.as_dict()["per_model"]["first-always"]
    assert st["first_position_rate"] == 1.0 and st["self_consistency"] < 1.0
    with pytest.raises(ValueError, match="distinct names"):
        JudgeEnsemble([perfect, perfect])
    with pytest.raises(ValueError, match="merge rule"):
        JudgeEnsemble([perfect], merge="vibes")


def test_chat_judge_retries_garbage_timeouts_and_refusals_then_records_no_verdict():
    calls = defaultdict(int)
    lock = threading.Lock()

    def responder(body):
        text = user_text(body).split("# Item to judge")[1]
        qid = text.split("(q")[1].split(")")[0]
        with lock:
            calls[qid] += 1
            n = calls[qid]
        c1 = text.split("<candidate_1>")[1].split("</candidate_1>")[0]
        good = 1 if ("clear" in c1 or "precise" in c1 or "Sure" in c1) else 2
        if qid == "0":
            return Reply(content=f'{{"verdict": {good}}}')
        if qid == "1":  # garbage once, then fine
            return Reply(content="banana" if n == 1 else f"Candidate {good}")
        if qid == "2":
            return Reply(content="x", delay_s=1.0)  # always times out
        if qid == "3":
            return Reply(refusal="I won't judge this.")
        return Reply(content="I like both.")  # always unparseable

    pairs = toy_pairs(5)
    with OpenAIStub(responder) as stub:
        backend = OpenAIChatClient(OpenAIConfig(base_url=stub.base_url, model="judge-a", timeout_s=0.2,
                                                max_retries=1, backoff_s=0.01))
        ens = JudgeEnsemble([ChatJudge(backend, max_attempts=2)], n_samples=1)
        verdicts = ens.judge([(p, []) for p in pairs])
    assert [v.agrees for v in verdicts] == [True, True, None, None, None]
    assert calls["1"] == 2 and calls["4"] == 2 and calls["3"] == 2
    assert ens.stats.no_verdict == 3 and ens.stats.verdicts == 2
    assert ens.models[0].failures["error"] == 2 and ens.models[0].failures["unparseable"] == 1
