"""Attention over packed rows: one prompt encoded once for all of its responses.

A packed row is a run of **blocks**. A block is a shared prefix (the prompt, as tokens) followed by
one or more responses: `[prefix | response_0 | response_1 | ...]`. A training pair is a block with
two responses (chosen, rejected); a best-of-N item a block with N; a sequence that shares nothing
is a block with no prefix and one response (the plain layout, what packing did before).

The mask (`RowLayout.allowed`): a token sees, causally, the tokens of its own block's prefix and of
its own part (the prefix or its own response), never another response and never another block.
Positions of every response continue from the prefix's end, so each response is encoded exactly
as if it followed the prompt alone: causal attention makes the prompt's hidden states independent
of what follows, which is why one copy can serve every response (prefix sharing, Wang et al. 2024;
the reward is read at each response's last token, paper §3.2's pointwise BT model).

Kernels, one attention function (`packed_attention`) registered with transformers'
`AttentionInterface`, chosen by `backend`:

- `segments` (CPU; also CUDA without the others): per block, causal sdpa over the prefix, then per
  response one sdpa of its queries over [prefix; response] with a lower-right causal mask. Exact,
  no T x T mask, no wasted response-response work. (A response longer than its prefix runs its
  prefix queries again under a plain causal mask instead: CPU sdpa skips fully masked tiles only for
  `is_causal`, so (prefix + n)^2 / 2 beats the masked n x (prefix + n) there; the extra outputs are
  dropped.)
- `flex` (CUDA): FlexAttention with a block mask built once per forward from the layout (compiled
  on CUDA; on CPU the unfused reference runs, for tests and `--smoke`).
- `varlen` (CUDA, plain layout only): the flash varlen kernel with `cu_seq_lens`.

This module sits below evaluation and training (both score through it); the training side
(`rewardops.training.attention`) adds the reward model wrapper and the backend choice.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

PACKED_ATTENTION = "rewardops_packed"
BACKENDS = ("segments", "flex", "varlen")
# Decoder families whose layers read positions only from `position_ids` (RoPE) and dispatch
# attention through transformers' AttentionInterface over full (not sliding) causal attention:
# the two SRv2 backbone families (paper §4.1: Qwen3 and Llama) and Qwen2.
SHARED_PREFIX_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3"})
_registered = False


@dataclass(frozen=True)
class Block:
    prefix: int  # tokens every response of the block sees (0: none)
    responses: tuple[int, ...]  # lengths of the responses, in row order

    def __post_init__(self) -> None:
        if self.prefix < 0 or not self.responses or any(n < 1 for n in self.responses):
            raise ValueError(f"a block needs a prefix >= 0 and responses of >= 1 token, got {self}")

    @property
    def length(self) -> int:
        return self.prefix + sum(self.responses)


def common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens every sequence starts with, leaving each at least one token of its own (the reward
    is read at a response's last token, so a response cannot be empty)."""
    if len(sequences) < 2:
        return 0
    limit = min(len(s) for s in sequences) - 1
    first = sequences[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences[1:]):
        n += 1
    return max(n, 0)


