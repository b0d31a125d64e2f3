"""Padding-free packing: pairs into token-budget micro-batches, one row each, no pad tokens.

A micro-batch is one row of blocks (`rewardops.attention.RowLayout`). A pair with a shared
tokenised prefix (`EncodedPair.prefix`, set by the encoder when `shared_prefix` is on) is one block
`[prompt | chosen | rejected]`: the prompt is encoded once, each response sees the prompt and
itself, and its positions continue from the prompt's end, so its reward (read at its last token)
is exactly the one of `[prompt | response]` alone. Any other pair is the plain layout, two blocks
[chosen], [rejected] with positions restarting at 0. `cu_seq_lens` holds the block boundaries;
the attention path in `rewardops.training.attention` keeps every block apart.

Planning a global batch: every rank sees the same global batch (the same pair order), splits it
into balanced bins under the token budget (longest pair first into the lightest bin), makes the
bin count a multiple of the world size, and takes bins rank, rank + world, ... So all ranks run
the same number of micro-steps (which ZeRO-2/3 collectives need) and no pair is lost.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import torch

from rewardops.attention import Block, RowLayout
from rewardops.training.data import EncodedPair


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # (T,) int64
    position_ids: torch.Tensor  # (T,) int64: 0 at every block start; responses continue after the prefix
    cu_seq_lens: torch.Tensor  # (n_blocks + 1,) int32
    max_seq_len: int  # longest block
    margins: torch.Tensor  # (n_pairs,) float32
    n_pairs: int
    layout: RowLayout | None = None  # None: the plain layout of `cu_seq_lens`

    @property
    def tokens(self) -> int:
        return int(self.input_ids.numel())

    def to(self, device: torch.device | str) -> "PackedBatch":
        return PackedBatch(
            self.input_ids.to(device, non_blocking=True),
            self.position_ids.to(device, non_blocking=True),
            self.cu_seq_lens.to(device, non_blocking=True),
            self.max_seq_len,
            self.margins.to(device, non_blocking=True),
            self.n_pairs,
            self.layout,  # plain Python layout; the kernels move what they need
        )


def pack(pairs: list[EncodedPair]) -> PackedBatch:
    """One padding-free row holding every pair of `pairs`: `[prompt | chosen | rejected]` where the
    pair has a shared prefix, `[chosen] [rejected]` otherwise."""
    if any(not p.chosen or not p.rejected for p in pairs):
        raise ValueError("cannot pack an empty sequence")
    blocks: list[Block] = []
    ids: list[int] = []
    for p in pairs:
        n = p.prefix
        if n and (p.chosen[:n] != p.rejected[:n] or n >= min(len(p.chosen), len(p.rejected))):
            raise ValueError(f"pair {p.index}: prefix {n} is not a shared prefix leaving both responses a token")
        if n:
            blocks.append(Block(n, (len(p.chosen) - n, len(p.rejected) - n)))
            ids += p.chosen
            ids += p.rejected[n:]
        else:
            blocks += [Block(0, (len(p.chosen),)), Block(0, (len(p.rejected),))]
            ids += p.chosen
            ids += p.rejected
    layout = RowLayout(blocks)
    margins = torch.tensor([p.margin for p in pairs], dtype=torch.float32)
    return PackedBatch(torch.tensor(ids, dtype=torch.long), layout.positions(), layout.cu_seq_lens(),
                       layout.max_block, margins, len(pairs), layout)


def _balanced_bins(pairs: list[EncodedPair], n_bins: int) -> list[list[EncodedPair]]:
    heap = [(0, b) for b in range(n_bins)]
    bins: list[list[EncodedPair]] = [[] for _ in range(n_bins)]
    for p in sorted(pairs, key=lambda p: (-p.tokens, p.index)):
        load, b = heapq.heappop(heap)
        bins[b].append(p)
        heapq.heappush(heap, (load + p.tokens, b))
    for b in bins:  # a stable order inside a bin, independent of the packing heuristic
        b.sort(key=lambda p: p.index)
    return bins


def plan_micro_batches(
    pairs: list[EncodedPair],
    token_budget: int,
    world_size: int = 1,
    micro_batch_size: int | None = None,
) -> list[list[list[EncodedPair]]]:
    """Per rank, the micro-batches of one global batch. Every rank gets the same count."""
    if not pairs:
        return [[] for _ in range(world_size)]
    if micro_batch_size:
        ordered = sorted(pairs, key=lambda p: p.index)
        per_rank = math.ceil(len(ordered) / world_size)
        out = []
        for r in range(world_size):
            mine = ordered[r * per_rank : (r + 1) * per_rank]
            out.append([mine[i : i + micro_batch_size] for i in range(0, len(mine), micro_batch_size)])
        steps = max(len(m) for m in out)
        return [m + [[] for _ in range(steps - len(m))] for m in out]
    biggest = max(p.tokens for p in pairs)
    if biggest > token_budget:
        raise ValueError(f"a pair of {biggest} tokens exceeds the micro-batch token budget {token_budget}")
    total = sum(p.tokens for p in pairs)
    n_bins = max(1, math.ceil(total / token_budget))
    while True:
        n_bins = math.ceil(n_bins / world_size) * world_size
        bins = _balanced_bins(pairs, n_bins)
        if max(sum(p.tokens for p in b) for b in bins) <= token_budget:
            break
        n_bins += world_size
    return [bins[r::world_size] for r in range(world_size)]
