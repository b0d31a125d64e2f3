"""Pair texts are data, not instructions: injected responses must not steer the judges."""

from __future__ import annotations

import pytest

from rewardops.curation.injection import INJECTIONS, inject, measure_injection
from rewardops.curation.judges import ChatJudge, JudgeEnsemble, LikelihoodJudge, judge_messages
from rewardops.curation.llm.openai_client import OpenAIChatClient, OpenAIConfig

from .conftest import toy_pairs
from .injection_server import make_responder
from .openai_stub import OpenAIStub


def _measure(mode: str, escape: bool, pairs):
    with OpenAIStub(make_responder(mode)) as stub:
        backend = OpenAIChatClient(OpenAIConfig(base_url=stub.base_url, model=f"scripted-{mode}", concurrency=4))
        return measure_injection(lambda: JudgeEnsemble([ChatJudge(backend, escape=escape)], n_samples=1, seed=3), pairs)


def test_escaped_tags_cannot_be_broken_out_of():
    pair = inject(toy_pairs(1)[0], INJECTIONS["tag-break-1"], "tag-break-1")
    user = judge_messages(pair, [], chosen_first=True)[1]["content"]
    item = user.split("# Item to judge")[1]
    assert item.count("</candidate_1>") == 1 and item.count("<candidate_2>") == 1
    assert "&lt;/candidate_1&gt;" in item


def test_injection_flip_rates_on_scripted_loopback_judges():
    pairs = toy_pairs(12)
    defended = _measure("structured", escape=True, pairs=pairs)
    undefended = _measure("structured", escape=False, pairs=pairs)
    gullible = _measure("gullible", escape=True, pairs=pairs)
    assert defended.compared == 12 * len(INJECTIONS) and defended.flipped == 0
    # without escaping, a response can close its tag and its instruction becomes prompt text
    assert undefended.per_injection["tag-break-1"]["flipped"] > 0 and undefended.per_injection["plain"]["flipped"] == 0
    # a model that obeys text inside the data is caught by the measurement
    assert gullible.flip_rate > 0.3 and gullible.toward_injection > 0


@pytest.mark.slow
def test_injection_flip_rate_of_the_local_likelihood_judge():
    """SmolLM2-135M judging by verdict likelihood (one pair, one injection: CPU time is scarce;
    bench/injection_flips.py measures more). The flip rate is reported, not required to be 0 (a
    135M model is a weak judge); the measurement must be complete."""
    import torch

    torch.set_num_threads(2)
    from rewardops.curation.judges import JudgeTask
    from rewardops.curation.llm.local_hf import LocalHFChat

    llm = LocalHFChat()
    judge = LikelihoodJudge(llm)
    pair = toy_pairs(1)[0]
    rep = measure_injection(lambda: JudgeEnsemble([judge], n_samples=1, seed=0), [pair], {"plain": INJECTIONS["plain"]})
    assert rep.compared == 1 and rep.flipped in (0, 1) and rep.per_injection["plain"]["compared"] == 1
    p1 = judge.prob_first(JudgeTask(pair, (), True, 0))
    assert 0.0 < p1 < 1.0 and llm.usage.requests == 3