class RowLayout:
    """The blocks of one packed row, and everything the kernels and the reward read need from it."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        self.blocks = tuple(blocks)
        self.starts: list[int] = []
        pos = 0
        for b in self.blocks:
            self.starts.append(pos)
            pos += b.length
        self.length = pos
        self._cache: dict[Any, Any] = {}

    @classmethod
    def plain(cls, lengths: Sequence[int]) -> "RowLayout":
        return cls([Block(0, (int(n),)) for n in lengths])

    @property
    def shared(self) -> bool:
        """Whether any block has a prefix (otherwise the row is the plain per-sequence layout)."""
        return any(b.prefix for b in self.blocks)

    @property
    def n_responses(self) -> int:
        return sum(len(b.responses) for b in self.blocks)

    @property
    def max_block(self) -> int:
        return max((b.length for b in self.blocks), default=0)

    def positions(self) -> torch.Tensor:
        """Prefix 0..L-1; every response continues at L."""
        parts = []
        for b in self.blocks:
            if b.prefix:
                parts.append(torch.arange(b.prefix))
            parts += [torch.arange(b.prefix, b.prefix + n) for n in b.responses]
        return torch.cat(parts).long() if parts else torch.zeros(0, dtype=torch.long)

    def cu_seq_lens(self) -> torch.Tensor:
        """Block boundaries (int32), as varlen kernels take them."""
        return torch.tensor([*self.starts, self.length], dtype=torch.int32)

    def last_index(self) -> torch.Tensor:
        """Row index of each response's last token, blocks in order, responses in order."""
        out = []
        for start, b in zip(self.starts, self.blocks):
            pos = start + b.prefix
            for n in b.responses:
                pos += n
                out.append(pos - 1)
        return torch.tensor(out, dtype=torch.long)

    def groups(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(block id, part id) of every token; part 0 is the prefix, part r+1 response r."""
        block_ids, part_ids = [], []
        for i, b in enumerate(self.blocks):
            block_ids.append(torch.full((b.length,), i, dtype=torch.int32))
            parts = [torch.zeros(b.prefix, dtype=torch.int32)]
            parts += [torch.full((n,), r + 1, dtype=torch.int32) for r, n in enumerate(b.responses)]
            part_ids.append(torch.cat(parts))
        if not block_ids:
            empty = torch.zeros(0, dtype=torch.int32)
            return empty, empty
        return torch.cat(block_ids), torch.cat(part_ids)

    def allowed(self) -> torch.Tensor:
        """(T, T) bool: which key each query may attend to (the reference the kernels implement)."""
        block, part = self.groups()
        idx = torch.arange(self.length)
        causal = idx[None, :] <= idx[:, None]
        same_block = block[None, :] == block[:, None]
        visible_part = (part[None, :] == 0) | (part[None, :] == part[:, None])
        return causal & same_block & visible_part

    def _device_groups(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = ("groups", str(device))
        if key not in self._cache:
            block, part = self.groups()
            self._cache[key] = (block.to(device), part.to(device))
        return self._cache[key]

    def flex_block_mask(self, device: torch.device) -> Any:
        """FlexAttention's BlockMask of this layout, built once per device (every layer reuses it)."""
        key = ("flex", str(device))
        if key not in self._cache:
            from torch.nn.attention.flex_attention import create_block_mask

            block, part = self._device_groups(device)

            def mask_mod(b, h, q, kv):  # noqa: ANN001 - FlexAttention's signature
                return (kv <= q) & (block[q] == block[kv]) & ((part[kv] == 0) | (part[kv] == part[q]))

            # compiled on CUDA: the uncompiled builder materialises the whole T x T mask
            self._cache[key] = create_block_mask(mask_mod, None, None, self.length, self.length, device=device,
                                                 _compile=device.type == "cuda")
        return self._cache[key]

    def response_mask(self, prefix: int, n: int, device: torch.device) -> torch.Tensor:
        """(n, prefix + n) bool: a response's queries over [prefix; response], lower-right causal."""
        key = ("resp", prefix, n, str(device))
        if key not in self._cache:
            self._cache[key] = torch.ones(n, prefix + n, dtype=torch.bool, device=device).tril(prefix)
        return self._cache[key]


def supports_shared_prefix(config: Any) -> str | None:
    """None if a backbone of this HF config can encode a prefix once; else the reason it cannot."""
    model_type = getattr(config, "model_type", None)
    if model_type not in SHARED_PREFIX_MODEL_TYPES:
        return (f"model type {model_type!r} is not one whose layers were checked for the shared-prefix layout "
                f"({', '.join(sorted(SHARED_PREFIX_MODEL_TYPES))})")
    layer_types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types):
        return f"model type {model_type!r} with sliding-window layers ({sorted(set(layer_types))})"
    return None


# -- kernels --------------------------------------------------------------------------------------

def _varlen_takes_gqa(fn: Any) -> bool:
    """torch 2.11's varlen_attn has no `enable_gqa` (2.13's has): repeat K/V heads ourselves then."""
    import inspect

    try:
        return "enable_gqa" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def varlen_available() -> bool:
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except Exception:
        return False
    return True


_compiled_flex: Any = None


