"""The scoring engine on the real tiny-qwen3 backbone (2 layers, random init, SmolLM2 tokenizer)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from rewardops.evaluation.cache import ScoreCache
from rewardops.evaluation.engine import HFRewardModel, ScoreEngine, plan_batches
from rewardops.evaluation.items import EvalItem
from rewardops.evaluation.modelref import model_fingerprint, resolve_model
from rewardops.rendering import render_messages

WORDS = "the a cat dog runs fast slow model reward good bad answer question math code why because".split()


def make_items(n: int, seed: int = 0) -> list[EvalItem]:
    rng = random.Random(seed)
    items = []
    for k in range(n):
        prompt = ({"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 30)))},)
        responses = tuple(" ".join(rng.choices(WORDS, k=rng.randint(1, 60))) for _ in range(rng.choice([2, 3, 4])))
        items.append(EvalItem(f"item{k}", "s", prompt, responses))
    return items


def engine(model_dir: str, batch_size: int, cache: ScoreCache | None = None, chunk: int = 8192, **kw) -> ScoreEngine:
    return ScoreEngine(HFRewardModel(resolve_model(model_dir), batch_size=batch_size, **kw), cache, show_progress=False, chunk_sequences=chunk)


def test_plan_batches_length_sorted_under_budgets():
    lengths = [5, 50, 7, 49, 100, 6]
    batches = plan_batches(lengths, batch_size=2, max_batch_tokens=1000)
    assert batches == [[4, 1], [3, 2], [5, 0]]
    # the token budget splits earlier: 2 x 100 > 150
    assert plan_batches(lengths, batch_size=8, max_batch_tokens=150)[0] == [4]
    assert sorted(i for b in plan_batches(lengths, 3, 120) for i in b) == list(range(6))


def test_scores_identical_across_batch_sizes_fp32(tiny_model: str):
    items = make_items(30)
    runs = {bs: engine(tiny_model, bs).score_items(items) for bs in (1, 8, 32)}
    runs["8, chunks of 7"] = engine(tiny_model, 8, chunk=7).score_items(items)  # crosses chunk edges
    base = np.concatenate([runs[1][it.id] for it in items])
    assert np.std(base) > 0  # the model does distinguish the inputs
    for bs in (8, 32, "8, chunks of 7"):
        other = np.concatenate([runs[bs][it.id] for it in items])
        assert np.max(np.abs(base - other)) < 1e-5, bs


def test_reward_is_read_at_the_last_token_like_the_hf_head(tiny_model: str):
    """Unpadded, one sequence: our gather must equal the model's own pooled logit."""
    eng = engine(tiny_model, 4)
    item = make_items(1, seed=3)[0]
    ours = eng.score_items([item])[item.id]
    model, tok = eng.scorer.model, eng.scorer.tokenizer
    for i, response_score in enumerate(ours):
        ids = torch.tensor([render_messages(tok, item.messages(i))])
        with torch.inference_mode():
            hf = model(input_ids=ids).logits[0, 0].item()
        assert response_score == pytest.approx(hf, abs=1e-6)


def test_cache_makes_a_rerun_free_and_notices_changed_text(tiny_model: str, tmp_path: Path):
    items = make_items(12)
    cache = ScoreCache(tmp_path / "scores.sqlite")
    first = engine(tiny_model, 8, cache)
    scores1 = first.score_items(items)
    assert first.stats.forward_batches > 0
    n_rows = cache.count(first.fingerprint)
    assert n_rows == sum(len(it.responses) for it in items)

    second = engine(tiny_model, 8, ScoreCache(tmp_path / "scores.sqlite"))
    scores2 = second.score_items(items)
    assert second.stats.forward_batches == 0 and second.stats.forwarded_sequences == 0
    assert second.stats.cached == n_rows
    assert scores2 == scores1

    # same id, new text: scored again, the rest still cached
    changed = EvalItem(items[0].id, "s", items[0].prompt, ("something entirely new", *items[0].responses[1:]))
    third = engine(tiny_model, 8, ScoreCache(tmp_path / "scores.sqlite"))
    third.score_items([changed, *items[1:]])
    assert third.stats.forwarded_sequences == 1

    # another numeric setup is another fingerprint: nothing shared
    ref = resolve_model(tiny_model)
    assert model_fingerprint(ref, dtype="float32", max_length=16384) != model_fingerprint(ref, dtype="bfloat16", max_length=16384)


