"""Global exact de-duplication keyed on (conversation, chosen, rejected), in bounded memory.

The key is a 64-bit hash of the normalised texts (Unicode NFKC, whitespace runs collapsed to one
space, ends stripped) and the roles, so equal pairs that differ only in Unicode form or spacing
collide on purpose. Keys are computed a batch at a time from Arrow buffers
(`rewardops.data.texthash`) and live in `DigestSet`, an open-addressing table of uint64 in one
numpy array kept at most half full: memory is 16 to 32 bytes per *distinct* pair (1M pairs:
16-32 MB; 40M pairs: 0.64-1.3 GB), independent of row sizes and of how many shards are read, plus
one batch. Two different pairs share a key with probability about n^2 / 2^65 (4e-5 at 40M).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rewardops.data.schema import MESSAGE_TYPE, ROLES
from rewardops.data.texthash import KERNELS, TextBatch, mix64, normalize_text, segment_hash

__all__ = ["DigestSet", "normalize_text", "pair_digest", "pair_keys"]

EMPTY = np.uint64(0)  # marks a free slot; a real key of 0 is stored as 1
_ROLE_CODES = pa.array(list(ROLES))
_TAG_CHOSEN, _TAG_REJECTED = np.uint64(0xA24BAED4963EE407), np.uint64(0x9FB21C651E98DF25)
_TAG_ROLE = np.uint64(0xC13FA9A902A6328F)


def role_codes(roles: pa.Array) -> np.ndarray:
    """system/user/assistant as 1/2/3, anything else as 4."""
    codes = pc.fill_null(pc.index_in(roles, value_set=_ROLE_CODES), len(ROLES))
    return codes.to_numpy(zero_copy_only=False).astype(np.uint64) + np.uint64(1)


def combine_keys(conv_offsets: np.ndarray, roles: np.ndarray, content_hash: np.ndarray,
                 chosen_hash: np.ndarray, rejected_hash: np.ndarray) -> np.ndarray:
    """Pair keys from per-text normalised hashes (`TextBatch.normalized_hashes`)."""
    turn_hash = mix64(content_hash ^ (roles * _TAG_ROLE))
    base = conv_offsets - conv_offsets[0]
    conv_hash = segment_hash(turn_hash, base[:-1], base[1:])
    return mix64(conv_hash + mix64(chosen_hash ^ _TAG_CHOSEN) * np.uint64(3) + mix64(rejected_hash ^ _TAG_REJECTED))


def pair_keys(conversation: pa.Array, chosen: pa.Array, rejected: pa.Array) -> np.ndarray:
    """The dedup key (uint64) of every pair of a batch (columns of PAIR_SCHEMA)."""
    if isinstance(conversation, pa.ChunkedArray):
        conversation = conversation.combine_chunks()
    turns = conversation.flatten()
    contents = turns.field("content").cast(pa.string())
    t = len(contents)
    hashes, _ = TextBatch(pa.concat_arrays([contents, _plain(chosen), _plain(rejected)])).normalized_hashes()
    n = len(conversation)
    return combine_keys(conversation.offsets.to_numpy().astype(np.int64), role_codes(turns.field("role")),
                        hashes[:t], hashes[t : t + n], hashes[t + n :])


def _plain(arr: pa.Array) -> pa.Array:
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return arr.cast(pa.string())


def pair_digest(conversation: Sequence[tuple[str, str]], chosen: str, rejected: str) -> int:
    """The dedup key of one pair (the same value `pair_keys` gives it in a batch)."""
    conv = pa.array([[{"role": r, "content": c} for r, c in conversation]], pa.list_(MESSAGE_TYPE))
    return int(pair_keys(conv, pa.array([chosen], pa.string()), pa.array([rejected], pa.string()))[0])


class DigestSet:
    """A set of uint64 digests with a batched, vectorised insert-and-test."""

    def __init__(self, capacity: int = 1 << 16) -> None:
        size = 1 << max(4, (capacity - 1).bit_length())
        self.table = np.zeros(size, dtype=np.uint64)
        self.count = 0

    @property
    def nbytes(self) -> int:
        return self.table.nbytes

    def __len__(self) -> int:
        return self.count

    def add_batch(self, digests: Iterable[int] | np.ndarray) -> np.ndarray:
        """Insert every digest; True where it was not seen before (its first occurrence)."""
        keys = np.asarray(digests if isinstance(digests, np.ndarray) else np.fromiter(digests, dtype=np.uint64), dtype=np.uint64)
        out = np.zeros(len(keys), dtype=bool)
        if not len(keys):
            return out
        while 2 * (self.count + len(keys)) > len(self.table):
            self._grow()
        if KERNELS is not None:
            self.count += KERNELS.insert_digests(self.table, keys, out)
            return out
        keys = np.where(keys == EMPTY, np.uint64(1), keys)
        uniq, first = np.unique(keys, return_index=True)
        new = self._insert(self.table, uniq)
        self.count += int(new.sum())
        out[first[new]] = True
        return out

    def __contains__(self, digest: int) -> bool:
        key = np.uint64(digest) if digest else np.uint64(1)
        mask = len(self.table) - 1
        pos = int(key) & mask
        while True:
            slot = self.table[pos]
            if slot == key:
                return True
            if slot == EMPTY:
                return False
            pos = (pos + 1) & mask

    @staticmethod
    def _insert(table: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Linear probing for distinct `keys`; returns which were newly inserted."""
        mask = np.uint64(len(table) - 1)
        pos = (keys & mask).astype(np.int64)
        new = np.zeros(len(keys), dtype=bool)
        pending = np.arange(len(keys))
        while pending.size:
            p, k = pos[pending], keys[pending]
            slot = table[p]
            found = slot == k
            empty = slot == EMPTY
            claim = pending[empty]
            table[pos[claim]] = keys[claim]  # keys racing for one slot: the last write wins
            won = table[pos[claim]] == keys[claim]
            new[claim[won]] = True
            done = found
            done[np.flatnonzero(empty)[won]] = True
            pending = pending[~done]
            pos[pending] = (pos[pending] + 1) & int(mask)
        return new

    def _grow(self) -> None:
        old = self.table[self.table != EMPTY]
        self.table = np.zeros(2 * len(self.table), dtype=np.uint64)
        self._insert(self.table, old)