def _flex(device: torch.device) -> Any:
    """FlexAttention, compiled on CUDA (the fused kernel); the unfused reference elsewhere."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda":
        return flex_attention
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=True)
    return _compiled_flex


def _varlen(query, key, value, cu_seq_lens, max_seq_len, scaling, gqa):  # noqa: ANN001
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
    out = varlen_attn(q, k, v, cu, cu, int(max_seq_len), int(max_seq_len), scale=scaling, window_size=(-1, 0), **extra)
    return out.unsqueeze(0).to(query.dtype)


def _segments(query, key, value, layout: RowLayout, scaling, gqa):  # noqa: ANN001
    pieces = []
    for start, b in zip(layout.starts, layout.blocks):
        p_end = start + b.prefix
        if b.prefix:
            pieces.append(F.scaled_dot_product_attention(
                query[:, :, start:p_end], key[:, :, start:p_end], value[:, :, start:p_end],
                is_causal=True, scale=scaling, enable_gqa=gqa))
        pos = p_end
        for r, n in enumerate(b.responses):
            q = query[:, :, pos : pos + n]
            if not b.prefix:
                k, v = key[:, :, pos : pos + n], value[:, :, pos : pos + n]
                pieces.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, enable_gqa=gqa))
            else:
                if r == 0:  # [prefix; response 0] is contiguous
                    k, v = key[:, :, start : pos + n], value[:, :, start : pos + n]
                else:
                    k = torch.cat([key[:, :, start:p_end], key[:, :, pos : pos + n]], dim=2)
                    v = torch.cat([value[:, :, start:p_end], value[:, :, pos : pos + n]], dim=2)
                if n >= b.prefix:  # cheaper as one causal run over [prefix; response] (module docstring)
                    q = query[:, :, start : pos + n] if r == 0 else torch.cat([query[:, :, start:p_end], q], dim=2)
                    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scaling, enable_gqa=gqa)
                    pieces.append(out[:, :, b.prefix :])
                else:
                    mask = layout.response_mask(b.prefix, n, query.device)
                    pieces.append(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scaling, enable_gqa=gqa))
            pos += n
    return torch.cat(pieces, dim=2).transpose(1, 2).contiguous()  # (1, T, Hq, D)


def packed_attention(
    module: torch.nn.Module | None,
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
    row_layout: RowLayout | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The attention function of a packed row (transformers' AttentionInterface signature)."""
    if row_layout is None:
        if cu_seq_lens is None:
            raise RuntimeError(f"attention {PACKED_ATTENTION!r} needs row_layout (or cu_seq_lens); "
                               "call the model through rewardops.attention.packed_hidden")
        bounds = [int(x) for x in cu_seq_lens.tolist()]
        row_layout = RowLayout.plain([e - s for s, e in zip(bounds[:-1], bounds[1:])])
    if query.shape[0] != 1:
        raise RuntimeError("packed attention expects one packed row (batch size 1)")
    gqa = query.shape[1] != key.shape[1]
    if packed_backend == "varlen":
        if row_layout.shared:
            raise RuntimeError("the varlen kernel has no shared-prefix layout: use the flex or segments backend")
        cu = cu_seq_lens if cu_seq_lens is not None else row_layout.cu_seq_lens()
        return _varlen(query, key, value, cu, max_seq_len or row_layout.max_block, scaling, gqa), None
    if packed_backend == "flex":
        flex = _flex(query.device)
        with warnings.catch_warnings():  # off CUDA the unfused reference is what we ask for (tests, --smoke)
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            out = flex(query, key, value, block_mask=row_layout.flex_block_mask(query.device), scale=scaling,
                       enable_gqa=gqa)
        return out.transpose(1, 2).contiguous(), None
    return _segments(query, key, value, row_layout, scaling, gqa), None


def register_packed_attention() -> str:
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(PACKED_ATTENTION, packed_attention)
        _registered = True
    return PACKED_ATTENTION


def packed_hidden(base: torch.nn.Module, input_ids: torch.Tensor, layout: RowLayout, backend: str,
                  position_ids: torch.Tensor | None = None) -> torch.Tensor:
    """Last hidden states (T, hidden) of one packed row through a decoder whose attention
    implementation is `PACKED_ATTENTION` (the caller switches it: `model.set_attn_implementation`)."""
    if position_ids is None:
        position_ids = layout.positions().to(input_ids.device)
    extra: dict[str, Any] = {}
    if backend == "varlen":
        extra = {"cu_seq_lens": layout.cu_seq_lens().to(input_ids.device), "max_seq_len": layout.max_block}
    out = base(input_ids=input_ids.unsqueeze(0), position_ids=position_ids.unsqueeze(0), row_layout=layout,
               packed_backend=backend, use_cache=False, **extra)
    return out.last_hidden_state[0]