def test_identical_sequences_are_forwarded_once_and_truncation_is_counted(tiny_model: str):
    a = EvalItem("a", "s", ({"role": "user", "content": "same prompt"},), ("same answer", "other answer"))
    b = EvalItem("b", "s", ({"role": "user", "content": "same prompt"},), ("same answer", "word " * 200))
    eng = engine(tiny_model, 8, max_length=64)
    scores = eng.score_items([a, b])
    assert scores["a"][0] == scores["b"][0]
    assert eng.stats.deduplicated == 1 and eng.stats.forwarded_sequences == 3
    assert eng.stats.truncated == 1


# -- shared prefix: each prompt encoded once for all of its responses ----------------------------

def best_of_n_items(n_items: int, n: int, seed: int = 0) -> list[EvalItem]:
    """PPE-shaped items: one prompt, `n` sampled responses of varied length."""
    rng = random.Random(seed)
    return [EvalItem(f"bon{k}", "s", ({"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(20, 80)))},),
                     tuple(" ".join(rng.choices(WORDS, k=rng.randint(1, 40))) for _ in range(n)))
            for k in range(n_items)]


@pytest.mark.parametrize("shape", ["best-of-32", "rm-bench-6", "rmb-bon"])
def test_shared_prefix_scores_equal_the_padded_path(tiny_model: str, shared_data: Path, shape: str):
    from rewardops.evaluation.benchmarks import get

    if shape == "best-of-32":
        items = best_of_n_items(3, 32)
    elif shape == "rm-bench-6":
        items = get("rm-bench").load(shared_data / "rm-bench" / "chat_filtered.json").items[:4]
    else:  # real RMB best-of-N lists (best + losers) on a multi-turn prompt
        items = [it for it in get("rmb").load(shared_data / "rmb").items if it.meta["kind"] == "bon"][:4]
        assert all(len(it.responses) >= 3 for it in items)
    plain = engine(tiny_model, 32, shared_prefix=False)
    assert not plain.scorer.shared_prefix
    base = plain.score_items(items)
    base_flat = np.concatenate([base[it.id] for it in items])
    assert np.std(base_flat) > 0
    for bs, chunk in ((32, 8192), (5, 8192), (8, 7)):  # rows split items, chunks split the benchmark
        eng = engine(tiny_model, bs, chunk=chunk, shared_prefix=True)
        got = eng.score_items(items)
        assert np.max(np.abs(np.concatenate([got[it.id] for it in items]) - base_flat)) < 1e-5, (bs, chunk)
        assert eng.stats.shared_items >= len(items) and eng.stats.shared_tokens > 0
        assert eng.stats.padded_tokens == eng.stats.real_tokens - eng.stats.shared_tokens  # no padding either
    assert plain.stats.shared_tokens == 0


def test_shared_prefix_is_on_by_default_and_blocks_follow_the_limits(tiny_model: str):
    eng = engine(tiny_model, 4, max_batch_tokens=200)
    assert eng.scorer.shared_prefix and eng.scorer.packed_backend == "segments"
    seqs = [[1, 2, 3, 4, 5, 6, 10 + i] for i in range(9)] + [[7, 8], [9, 8]]
    blocks = eng.scorer.plan_blocks(seqs, [list(range(9)), [9, 10]])
    assert blocks == [(6, [0, 1, 2, 3]), (6, [4, 5, 6, 7]), (6, [8]), (0, [9]), (0, [10])]
    # the token budget splits too: 50 + 3 x 40 fits in 200, a fourth response would not
    assert eng.scorer.plan_blocks([[1] * 50 + [2 + i] * 40 for i in range(4)], [[0, 1, 2, 3]]) == [
        (50, [0, 1, 2]), (50, [3])]
