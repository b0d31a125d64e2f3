"""Vectorised text hashing over Arrow string buffers, for dedup and decontamination.

Per-row Python work is what makes pre-processing slow, so both filters hash straight from the
bytes of an Arrow string array:

- a *run* is a maximal stretch of code points of one class inside one text (non-whitespace for
  dedup; `\\w` characters for tokens); runs never cross text boundaries;
- a run's hash is the polynomial sum(c_j * B^(j-s)) mod 2^64 over its code points, mixed with
  its length through the splitmix64 finaliser;
- runs combine into text hashes, texts into pair keys, tokens into n-gram hashes the same way.

Two backends compute identical values: numba kernels (`_kernels.py`, one pass over the bytes;
used unless REWARDOPS_NO_NUMBA is set) and numpy (prefix sums with B's
inverse mod 2^64, `segment_poly`). ASCII texts, the bulk, are read from Arrow's buffer as bytes;
the others are NFKC-normalised once in Python (and lowercased for tokens) and passed as UTF-32
code points, with `\\w`/whitespace tables built from Python's own `re`/`str.isspace`, so Unicode
text gets exactly Python's semantics.
"""

from __future__ import annotations

import os
import re
import unicodedata
from types import ModuleType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_B = np.uint64(0x100000001B3 * 2 + 1)  # odd, so invertible mod 2^64
_B_INV = np.uint64(pow(int(_B), -1, 1 << 64))
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)

TOKEN_RE = re.compile(r"(?u)\b\w\w+\b")  # CountVectorizer's default token_pattern

_SPACE = np.zeros(256, dtype=bool)
_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True  # what str.split() splits ASCII on
_WORD = np.zeros(256, dtype=bool)
for _lo, _hi in ((48, 57), (65, 90), (97, 122)):
    _WORD[_lo : _hi + 1] = True
_WORD[95] = True  # "_"


def _load_kernels() -> ModuleType | None:
    """The numba kernels (numba is a declared dependency), unless REWARDOPS_NO_NUMBA is set."""
    if os.environ.get("REWARDOPS_NO_NUMBA"):
        return None
    from rewardops.data import _kernels

    return _kernels


KERNELS = _load_kernels()
BACKEND = "numba" if KERNELS is not None else "numpy"

_pow_cache: dict[str, np.ndarray] = {"pow": np.ones(1, np.uint64), "inv": np.ones(1, np.uint64)}


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """B^j and B^-j mod 2^64 for j < n (cached, grown by doubling)."""
    if len(_pow_cache["pow"]) < n:
        size = max(n, 2 * len(_pow_cache["pow"]))
        with np.errstate(over="ignore"):
            _pow_cache["pow"] = np.concatenate(([np.uint64(1)], np.cumprod(np.full(size - 1, _B, np.uint64))))
            _pow_cache["inv"] = np.concatenate(([np.uint64(1)], np.cumprod(np.full(size - 1, _B_INV, np.uint64))))
    return _pow_cache["pow"], _pow_cache["inv"]


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection that spreads every input bit over the output."""
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def segment_poly(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """sum(values[j] * B^(j - s) for j in [s, e)) mod 2^64 for every segment [s, e)."""
    n = len(values)
    if not len(starts):
        return np.empty(0, np.uint64)
    pw, inv = _powers(n + 1)
    prefix = np.empty(n + 1, np.uint64)
    prefix[0] = 0
    np.multiply(values, pw[:n], out=prefix[1:])
    np.cumsum(prefix, out=prefix)
    return (prefix[ends] - prefix[starts]) * inv[starts]


def segment_hash(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A well-mixed hash of each segment's sequence of values (length included)."""
    return mix64(segment_poly(values, starts, ends) + (ends - starts).astype(np.uint64) * _GOLD)


