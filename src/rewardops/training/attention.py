"""Attention over packed rows that never crosses a sequence boundary, and the packed reward forward.

transformers' sdpa / eager / flex paths do not keep packed documents apart when given only
per-document position ids (measured in ../shared/perf/NOTES.md), so packing registers its own
attention function with `AttentionInterface`:

- CUDA: `torch.nn.attention.varlen.varlen_attn` (flash varlen kernel in torch >= 2.10), causal via
  `window_size=(-1, 0)`, q/k/v as (total_tokens, heads, head_dim) with `cu_seq_lens`.
- CPU (or CUDA without varlen): causal sdpa per sequence segment; exact, no T x T mask.

A name not known to transformers' mask interface gets no mask built, so the model pays nothing
for a mask it would not use.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

PACKED_ATTENTION = "rewardops_packed"
_registered = False


def _varlen_takes_gqa(fn: Any) -> bool:
    """torch 2.11's varlen_attn has no `enable_gqa` (2.13's has): repeat K/V heads ourselves then."""
    import inspect

    try:
        return "enable_gqa" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _varlen_available() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


def packed_attention(
    module: torch.nn.Module,
    query: torch.Tensor,  # (1, Hq, T, D)
    key: torch.Tensor,  # (1, Hkv, T, D)
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    cu_seq_lens: torch.Tensor | None = None,
    max_seq_len: int | None = None,
    packed_backend: str = "segments",
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    if cu_seq_lens is None:
        raise RuntimeError(
            f"attention {PACKED_ATTENTION!r} needs cu_seq_lens; call it through rewardops.training.attention.packed_rewards"
        )
    if query.shape[0] != 1:
        raise RuntimeError("packed attention expects one packed row (batch size 1)")
    gqa = query.shape[1] != key.shape[1]
    if packed_backend == "varlen":
        from torch.nn.attention.varlen import varlen_attn

        # The flash kernel takes bf16/fp16 only; under autocast RoPE can hand back fp32.
        dtype = query.dtype if query.dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
        q, k, v = (t[0].transpose(0, 1).to(dtype) for t in (query, key, value))  # (T, H, D)
        cu = cu_seq_lens.to(device=q.device, dtype=torch.int32)
        extra: dict[str, Any] = {}
        if gqa and _varlen_takes_gqa(varlen_attn):
            extra["enable_gqa"] = True
        elif gqa:  # query head i reads K/V head i // group, as transformers' repeat_kv does
            group = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        out = varlen_attn(
            q, k, v, cu, cu, int(max_seq_len), int(max_seq_len),
            scale=scaling, window_size=(-1, 0), **extra,
        )
        return out.unsqueeze(0).to(query.dtype), None
    bounds = cu_seq_lens.tolist()
    pieces = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        pieces.append(
            F.scaled_dot_product_attention(
                query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
                is_causal=True, scale=scaling, enable_gqa=gqa,
            )
        )
    out = torch.cat(pieces, dim=2)  # (1, Hq, T, D)
    return out.transpose(1, 2).contiguous(), None


def register_packed_attention() -> str:
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(PACKED_ATTENTION, packed_attention)
        _registered = True
    return PACKED_ATTENTION


def resolve_backend(requested: str, device: torch.device) -> str:
    """auto: varlen on CUDA when this torch has it, per-sequence segments otherwise."""
    if requested == "varlen":
        if not _varlen_available() or device.type != "cuda":
            raise RuntimeError("attention=varlen needs CUDA and torch.nn.attention.varlen (torch >= 2.10)")
        return "varlen"
    if requested == "segments":
        return "segments"
    return "varlen" if device.type == "cuda" and _varlen_available() else "segments"


def use_packed_attention(model: torch.nn.Module) -> None:
    """Switch a loaded HF model to the packed attention path (training only; export resets it)."""
    name = register_packed_attention()
    model.set_attn_implementation(name)


def split_model(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(decoder, score head) of an HF *ForSequenceClassification model."""
    base = getattr(model, getattr(model, "base_model_prefix", "model"), None)
    head = getattr(model, "score", None)
    if base is None or head is None:
        raise TypeError(
            f"{type(model).__name__} is not a decoder *ForSequenceClassification model with a `score` head"
        )
    return base, head


class PackedRewardModel(torch.nn.Module):
    """An HF *ForSequenceClassification model read over packed rows: forward -> rewards (n_pairs, 2).

    DDP and DeepSpeed wrap this module, so gradient sync sees the whole packed forward.
    """

    def __init__(self, model: torch.nn.Module, backend: str = "segments") -> None:
        super().__init__()
        self.model = model
        self.backend = backend

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        cu_seq_lens: torch.Tensor,
        max_seq_len: int,
    ) -> torch.Tensor:
        base, head = split_model(self.model)
        out = base(
            input_ids=input_ids.unsqueeze(0),
            position_ids=position_ids.unsqueeze(0),
            cu_seq_lens=cu_seq_lens,
            max_seq_len=max_seq_len,
            packed_backend=self.backend,
            use_cache=False,
        )
        hidden = out.last_hidden_state[0]
        last = cu_seq_lens[1:].to(device=hidden.device, dtype=torch.long) - 1
        rewards = head(hidden.index_select(0, last)).squeeze(-1).float()
        return rewards.view(-1, 2)


def packed_rewards(model: torch.nn.Module, batch: Any, backend: str = "segments") -> torch.Tensor:
    """Rewards (n_pairs, 2) [chosen, rejected] of a PackedBatch, read at each sequence's last token."""
    use_packed_attention(model)
    return PackedRewardModel(model, backend)(batch.input_ids, batch.position_ids, batch.cu_seq_lens, batch.max_seq_len)
