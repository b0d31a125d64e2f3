"""Shared-prefix training rows are exact: [prompt | chosen | rejected] gives the plain path's
per-pair losses, rewards and gradients (fp32, CPU) on real multi-turn hh-rlhf harmless pairs, for a
Qwen3 and a Llama backbone (tiny random-init configs, SmolLM2's tokenizer and chat template); and no
token sees the other response or another pair."""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardops.attention import Block, RowLayout, common_prefix, packed_attention, supports_shared_prefix
from rewardops.backbones import resolve_backbone
from rewardops.data.readers import map_hh_rlhf
from rewardops.data.schema import Message, PreferencePair
from rewardops.rendering import ensure_distinct_pad
from rewardops.training.attention import packed_rewards, resolve_backend, resolve_shared_prefix
from rewardops.training.config import ConfigError, parse_overrides, load_config, validate
from rewardops.training.data import EncodedPair, PairEncoder
from rewardops.training.packing import pack, plan_micro_batches

TOL = 1e-5


def hh_multi_turn(shared_data: Path, n: int) -> list[PreferencePair]:
    """The first `n` hh-rlhf harmless-base test pairs with at least two human turns."""
    out = []
    with gzip.open(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", "rt") as fh:
        for row, line in enumerate(fh):
            try:
                cand = map_hh_rlhf(json.loads(line))
            except Exception:  # noqa: BLE001 - the 4 rows with an empty chosen transcript
                continue
            if sum(1 for role, _ in cand.conversation if role == "user") < 2:
                continue
            out.append(PreferencePair(id=f"hh-{row}", source="hh-rlhf/harmless-base-test",
                                      conversation=[Message(r, c) for r, c in cand.conversation],
                                      chosen=cand.chosen, rejected=cand.rejected))
            if len(out) == n:
                break
    return out


def backbone(name: str):
    path = resolve_backbone(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    ensure_distinct_pad(tokenizer, model)
    return tokenizer, model


def rewards_losses_grads(model, pairs: list[EncodedPair], backend: str = "segments"):
    model.zero_grad(set_to_none=True)
    rewards = packed_rewards(model, pack(pairs), backend)
    per_pair = -F.logsigmoid(rewards[:, 0] - rewards[:, 1])
    per_pair.sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return rewards.detach(), per_pair.detach(), grads


@pytest.fixture(scope="module")
def hh_pairs(shared_data: Path) -> list[PreferencePair]:
    pairs = hh_multi_turn(shared_data, 8)
    assert len(pairs) == 8
    return pairs


@pytest.mark.parametrize("name", ["tiny-qwen3", "tiny-llama"])
def test_shared_prefix_equals_plain_on_hh_rlhf(name, hh_pairs):
    tokenizer, model = backbone(name)
    assert supports_shared_prefix(model.config) is None
    encoder = PairEncoder(tokenizer, max_length=1024, shared_prefix=True)
    shared = encoder.encode_many(list(range(len(hh_pairs))), hh_pairs)
    assert encoder.counts["shared_prefix_pairs"] == len(shared) == len(hh_pairs)
    for p, raw in zip(shared, hh_pairs):  # the whole rendered prompt (at least) is encoded once
        prompt_ids = tokenizer.apply_chat_template([m.__dict__ for m in raw.conversation], tokenize=False)
        assert p.prefix >= len(tokenizer(prompt_ids, add_special_tokens=False)["input_ids"]) - 1
    plain = [dataclasses.replace(p, prefix=0) for p in shared]
    saved = sum(p.prefix for p in shared) / sum(p.tokens for p in plain)
    assert saved > 0.25  # multi-turn: the prompt is most of a pair

    r_plain, l_plain, g_plain = rewards_losses_grads(model, plain)
    r_shared, l_shared, g_shared = rewards_losses_grads(model, shared)
    assert float(r_plain.std()) > 1e-3  # the model tells the responses apart
    assert float((r_shared - r_plain).abs().max()) < TOL
    assert float((l_shared - l_plain).abs().max()) < TOL
    assert g_plain.keys() == g_shared.keys() and len(g_plain) > 10
    for pname in g_plain:
        assert float((g_shared[pname] - g_plain[pname]).abs().max()) < TOL, pname


@pytest.mark.parametrize("name", ["tiny-qwen3", "tiny-llama"])
def test_flex_block_mask_kernel_equals_plain(name, hh_pairs):
    """The GPU kernel's mask (FlexAttention's unfused reference on CPU: forward only, CPU flex has
    no backward; bench/gpu/correctness.py checks its gradients on CUDA)."""
    tokenizer, model = backbone(name)
    shared = PairEncoder(tokenizer, max_length=1024, shared_prefix=True).encode_many(list(range(4)), hh_pairs[:4])
    plain = [dataclasses.replace(p, prefix=0) for p in shared]
    with torch.no_grad():
        ref = packed_rewards(model, pack(plain), "segments")
        flex = packed_rewards(model, pack(shared), "flex")
    assert float((flex - ref).abs().max()) < TOL


def test_a_cross_response_mask_would_change_rewards(hh_pairs):
    """The equality above can fail: letting the rejected response see the chosen one (one causal
    run over [prompt | chosen | rejected]) changes the rejected reward."""
    tokenizer, model = backbone("tiny-qwen3")
    p = PairEncoder(tokenizer, max_length=1024, shared_prefix=True).encode(0, hh_pairs[0])
    with torch.no_grad():
        good = packed_rewards(model, pack([p]))
        leaky = RowLayout([Block(0, (p.tokens,))])  # one sequence: the rejected part sees the chosen part
        ids = torch.tensor(p.chosen + p.rejected[p.prefix:])
        model.set_attn_implementation("sdpa")
        hidden = model.model(input_ids=ids[None]).last_hidden_state[0]
        wrong = model.score(hidden[leaky.length - 1])
    assert abs(float(wrong) - float(good[0, 1])) > 1e-4


def _random_layout(rng: random.Random) -> RowLayout:
    blocks = []
    for _ in range(rng.randint(2, 4)):
        blocks.append(Block(rng.choice([0, rng.randint(1, 9)]), tuple(rng.randint(1, 7) for _ in range(rng.randint(1, 4)))))
    if not any(b.prefix for b in blocks):
        blocks.append(Block(3, (2, 4)))
    return RowLayout(blocks)


def test_mask_no_token_sees_another_response_or_block():
    rng = random.Random(0)
    for _ in range(20):
        layout = _random_layout(rng)
        allowed = layout.allowed()
        block, part = layout.groups()
        T = layout.length
        for q in range(T):
            seen = set(torch.nonzero(allowed[q]).flatten().tolist())
            expect = {k for k in range(q + 1) if block[k] == block[q] and (part[k] == 0 or part[k] == part[q])}
            assert seen == expect
            assert all(part[k] in (0, part[q]) for k in seen)  # never the other response
            assert all(block[k] == block[q] for k in seen)  # never another pair
        pos = layout.positions()
        for start, b in zip(layout.starts, layout.blocks):  # responses continue from the prefix's end
            at = start + b.prefix
            for n in b.responses:
                assert pos[at : at + n].tolist() == list(range(b.prefix, b.prefix + n))
                at += n


@pytest.mark.parametrize("backend", ["segments", "flex"])
def test_kernels_equal_attention_under_the_layout_mask(backend):
    """Each kernel computes exactly softmax attention restricted to `RowLayout.allowed` (GQA too)."""
    torch.manual_seed(1)
    layout = _random_layout(random.Random(3))
    T, Hq, Hkv, D = layout.length, 4, 2, 8
    q, k, v = (torch.randn(1, h, T, D) for h in (Hq, Hkv, Hkv))
    out, _ = packed_attention(None, q, k, v, None, row_layout=layout, packed_backend=backend)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=layout.allowed(), enable_gqa=True).transpose(1, 2)
    assert out.shape == (1, T, Hq, D)
    assert float((out - ref).abs().max()) < 1e-5


def test_changing_one_response_or_pair_changes_nothing_else(hh_pairs):
    """Behaviourally: editing the rejected response of pair 0 leaves every hidden state of pair 0's
    prompt and chosen response, and of pair 1, as they were."""
    from rewardops.attention import packed_hidden

    tokenizer, model = backbone("tiny-llama")
    pairs = PairEncoder(tokenizer, max_length=1024, shared_prefix=True).encode_many([0, 1], hh_pairs[:2])
    edited_rejected = list(pairs[0].rejected)
    for i in range(pairs[0].prefix, len(edited_rejected)):
        edited_rejected[i] = (edited_rejected[i] * 7 + 13) % 40000
    edited = [dataclasses.replace(pairs[0], rejected=edited_rejected), pairs[1]]
    hidden = []
    with torch.no_grad():
        for ps in (pairs, edited):
            batch = pack(ps)
            packed_rewards(model, batch)  # switches the attention implementation
            hidden.append(packed_hidden(model.model, batch.input_ids, batch.layout, "segments"))
    p0 = pairs[0]
    rejected_rows = slice(len(p0.chosen), len(p0.chosen) + len(p0.rejected) - p0.prefix)
    unchanged = torch.ones(hidden[0].shape[0], dtype=torch.bool)
    unchanged[rejected_rows] = False
    assert float((hidden[0][unchanged] - hidden[1][unchanged]).abs().max()) < 1e-6
    assert float((hidden[0][rejected_rows] - hidden[1][rejected_rows]).abs().max()) > 1e-3


def test_pairs_without_a_shared_prefix_fall_back_and_are_counted():
    class CharTokenizer:  # no chat template, no BOS: one id per character
        chat_template = None
        bos_token_id = None

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(c) for c in text]}

    raw = PreferencePair(id="x", source="t", conversation=[Message("user", "hi " * 50)], chosen="abc" * 40,
                         rejected="def" * 40)
    # left-truncation to 20 tokens keeps different ends of the two sequences: nothing shared
    enc = PairEncoder(CharTokenizer(), max_length=20, shared_prefix=True)
    p = enc.encode(0, raw)
    assert p is not None and p.chosen[0] != p.rejected[0]
    assert p.prefix == 0 and enc.counts["shared_prefix_fallback"] == 1 and enc.counts["shared_prefix_pairs"] == 0
    # with a BOS the truncated sequences still share it (one token, exact all the same)
    tokenizer, _ = backbone("tiny-qwen3")
    kept_bos = PairEncoder(tokenizer, max_length=20, shared_prefix=True).encode(0, raw)
    assert kept_bos.prefix == 1 and kept_bos.chosen[0] == tokenizer.bos_token_id
    fallback = EncodedPair(1, [5, 6, 7], [8, 9])
    batch = pack([fallback, EncodedPair(2, [1, 2, 3, 4], [1, 2, 5], prefix=2)])
    assert [(b.prefix, b.responses) for b in batch.layout.blocks] == [(0, (3,)), (0, (2,)), (2, (2, 1))]
    assert batch.input_ids.tolist() == [5, 6, 7, 8, 9, 1, 2, 3, 4, 5]
    assert batch.position_ids.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3, 2]
    assert batch.layout.last_index().tolist() == [2, 4, 8, 9]
    assert batch.tokens == fallback.tokens + 5


