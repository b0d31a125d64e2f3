"""Turning a (conversation, response) into the token ids a reward model reads.

Training, evaluation and curation all score through this one function, so a model is always
read the way it was trained (the model card's usage): the backbone's chat template, no system prompt added by
us, exactly one BOS, and the reward read at the last real token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewardops.data.schema import PreferencePair

PAD_TOKEN = "<|rewardops_pad|>"


def render_messages(tokenizer: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of a whole conversation (ending with the assistant turn being scored)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(list(messages), tokenize=False)
    else:  # a tokenizer without a template: plain role-prefixed turns
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    # The template already carries BOS where the model expects one; add it only if the
    # tokenizer would and the template did not (never twice: the Llama-3 doubled-BOS bug).
    if bos is not None and getattr(tokenizer, "add_bos_token", False) and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def render_pair(tokenizer: Any, pair: PreferencePair) -> tuple[list[int], list[int]]:
    return (
        render_messages(tokenizer, pair.messages(pair.chosen)),
        render_messages(tokenizer, pair.messages(pair.rejected)),
    )


@dataclass
class PadFix:
    added: bool
    pad_token_id: int


def ensure_distinct_pad(tokenizer: Any, model: Any | None = None) -> PadFix:
    """Give the tokenizer a pad token that is not EOS (nor any token a sequence ends with).

    HF `*ForSequenceClassification` pools at the last token that is not `pad_token_id`; when
    pad == EOS a sequence ending in EOS is read one token early (transformers#35352).
    """
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad is not None and pad != eos:
        if model is not None:
            model.config.pad_token_id = pad
        return PadFix(False, pad)
    tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    pad = tokenizer.pad_token_id
    if model is not None:
        if pad >= model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
        model.config.pad_token_id = pad
    return PadFix(True, pad)