def string_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The UTF-8 bytes of a string array and its offsets (rebased to 0); nulls read as empty."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.string())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    bufs = arr.buffers()
    off_type = np.int64 if arr.type == pa.large_string() else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_type)[arr.offset : arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    return data, offsets - offsets[0]


def runs(member: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximal runs of `member` bytes that stay inside one text: (starts, ends, text index)."""
    n = len(member)
    if n == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    cuts = offsets[1:-1]
    cuts = cuts[(cuts > 0) & (cuts < n)]
    before = np.empty(n, dtype=bool)  # is the previous byte, in the same text, a member?
    before[0] = False
    before[1:] = member[:-1]
    before[cuts] = False
    after = np.empty(n, dtype=bool)  # is the next byte, in the same text, a member?
    after[-1] = False
    after[:-1] = member[1:]
    after[cuts - 1] = False
    starts = np.flatnonzero(member & ~before)
    ends = np.flatnonzero(member & ~after) + 1
    per_text = np.diff(np.searchsorted(starts, offsets))
    text_of = np.repeat(np.arange(len(offsets) - 1), per_text)
    return starts, ends, text_of


def _ascii_mask(arr: pa.Array) -> np.ndarray:
    return pc.fill_null(pc.string_is_ascii(arr), True).to_numpy(zero_copy_only=False)


def normalize_text(text: str) -> str:
    """NFKC, whitespace runs to one space, ends stripped (what dedup compares)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.split())


def tokenize(text: str) -> list[str]:
    """Lowercase words of two or more characters, as CountVectorizer's defaults (after NFKC)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return TOKEN_RE.findall(text.lower())


_WORD_RE = re.compile(r"\w")
_LUTS: dict[str, np.ndarray] = {}


_ASCII_LOWER = np.arange(256, dtype=np.uint32)
_ASCII_LOWER[65:91] += 32
_MULTI_LOWER = "\u0130"  # the one code point whose str.lower() is two code points


def _unicode_luts(cps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per code point: is it `\\w`, is it whitespace (as Python's `re` and `str.split()` see
    it) and its lowercase (`str.lower()`). Filled lazily for the code points met so far (one
    table of each kind per process, 1.1M entries)."""
    if not _LUTS:
        _LUTS["word"] = np.zeros(0x110000, dtype=bool)
        _LUTS["word"][:256] = _WORD
        _LUTS["space"] = np.zeros(0x110000, dtype=bool)
        _LUTS["space"][:256] = _SPACE
        _LUTS["lower"] = np.arange(0x110000, dtype=np.uint32)
        _LUTS["lower"][:256] = _ASCII_LOWER
        _LUTS["known"] = np.zeros(0x110000, dtype=bool)
        _LUTS["known"][:128] = True
    word, space, lower, known = _LUTS["word"], _LUTS["space"], _LUTS["lower"], _LUTS["known"]
    high = np.unique(cps[cps >= 128])
    for c in high[~known[high]].tolist():
        ch = chr(c)
        low = ch.lower()
        for x in {ch, low[0]}:  # classify the code point and its lowercase
            word[ord(x)] = _WORD_RE.match(x) is not None
            space[ord(x)] = x.isspace()
            known[ord(x)] = True
        lower[c] = ord(low[0]) if len(low) == 1 else c
    return word, space, lower


class TextBatch:
    """Texts of one batch as code points, ASCII ones straight from Arrow's buffer.

    Non-ASCII texts are normalised once in Python (NFKC; lowercased for tokens) and appended
    after the ASCII ones as UTF-32 code points, so every text is a run of code points and the
    same numpy code serves both. `order[i]` is the original index of the i-th text laid out.
    """

    def __init__(self, texts: pa.Array) -> None:
        if isinstance(texts, pa.ChunkedArray):
            texts = texts.combine_chunks()
        if texts.type != pa.string():
            texts = texts.cast(pa.string())
        self.texts = texts
        ascii_ok = _ascii_mask(texts)
        self.all_ascii = bool(ascii_ok.all())
        if self.all_ascii:
            self.order = np.arange(len(texts))
            self._ascii = texts
            self._nfkc: list[str] = []
        else:
            self.order = np.concatenate([np.flatnonzero(ascii_ok), np.flatnonzero(~ascii_ok)])
            self._ascii = texts.filter(pa.array(ascii_ok))
            self._nfkc = [unicodedata.normalize("NFKC", t or "") for t in texts.filter(pa.array(~ascii_ok)).to_pylist()]
        self._parts_cache: dict[bool, list] = {}
        self._multi_lower = any(_MULTI_LOWER in t for t in self._nfkc)  # rare: see _parts
        self._scanned: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def _parts(self, lower: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The laid-out texts as (code points, offsets, word LUT, space LUT, lowercase LUT)
        parts: the ASCII texts as bytes, then the non-ASCII ones as UTF-32. Lowercasing is the
        hashing's job (through the LUT), except for the rare text whose `str.lower()` changes
        its length, which is lowercased here when `lower` is set."""
        key = lower and self._multi_lower  # else both views are the same
        if key in self._parts_cache:
            return self._parts_cache[key]
        data, offsets = string_bytes(self._ascii)
        parts = [(data, offsets, _WORD, _SPACE, _ASCII_LOWER)]
        self._parts_cache[key] = parts
        if not self.all_ascii:
            rest = [t.lower() if _MULTI_LOWER in t else t for t in self._nfkc] if key else self._nfkc
            cps = np.frombuffer("".join(rest).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            lengths = np.fromiter(map(len, rest), dtype=np.int64, count=len(rest))
            parts.append((cps, np.concatenate(([0], np.cumsum(lengths))), *_unicode_luts(cps)))
        return parts

    def _scan(self, backend: str | None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None:
        """Both views from one fused numba pass, when numba runs and both views read the same
        code points (no text needs Python's lowercasing); else None."""
        if (backend or BACKEND) != "numba" or self._multi_lower:
            return None
        if self._scanned is None:
            assert KERNELS is not None, "numba is not installed"
            self._scanned = [KERNELS.scan(cps, offsets, word, space, lower)
                             for cps, offsets, word, space, lower in self._parts(lower=False)]
        return self._scanned

    def normalized_hashes(self, backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per text (original order): a hash of its NFKC, whitespace-normalised form, and its
        number of non-space runs (0 means the text is empty or only whitespace)."""
        hashes_parts, count_parts = [], []
        scanned = self._scan(backend)
        for i, (cps, offsets, _, space, _) in enumerate(self._parts(lower=False)):
            if scanned is not None:
                h, counts = scanned[i][0], scanned[i][1]
            elif (backend or BACKEND) == "numba":
                assert KERNELS is not None, "numba is not installed"
                h, counts = KERNELS.normalized_hashes(cps, offsets, space)
            else:
                starts, ends, text_of = runs(~space[cps], offsets)
                run_hash = segment_hash(cps, starts, ends)
                counts = np.bincount(text_of, minlength=len(offsets) - 1).astype(np.int64)
                first = np.concatenate(([0], np.cumsum(counts)))
                h = segment_hash(run_hash, first[:-1], first[1:])
            hashes_parts.append(h)
            count_parts.append(counts)
        laid_out, counts = np.concatenate(hashes_parts), np.concatenate(count_parts)
        hashes, n_runs = np.empty_like(laid_out), np.empty_like(counts)
        hashes[self.order], n_runs[self.order] = laid_out, counts
        return hashes, n_runs

    def token_hashes(self, backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every token (lowercase `\\w` run of 2+ code points), text by text: (token hash, original
        index of its text). Tokens of one text are consecutive and in order."""
        tok_parts, text_parts = [], []
        first_text = 0
        scanned = self._scan(backend)
        for i, (cps, offsets, word, _, lower) in enumerate(self._parts(lower=True)):
            if scanned is not None:
                tok, text_of = scanned[i][2], scanned[i][3]
            elif (backend or BACKEND) == "numba":
                assert KERNELS is not None, "numba is not installed"
                tok, text_of = KERNELS.token_hashes(cps, offsets, word, lower)
            else:
                cps = lower[cps]
                starts, ends, text_of = runs(word[cps], offsets)
                keep = ends - starts >= 2
                starts, ends, text_of = starts[keep], ends[keep], text_of[keep]
                tok = segment_hash(cps, starts, ends)
            tok_parts.append(tok)
            text_parts.append(text_of + first_text)
            first_text += len(offsets) - 1
        return np.concatenate(tok_parts), self.order[np.concatenate(text_parts)]


def text_hashes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """`TextBatch(arr).normalized_hashes()`."""
    return TextBatch(arr).normalized_hashes()


def token_hashes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """`TextBatch(arr).token_hashes()`."""
    return TextBatch(arr).token_hashes()


def ngram_hashes(tok: np.ndarray, text_of: np.ndarray, n: int, backend: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every n consecutive tokens of one text, and the text each n-gram is in."""
    if (backend or BACKEND) == "numba":
        assert KERNELS is not None, "numba is not installed"
        return KERNELS.ngram_hashes(tok, text_of, n)
    m = len(tok) - n + 1
    if m <= 0:
        return np.empty(0, np.uint64), np.empty(0, np.int64)
    h = np.zeros(m, dtype=np.uint64)
    for k in range(n):
        h *= _GOLD
        h += tok[k : k + m]
    valid = text_of[:m] == text_of[n - 1 :]
    return mix64(h[valid]), text_of[:m][valid]
