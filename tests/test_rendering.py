"""Input rendering shared by training, evaluation and curation (the model card's usage)."""

from __future__ import annotations

from transformers import AutoTokenizer

from rewardops.backbones import resolve_backbone
from rewardops.rendering import ensure_distinct_pad, render_messages

CONV = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_backbone("tiny-llama"))


def test_render_ends_with_the_assistant_turn():
    tok = tokenizer()
    ids = render_messages(tok, CONV)
    text = tok.decode(ids)
    assert text.rstrip().endswith("4<|im_end|>")
    assert text.count("<|im_start|>assistant") == 1


def test_bos_is_never_doubled_when_template_and_tokenizer_both_add_it():
    tok = tokenizer()
    # A Llama-3 style template that writes BOS itself, with a tokenizer that also adds BOS.
    tok.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    tok.add_bos_token = True
    ids = render_messages(tok, CONV)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    # And a template without BOS gets exactly one from the tokenizer.
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    ids = render_messages(tok, CONV)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


def test_pad_is_made_distinct_from_eos():
    tok = tokenizer()
    tok.pad_token = tok.eos_token
    fix = ensure_distinct_pad(tok)
    assert fix.added and tok.pad_token_id != tok.eos_token_id
