"""Padding-free packing: rewards and gradients equal the unpacked ones; micro-batch planning."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rewardops.backbones import resolve_backbone
from rewardops.training.attention import packed_rewards
from rewardops.training.data import EncodedPair
from rewardops.training.loss import bradley_terry_loss
from rewardops.training.packing import pack, plan_micro_batches


def _pairs(n: int, seed: int = 0) -> list[EncodedPair]:
    rng = random.Random(seed)
    return [
        EncodedPair(i, [rng.randrange(3, 4000) for _ in range(rng.randint(1, 40))],
                    [rng.randrange(3, 4000) for _ in range(rng.randint(1, 40))])
        for i in range(n)
    ]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.parametrize("name", ["tiny-qwen3", "tiny-llama"])
def test_packed_rewards_and_gradients_equal_unpacked(name):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(resolve_backbone(name), dtype=torch.float32)
    model.config.pad_token_id = None  # single unpadded sequences: HF pools the last token
    model.eval()
    pairs = _pairs(6)

    ref = torch.stack([
        torch.stack([model(input_ids=torch.tensor([p.chosen])).logits[0, 0],
                     model(input_ids=torch.tensor([p.rejected])).logits[0, 0]])
        for p in pairs
    ])
    ref_loss, _ = bradley_terry_loss(ref)
    ref_grads = torch.autograd.grad(ref_loss, [p for p in model.parameters()], allow_unused=True)

    got = packed_rewards(model, pack(pairs))
    loss, _ = bradley_terry_loss(got)
    grads = torch.autograd.grad(loss, [p for p in model.parameters()], allow_unused=True)

    assert got.shape == (6, 2)
    assert _rel(got.detach(), ref.detach()) < 1e-4
    for (pname, _), g, r in zip(model.named_parameters(), grads, ref_grads):
        if r is None:
            assert g is None or float(g.abs().max()) == 0.0, pname
            continue
        assert _rel(g, r) < 1e-4, pname


def test_cross_sequence_attention_would_change_rewards():
    """The check above can fail: one causal attention over the whole row gives other rewards."""
    model = AutoModelForSequenceClassification.from_pretrained(resolve_backbone("tiny-qwen3"), dtype=torch.float32)
    model.config.pad_token_id = None
    pairs = _pairs(3, seed=1)
    batch = pack(pairs)
    with torch.no_grad():
        separate = packed_rewards(model, batch)
        model.set_attn_implementation("sdpa")  # no document boundaries, only position ids
        logits = model.model(input_ids=batch.input_ids[None], position_ids=batch.position_ids[None]).last_hidden_state
        mixed = model.score(logits[0, batch.cu_seq_lens[1:].long() - 1]).view(-1, 2)
    assert _rel(mixed, separate) > 1e-3


def test_pack_layout_has_no_pad_and_restarting_positions():
    pairs = _pairs(3, seed=2)
    b = pack(pairs)
    lengths = [len(s) for p in pairs for s in (p.chosen, p.rejected)]
    assert b.tokens == sum(lengths)
    assert b.cu_seq_lens.tolist()[-1] == sum(lengths)
    starts = b.cu_seq_lens[:-1].long()
    assert (b.position_ids[starts] == 0).all()
    assert b.max_seq_len == max(lengths)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_plan_balances_budget_and_keeps_every_pair_once(world):
    pairs = _pairs(37, seed=world)
    plan = plan_micro_batches(pairs, token_budget=200, world_size=world)
    assert len(plan) == world
    assert len({len(r) for r in plan}) == 1  # same number of micro-steps on every rank
    seen = [p.index for rank in plan for micro in rank for p in micro]
    assert sorted(seen) == list(range(37))
    assert all(sum(p.tokens for p in micro) <= 200 for rank in plan for micro in rank)


def test_plan_rejects_pair_over_budget_and_fixed_micro_batches():
    pairs = _pairs(8)
    with pytest.raises(ValueError, match="token budget"):
        plan_micro_batches(pairs, token_budget=10)
    fixed = plan_micro_batches(pairs, token_budget=10_000, world_size=2, micro_batch_size=2)
    assert [len(m) for r in fixed for m in r] == [2, 2, 2, 2]


def test_trainable_layers_freezes_the_lower_stack():
    from rewardops.training.trainer import freeze_lower_layers

    model = AutoModelForSequenceClassification.from_pretrained(resolve_backbone("tiny-qwen3"), dtype=torch.float32)
    freeze_lower_layers(model, 1)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "score.weight" in trainable and "model.norm.weight" in trainable
    assert any(n.startswith("model.layers.1.") for n in trainable)
    assert not any(n.startswith(("model.layers.0.", "model.embed_tokens")) for n in trainable)
    rewards = packed_rewards(model, pack(_pairs(2)))
    bradley_terry_loss(rewards)[0].backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is None
    assert model.score.weight.grad is not None and float(model.score.weight.grad.abs().sum()) > 0


def test_gradient_checkpointing_gives_the_same_gradients():
    def grads(checkpointing: bool):
        model = AutoModelForSequenceClassification.from_pretrained(resolve_backbone("tiny-llama"), dtype=torch.float32)
        if checkpointing:
            from rewardops.training.trainer import enable_checkpointing

            enable_checkpointing(model)
        model.train()
        loss, _ = bradley_terry_loss(packed_rewards(model, pack(_pairs(3, seed=5))))
        loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    assert _rel(grads(True), grads(False)) < 1e-5


def test_lr_schedules():
    from rewardops.training.config import load_config
    from rewardops.training.trainer import lr_lambda

    const = lr_lambda(load_config("qwen3-0.6b"), 100)
    assert [const(s) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]
    dev = load_config("qwen3-0.6b", {"warmup_ratio": 0.1}, profile="dev")
    f = lr_lambda(dev, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == 0.0


def test_bt_loss_margin_and_centering():
    r = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    plain, stats = bradley_terry_loss(r)
    expected = -torch.nn.functional.logsigmoid(torch.tensor([1.0, -1.0])).sum()
    assert float(plain) == pytest.approx(float(expected))
    assert stats.summary()["accuracy"] == 0.5 and stats.summary()["margin"] == 0.0
    with_margin, _ = bradley_terry_loss(r, margins=torch.tensor([1.0, 0.0]))
    assert float(with_margin) == pytest.approx(float(-torch.nn.functional.logsigmoid(torch.tensor([0.0, -1.0])).sum()))
    centered, _ = bradley_terry_loss(r, center_rewards_coef=0.01)
    assert float(centered) == pytest.approx(float(expected) + 0.01 * (9.0 + 1.0))


def test_gqa_without_native_support_repeats_kv_heads_like_transformers():
    """torch 2.11's varlen_attn lacks `enable_gqa`: the fallback repeats each K/V head for its query
    group. Checked on CPU against sdpa's own GQA with a stand-in of the kernel's signature (no CUDA
    kernel runs here; the GPU bench runs the real one)."""
    import torch.nn.functional as F

    from rewardops import attention

    torch.manual_seed(0)
    T, Hq, Hkv, D = 7, 4, 2, 8
    q, k, v = (torch.randn(1, h, T, D, dtype=torch.bfloat16) for h in (Hq, Hkv, Hkv))

    def old_varlen(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None, window_size=(-1, -1)):
        assert q.shape[1] == k.shape[1] == v.shape[1], "the old kernel needs as many K/V heads as query heads"
        out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                             v.transpose(0, 1)[None], is_causal=True, scale=scale)
        return out[0].transpose(0, 1)

    assert not attention._varlen_takes_gqa(old_varlen)
    import torch.nn.attention.varlen as varlen_module

    original = varlen_module.varlen_attn
    varlen_module.varlen_attn = old_varlen
    try:
        out, _ = attention.packed_attention(None, q, k, v, None, cu_seq_lens=torch.tensor([0, T]), max_seq_len=T,
                                            packed_backend="varlen")
    finally:
        varlen_module.varlen_attn = original
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).transpose(1, 2)
    assert torch.allclose(out.float(), expected.float(), atol=1e-2)