def test_common_prefix_leaves_each_response_a_token():
    assert common_prefix([[1, 2, 3], [1, 2, 3]]) == 2  # identical: the last token stays each one's own
    assert common_prefix([[1, 2], [1, 2, 3, 4]]) == 1
    assert common_prefix([[4, 2], [1, 2]]) == 0
    assert common_prefix([[1, 2, 3, 9], [1, 2, 3, 8], [1, 2, 7]]) == 2
    with pytest.raises(ValueError, match="shared prefix"):
        pack([EncodedPair(0, [1, 2, 3], [1, 4, 3], prefix=2)])


def test_budget_planning_counts_the_shared_tokens_once():
    pairs = [EncodedPair(i, [1] * 60 + [2] * 10, [1] * 60 + [3] * 10, prefix=60) for i in range(10)]
    assert pairs[0].tokens == 80
    plan = plan_micro_batches(pairs, token_budget=160, world_size=1)[0]
    assert [len(m) for m in plan] == [2] * 5  # plain pairs of 140 tokens would need 10 micro-batches


def test_setting_parses_resolves_and_refuses():
    assert parse_overrides(["shared_prefix=true"]) == {"shared_prefix": True}
    assert parse_overrides(["shared_prefix=false"]) == {"shared_prefix": False}
    assert parse_overrides(["shared_prefix=auto"]) == {"shared_prefix": "auto"}
    with pytest.raises(ConfigError, match="shared_prefix='maybe': use auto, true or false"):
        parse_overrides(["shared_prefix=maybe"])
    assert load_config("qwen3-0.6b").shared_prefix == "auto"  # the catalog's default
    bad = dataclasses.replace(load_config("demo-tiny-qwen3", {"out": "/tmp/x"}), shared_prefix="sometimes")
    with pytest.raises(ConfigError, match="shared_prefix='sometimes'"):
        validate(bad, world_size=1, check_paths=False)

    from transformers import GPT2Config, LlamaConfig, Qwen3Config

    assert resolve_shared_prefix("auto", Qwen3Config()) is True
    assert resolve_shared_prefix("auto", LlamaConfig()) is True
    assert resolve_shared_prefix(False, LlamaConfig()) is False
    assert resolve_shared_prefix("auto", GPT2Config()) is False
    assert resolve_shared_prefix("auto", LlamaConfig(), attention="varlen") is False
    with pytest.raises(ConfigError, match="gpt2"):
        resolve_shared_prefix(True, GPT2Config())
    assert resolve_backend("auto", torch.device("cpu"), shared_prefix=True) == "segments"
    assert resolve_backend("flex", torch.device("cpu"), shared_prefix=True) == "flex"


def test_trainer_step_is_the_same_with_and_without_shared_prefix(pairs_dir, tmp_path):
    """The whole training step: loss, accuracy and gradient norm equal; the layout is counted."""
    from rewardops.training.trainer import Trainer

    metrics = {}
    for setting in (False, True):
        cfg = load_config("demo-tiny-llama", {
            "data": str(pairs_dir), "out": str(tmp_path / str(setting)), "mlflow": False, "export": False,
            "max_steps": 1, "global_batch": 16, "resume": False, "shared_prefix": setting,
        })
        trainer = Trainer(cfg, progress=False)
        assert trainer.shared_prefix is setting
        metrics[setting] = trainer.train_step()
    off, on = metrics[False], metrics[True]
    for key in ("train/loss", "train/accuracy", "train/grad_norm", "train/margin"):
        assert on[key] == pytest.approx(off[key], abs=TOL), key
    assert on["data/shared_prefix_pairs"] == 16 and "data/shared_prefix_pairs" not in off
    assert on["data/shared_prefix_tokens_saved"] > 0
    assert on["train/pairs"] == off["train/pairs"] == 16 and on["perf/pairs_per_s"] > 0
