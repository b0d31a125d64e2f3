"""Preference pairs as token ids: random access over shards, rendering, the over-length policy.

Every sequence is rendered by `rewardops.rendering.render_pair` (the backbone's chat template,
no added system prompt, one BOS), so training reads a pair exactly the way scoring will.
Pairs that cannot be used as they are go through a stated policy and are counted per reason;
the counts are logged with the run's metrics, so nothing is lost silently.

Shared prefix: with `shared_prefix` on, each pair also records how many leading tokens its two
rendered sequences share (`rewardops.attention.common_prefix`: the chat template's prompt and
whatever the responses begin with alike), so packing encodes them once. A pair whose sequences
share no token (e.g. both left-truncated to different starts) keeps the plain layout and is counted
as `shared_prefix_fallback`; the others as `shared_prefix_pairs`, with the tokens not encoded twice
in `shared_prefix_tokens_saved`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rewardops.attention import common_prefix
from rewardops.data.schema import PreferencePair
from rewardops.data.shards import shard_paths
from rewardops.rendering import render_pair


@dataclass(frozen=True)
class EncodedPair:
    index: int  # row in the dataset
    chosen: list[int]
    rejected: list[int]
    margin: float = 0.0
    prefix: int = 0  # leading tokens chosen and rejected share, encoded once (0: the plain layout)

    @property
    def tokens(self) -> int:
        """Tokens the pair takes in a packed row."""
        return len(self.chosen) + len(self.rejected) - self.prefix


class PairSource:
    """Random access to the pairs of a dataset folder (memory-mapped Arrow, no full decode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        tables = []
        for shard in shard_paths(path):
            try:
                tables.append(pq.read_table(shard, memory_map=True))
            except Exception as exc:
                raise ValueError(f"{shard}: unreadable Parquet shard ({exc})") from exc
        if not tables:
            raise ValueError(f"{path}: no part-*.parquet shards")
        self.table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]

    def __len__(self) -> int:
        return self.table.num_rows

    def take(self, indices: list[int] | np.ndarray) -> list[PreferencePair]:
        rows = self.table.take(pa.array(np.asarray(indices, dtype=np.int64))).to_pylist()
        out = []
        for i, row in zip(indices, rows):
            try:
                out.append(PreferencePair.from_row(row))
            except Exception as exc:
                raise ValueError(f"{self.path}: row {int(i)} is not a valid preference pair ({exc})") from exc
        return out


class PairEncoder:
    """Renders pairs to token ids and applies the over-length policy, counting every decision.

    truncate: an over-length sequence keeps its last `max_length` tokens (after a leading BOS),
      because the reward is read at the last token and the response is at the end.
    drop: the pair is skipped.
    Counts (`self.counts`) use the reasons `truncated_chosen`, `truncated_rejected`,
    `dropped_over_length`, `dropped_identical`, `dropped_empty_sequence`.
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int,
        truncation: str = "truncate",
        drop_identical: bool = True,
        margin_key: str | None = None,
        shared_prefix: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.truncation = truncation
        self.drop_identical = drop_identical
        self.margin_key = margin_key
        self.shared_prefix = shared_prefix
        self.counts: Counter[str] = Counter()

    def _cut(self, ids: list[int]) -> list[int]:
        bos = self.tokenizer.bos_token_id
        if bos is not None and ids and ids[0] == bos:
            return [bos, *ids[len(ids) - self.max_length + 1 :]]
        return ids[len(ids) - self.max_length :]

    def encode(self, index: int, pair: PreferencePair) -> EncodedPair | None:
        self.counts["seen"] += 1
        if self.drop_identical and pair.chosen == pair.rejected:
            self.counts["dropped_identical"] += 1
            return None
        chosen, rejected = render_pair(self.tokenizer, pair)
        if not chosen or not rejected:
            self.counts["dropped_empty_sequence"] += 1
            return None
        if len(chosen) > self.max_length or len(rejected) > self.max_length:
            if self.truncation == "drop":
                self.counts["dropped_over_length"] += 1
                return None
            if len(chosen) > self.max_length:
                self.counts["truncated_chosen"] += 1
                chosen = self._cut(chosen)
            if len(rejected) > self.max_length:
                self.counts["truncated_rejected"] += 1
                rejected = self._cut(rejected)
        margin = 0.0
        if self.margin_key:
            if self.margin_key not in pair.scores:
                raise ValueError(f"pair {pair.id!r} (row {index}) has no scores[{self.margin_key!r}] for the margin term")
            margin = float(pair.scores[self.margin_key])
        self.counts["used"] += 1
        prefix = 0
        if self.shared_prefix:
            prefix = common_prefix([chosen, rejected])
            if prefix:
                self.counts["shared_prefix_pairs"] += 1
                self.counts["shared_prefix_tokens_saved"] += prefix
            else:
                self.counts["shared_prefix_fallback"] += 1
        return EncodedPair(index, chosen, rejected, margin, prefix)

    def encode_many(self, indices: list[int], pairs: list[PreferencePair]) -> list[EncodedPair]:
        out = []
        for i, p in zip(indices, pairs):
            enc = self.encode(int(i), p)
            if enc is not None:
                out.append(enc)
        return out


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The pair order of one epoch: a permutation fixed by (seed, epoch), identical on all ranks."""
    return np.random.default_rng([seed, epoch]).permutation(n)
