"""The packed reward forward of training, over the kernels of `rewardops.attention`.

transformers' sdpa / eager / flex paths do not keep packed documents apart when given only
per-document position ids (measured in ../shared/perf/NOTES.md), so packing registers its own
attention function with `AttentionInterface` (`rewardops.attention.packed_attention`). A packed
row is a `RowLayout` of blocks: a pair in the shared-prefix layout is one block
`[prompt | chosen | rejected]` in which each response sees the prompt and itself; a pair in the
plain layout is two blocks of one sequence each. Kernels by backend:

- `varlen` (CUDA, plain layout): `torch.nn.attention.varlen.varlen_attn` (flash varlen kernel in
  torch >= 2.10), causal via `window_size=(-1, 0)`, with `cu_seq_lens`.
- `flex` (CUDA, shared-prefix layout): FlexAttention with the layout's block mask, built once per
  forward and reused by every layer.
- `segments` (CPU, or CUDA without the above): causal sdpa per prefix, and per response over
  [prefix; response]; exact, no T x T mask.

A name not known to transformers' mask interface gets no mask built, so the model pays nothing
for a mask it would not use.
"""

from __future__ import annotations

from typing import Any

import torch

from rewardops.attention import (
    PACKED_ATTENTION,
    RowLayout,
    flex_available,
    packed_hidden,
    register_packed_attention,
    supports_shared_prefix,
    varlen_available,
)
from rewardops.training.errors import ConfigError

__all__ = ["PACKED_ATTENTION", "PackedRewardModel", "packed_rewards", "resolve_backend", "resolve_shared_prefix",
           "split_model", "use_packed_attention"]


def resolve_backend(requested: str, device: torch.device, shared_prefix: bool = False) -> str:
    """auto: on CUDA varlen (plain layout) or flex (shared-prefix layout) when this torch has it;
    sdpa segments otherwise."""
    if requested == "varlen":
        if not varlen_available() or device.type != "cuda":
            raise RuntimeError("attention=varlen needs CUDA and torch.nn.attention.varlen (torch >= 2.10)")
        if shared_prefix:
            raise ConfigError("attention=varlen has no shared-prefix layout: set attention=flex (or auto), "
                              "or shared_prefix=false")
        return "varlen"
    if requested == "flex":
        if not flex_available():
            raise RuntimeError("attention=flex needs torch.nn.attention.flex_attention (torch >= 2.5)")
        return "flex"
    if requested == "segments":
        return "segments"
    if device.type == "cuda":
        if shared_prefix and flex_available():
            return "flex"
        if not shared_prefix and varlen_available():
            return "varlen"
    return "segments"


def resolve_shared_prefix(setting: bool | str, model_config: Any, attention: str = "auto") -> bool:
    """The `shared_prefix` setting for this backbone: auto = on where the backbone supports it
    (and the requested kernel can express it); true on a backbone that cannot is a ConfigError."""
    if setting is False:
        return False
    reason = supports_shared_prefix(model_config)
    if setting is True:
        if reason is not None:
            raise ConfigError(f"shared_prefix=true: the backbone cannot encode a prompt once ({reason}); "
                              "set shared_prefix=false (or auto)")
        return True
    return reason is None and attention != "varlen"


def use_packed_attention(model: torch.nn.Module) -> None:
    """Switch a loaded HF model to the packed attention path (training only; export resets it)."""
    model.set_attn_implementation(register_packed_attention())


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
        layout: RowLayout | None = None,
    ) -> torch.Tensor:
        base, head = split_model(self.model)
        if layout is None:  # the plain layout, from the sequence boundaries
            bounds = [int(x) for x in cu_seq_lens.tolist()]
            layout = RowLayout.plain([e - s for s, e in zip(bounds[:-1], bounds[1:])])
        hidden = packed_hidden(base, input_ids, layout, self.backend, position_ids)
        last = layout.last_index().to(hidden.device)
        rewards = head(hidden.index_select(0, last)).squeeze(-1).float()
        return rewards.view(-1, 2)


def packed_rewards(model: torch.nn.Module, batch: Any, backend: str = "segments") -> torch.Tensor:
    """Rewards (n_pairs, 2) [chosen, rejected] of a PackedBatch, read at each response's last token."""
    use_packed_attention(model)
    return PackedRewardModel(model, backend)(batch.input_ids, batch.position_ids, batch.cu_seq_lens,
                                             batch.max_seq_len, batch.layout)
