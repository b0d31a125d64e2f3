"""Rendering, the over-length policy (counted per reason) and the pad token."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from rewardops.backbones import resolve_backbone
from rewardops.data.schema import Message, PreferencePair
from rewardops.rendering import render_messages
from rewardops.training.data import PairEncoder, PairSource, epoch_order


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_backbone("tiny-qwen3"))


def _pair(chosen: str, rejected: str, prompt: str = "Say something.") -> PreferencePair:
    return PreferencePair(id="x", source="t", conversation=[Message("user", prompt)], chosen=chosen, rejected=rejected)


def test_truncate_keeps_the_end_and_counts(tokenizer):
    enc = PairEncoder(tokenizer, max_length=64, truncation="truncate")
    long = "word " * 200
    pair = _pair("short answer", long + " the end")
    full = render_messages(tokenizer, pair.messages(pair.rejected))
    out = enc.encode(0, pair)
    assert out is not None and len(out.rejected) == 64
    assert out.rejected[-10:] == full[-10:]  # the reward is read at the real end
    assert enc.counts["truncated_rejected"] == 1 and enc.counts["truncated_chosen"] == 0


def test_drop_policy_counts(tokenizer):
    enc = PairEncoder(tokenizer, max_length=64, truncation="drop")
    assert enc.encode(0, _pair("a", "word " * 200)) is None
    assert enc.encode(1, _pair("a", "b")) is not None
    assert enc.counts["dropped_over_length"] == 1 and enc.counts["used"] == 1 and enc.counts["seen"] == 2


def test_identical_responses_are_dropped_and_counted(tokenizer):
    enc = PairEncoder(tokenizer, max_length=512)
    assert enc.encode(0, _pair("same", "same")) is None
    assert enc.counts["dropped_identical"] == 1
    assert PairEncoder(tokenizer, 512, drop_identical=False).encode(0, _pair("same", "same")) is not None


def test_margin_key_must_exist(tokenizer):
    enc = PairEncoder(tokenizer, max_length=512, margin_key="gap")
    pair = _pair("a", "b")
    with pytest.raises(ValueError, match=r"\(row 7\) has no scores"):
        enc.encode(7, pair)
    pair.scores["gap"] = 1.5
    assert enc.encode(7, pair).margin == 1.5


def test_no_doubled_bos(tokenizer):
    enc = PairEncoder(tokenizer, max_length=512)
    out = enc.encode(0, _pair("yes", "no"))
    bos = tokenizer.bos_token_id
    assert out.chosen[:2] != [bos, bos]


def test_source_reads_rows_and_order_is_seeded(pairs_dir):
    src = PairSource(pairs_dir)
    assert len(src) == 48  # three shards
    assert [p.id for p in src.take([0, 47])] == ["p1-0", "p1-47"]
    a, b = epoch_order(48, 1, 0), epoch_order(48, 1, 1)
    assert sorted(a.tolist()) == list(range(48)) and a.tolist() != b.tolist()
    assert epoch_order(48, 1, 0).tolist() == a.tolist()
