"""Numba kernels for `texthash`: one pass over a batch's code points instead of ~20 numpy passes.

They compute exactly the values of the numpy implementation in `texthash` (same polynomials,
same finaliser), so results never depend on which one ran; tests check that. Imported only when
numba is installed; compiled on first use and cached on disk (`cache=True`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

B = np.uint64(0x100000001B3 * 2 + 1)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
GOLD = np.uint64(0x9E3779B97F4A7C15)
S30, S27, S31 = np.uint64(30), np.uint64(27), np.uint64(31)
ONE, ZERO = np.uint64(1), np.uint64(0)


@nb.njit(inline="always")
def _mix(x):  # noqa: ANN001, ANN202 - numba-typed
    x ^= x >> S30
    x *= M1
    x ^= x >> S27
    x *= M2
    x ^= x >> S31
    return x


@nb.njit(cache=True, nogil=True)
def normalized_hashes(cps, offsets, space):  # noqa: ANN001, ANN201
    """Per text: hash of its non-space runs (see `TextBatch.normalized_hashes`) and their count."""
    n_texts = len(offsets) - 1
    out = np.empty(n_texts, np.uint64)
    counts = np.zeros(n_texts, np.int64)
    for t in range(n_texts):
        h = ZERO
        hp = ONE
        n = 0
        rh = ZERO
        rp = ONE
        rl = 0
        for j in range(offsets[t], offsets[t + 1]):
            c = cps[j]
            if space[c]:
                if rl:
                    h += _mix(rh + np.uint64(rl) * GOLD) * hp
                    hp *= B
                    n += 1
                    rh, rp, rl = ZERO, ONE, 0
            else:
                rh += np.uint64(c) * rp
                rp *= B
                rl += 1
        if rl:
            h += _mix(rh + np.uint64(rl) * GOLD) * hp
            n += 1
        out[t] = _mix(h + np.uint64(n) * GOLD)
        counts[t] = n
    return out, counts


@nb.njit(cache=True, nogil=True)
def token_hashes(cps, offsets, word, lower):  # noqa: ANN001, ANN201
    """Every `word` run of 2+ code points, lowercased through `lower`: (token hash, text index)."""
    n_texts = len(offsets) - 1
    cap = len(cps) // 2 + n_texts + 1
    toks = np.empty(cap, np.uint64)
    owner = np.empty(cap, np.int64)
    k = 0
    for t in range(n_texts):
        th = ZERO
        tp = ONE
        tl = 0
        for j in range(offsets[t], offsets[t + 1]):
            c = lower[cps[j]]
            if word[c]:
                th += np.uint64(c) * tp
                tp *= B
                tl += 1
            else:
                if tl >= 2:
                    toks[k] = _mix(th + np.uint64(tl) * GOLD)
                    owner[k] = t
                    k += 1
                th, tp, tl = ZERO, ONE, 0
        if tl >= 2:
            toks[k] = _mix(th + np.uint64(tl) * GOLD)
            owner[k] = t
            k += 1
    return toks[:k], owner[:k]


@nb.njit(cache=True, nogil=True)
def ngram_hashes(tok, owner, n):  # noqa: ANN001, ANN201
    """Rolling hashes of every n consecutive tokens of one text, and that text."""
    m = len(tok)
    size = m - n + 1 if m >= n else 0
    out = np.empty(size, np.uint64)
    out_owner = np.empty(size, np.int64)
    gn = ONE
    for _ in range(n):
        gn *= GOLD
    k = 0
    h = ZERO
    start = 0
    for i in range(m):
        if i > 0 and owner[i] != owner[i - 1]:
            h = ZERO
            start = i
        h = h * GOLD + tok[i]
        if i - start >= n:
            h -= tok[i - n] * gn
        if i - start + 1 >= n:
            out[k] = _mix(h)
            out_owner[k] = owner[i]
            k += 1
    return out[:k], out_owner[:k]


@nb.njit(cache=True, nogil=True)
def build_table(keys, values):  # noqa: ANN001, ANN201
    """An open-addressing table (at most half full) from distinct nonzero uint64 keys."""
    size = 16
    while size < 2 * len(keys):
        size *= 2
    table_keys = np.zeros(size, np.uint64)
    table_values = np.full(size, -1, np.int64)
    mask = np.uint64(size - 1)
    for i in range(len(keys)):
        pos = keys[i] & mask
        while table_keys[pos] != ZERO and table_keys[pos] != keys[i]:
            pos = (pos + ONE) & mask
        table_keys[pos] = keys[i]
        table_values[pos] = values[i]
    return table_keys, table_values


@nb.njit(cache=True, nogil=True)
def build_bits(keys, bits):  # noqa: ANN001, ANN201
    """A one-hash Bloom filter of 2^bits bits (top bits of each key), packed in uint64 words."""
    words = np.zeros((1 << bits) // 64, np.uint64)
    shift = np.uint64(64 - bits)
    for i in range(len(keys)):
        b = keys[i] >> shift
        words[b >> np.uint64(6)] |= ONE << (b & np.uint64(63))
    return words


@nb.njit(cache=True, nogil=True)
def match_ngrams(tok, owner, n, n_texts, table_keys, table_values, words, bits):  # noqa: ANN001, ANN201
    """For each text, the value stored for one of its n-gram hashes found in the table, or -1.
    The n-gram hashes are those of `ngram_hashes` (keys of 0 are looked up as 1); `words` is
    `build_bits(keys, bits)`, checked first because it fits in cache and the table does not."""
    out = np.full(n_texts, -1, np.int64)
    shift = np.uint64(64 - bits)
    mask = np.uint64(len(table_keys) - 1)
    gn = ONE
    for _ in range(n):
        gn *= GOLD
    h = ZERO
    start = 0
    for i in range(len(tok)):
        if i > 0 and owner[i] != owner[i - 1]:
            h = ZERO
            start = i
        h = h * GOLD + tok[i]
        if i - start >= n:
            h -= tok[i - n] * gn
        if i - start + 1 >= n and out[owner[i]] < 0:
            key = _mix(h)
            if key == ZERO:
                key = ONE
            b = key >> shift
            if not (words[b >> np.uint64(6)] >> (b & np.uint64(63))) & ONE:
                continue
            pos = key & mask
            while table_keys[pos] != ZERO:
                if table_keys[pos] == key:
                    out[owner[i]] = table_values[pos]
                    break
                pos = (pos + ONE) & mask
    return out


@nb.njit(cache=True, nogil=True)
def insert_digests(table, keys, new):  # noqa: ANN001, ANN201
    """Insert keys (0 stored as 1) into an open-addressing table; `new[i]` = not seen before
    (within the batch too: a repeat's first occurrence is the new one). Returns how many."""
    mask = np.uint64(len(table) - 1)
    added = 0
    for i in range(len(keys)):
        key = keys[i]
        if key == ZERO:
            key = ONE
        pos = key & mask
        while table[pos] != ZERO and table[pos] != key:
            pos = (pos + ONE) & mask
        if table[pos] == ZERO:
            table[pos] = key
            new[i] = True
            added += 1
        else:
            new[i] = False
    return added


@nb.njit(cache=True, nogil=True)
def scan(cps, offsets, word, space, lower):  # noqa: ANN001, ANN201
    """`normalized_hashes` and `token_hashes` in one pass over the code points (same values)."""
    n_texts = len(offsets) - 1
    out = np.empty(n_texts, np.uint64)
    counts = np.zeros(n_texts, np.int64)
    cap = len(cps) // 2 + n_texts + 1
    toks = np.empty(cap, np.uint64)
    owner = np.empty(cap, np.int64)
    k = 0
    for t in range(n_texts):
        h, hp, n = ZERO, ONE, 0
        rh, rp, rl = ZERO, ONE, 0
        th, tp, tl = ZERO, ONE, 0
        for j in range(offsets[t], offsets[t + 1]):
            c = cps[j]
            if space[c]:
                if rl:
                    h += _mix(rh + np.uint64(rl) * GOLD) * hp
                    hp *= B
                    n += 1
                    rh, rp, rl = ZERO, ONE, 0
            else:
                rh += np.uint64(c) * rp
                rp *= B
                rl += 1
            lc = lower[c]
            if word[lc]:
                th += np.uint64(lc) * tp
                tp *= B
                tl += 1
            else:
                if tl >= 2:
                    toks[k] = _mix(th + np.uint64(tl) * GOLD)
                    owner[k] = t
                    k += 1
                th, tp, tl = ZERO, ONE, 0
        if rl:
            h += _mix(rh + np.uint64(rl) * GOLD) * hp
            n += 1
        if tl >= 2:
            toks[k] = _mix(th + np.uint64(tl) * GOLD)
            owner[k] = t
            k += 1
        out[t] = _mix(h + np.uint64(n) * GOLD)
        counts[t] = n
    return out, counts, toks[:k], owner[:k]
