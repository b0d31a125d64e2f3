"""Decontamination: drop pairs that share a 13-gram with a benchmark prompt (paper App. C.1).

Tokens follow RewardBench's reference (scikit-learn `CountVectorizer` defaults): lowercase, then
the words matched by `(?u)\\b\\w\\w+\\b`; we also apply Unicode NFKC first. An n-gram never spans
two messages. Tokens and n-grams are hashed to 64 bits straight from Arrow's string buffers
(`rewardops.data.texthash`), a batch at a time. The benchmark side is the set of prompt n-gram
hashes (a sorted array for numpy, an open-addressing table behind a cache-sized Bloom filter for
numba; under ~100 bytes per distinct n-gram, with the prompt it came from): memory is that
index plus one batch, whatever the number of pairs.

Prompts shorter than n tokens contribute no n-gram and so can never match, as in the reference.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rewardops.data.texthash import BACKEND, KERNELS, ngram_hashes, token_hashes, tokenize
from rewardops.errors import DataError, NotFoundError

__all__ = ["DEFAULT_N", "Decontaminator", "first_turn_prompt", "load_prompts", "tokenize"]

DEFAULT_N = 13


class Decontaminator:
    """Benchmark prompts' n-grams, and a batched test of texts against them."""

    def __init__(self, prompts: Iterable[str], n: int = DEFAULT_N, chunk: int = 4_096) -> None:
        self.n = n
        self.prompts: list[str] = []  # kept to say which prompt a dropped pair matched
        parts: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        batch: list[str] = []
        for prompt in prompts:
            batch.append(prompt)
            if len(batch) >= chunk:
                self._index_chunk(batch, parts, owners)
                batch = []
        self._index_chunk(batch, parts, owners)
        grams = np.concatenate(parts) if parts else np.empty(0, np.uint64)
        owner = np.concatenate(owners) if owners else np.empty(0, np.int64)
        grams, first = np.unique(grams, return_index=True)
        self.grams = grams
        self.owner = owner[first].astype(np.int32)
        bits = max(10, int(len(grams) * 16).bit_length())
        if KERNELS is not None:
            keys = np.where(grams == 0, np.uint64(1), grams)
            self._table = (*KERNELS.build_table(keys, self.owner.astype(np.int64)), KERNELS.build_bits(keys, bits), bits)
        self._mask = np.uint64((1 << bits) - 1)
        self._bitmap = np.zeros(1 << bits, dtype=bool)
        self._bitmap[grams & self._mask] = True

    def _index_chunk(self, batch: list[str], parts: list[np.ndarray], owners: list[np.ndarray]) -> None:
        if not batch:
            return
        offset = len(self.prompts)
        self.prompts.extend(batch)
        tok, text_of = token_hashes(pa.array(batch, pa.string()))
        grams, gram_text = ngram_hashes(tok, text_of, self.n)
        parts.append(grams)
        owners.append(gram_text + offset)

    def __len__(self) -> int:
        return len(self.grams)

    @property
    def nbytes(self) -> int:
        table = sum(a.nbytes for a in self._table[:3]) if KERNELS is not None else 0
        return self.grams.nbytes + self.owner.nbytes + self._bitmap.nbytes + table

    def match_texts(self, texts: pa.Array) -> np.ndarray:
        """For each text, the index of a benchmark prompt it shares an n-gram with, or -1."""
        tok, text_of = token_hashes(texts) if len(self.grams) else (np.empty(0, np.uint64), np.empty(0, np.int64))
        return self.match_tokens(tok, text_of, len(texts))

    def match_tokens(self, tok: np.ndarray, text_of: np.ndarray, n_texts: int, backend: str | None = None) -> np.ndarray:
        """`match_texts` from token hashes (`TextBatch.token_hashes`)."""
        out = np.full(n_texts, -1, dtype=np.int64)
        if not len(self.grams) or not len(tok):
            return out
        if (backend or BACKEND) == "numba":
            return KERNELS.match_ngrams(tok, text_of, self.n, n_texts, *self._table)
        grams, gram_text = ngram_hashes(tok, text_of, self.n)
        maybe = self._bitmap[grams & self._mask]
        grams, gram_text = grams[maybe], gram_text[maybe]
        idx = np.searchsorted(self.grams, grams)
        idx[idx == len(self.grams)] = 0
        hit = self.grams[idx] == grams
        out[gram_text[hit][::-1]] = self.owner[idx[hit]][::-1]  # the first hit of a text wins
        return out

    def match(self, pair_texts: Sequence[Sequence[str]]) -> np.ndarray:
        """For each pair (a list of its message texts), the index of a benchmark prompt it shares
        an n-gram with, or -1."""
        flat = [t for msgs in pair_texts for t in msgs]
        pair_of_text = np.repeat(np.arange(len(pair_texts)), [len(m) for m in pair_texts])
        return self.match_grouped(pa.array(flat, pa.string()), pair_of_text, len(pair_texts))

    def match_grouped(self, texts: pa.Array, group_of_text: np.ndarray, groups: int) -> np.ndarray:
        """`match_texts`, reduced to groups of texts (the messages of each pair)."""
        out = np.full(groups, -1, dtype=np.int64)
        per_text = self.match_texts(texts)
        hit = per_text >= 0
        out[group_of_text[hit]] = per_text[hit]
        return out

    def contaminated(self, pair_texts: Sequence[Sequence[str]]) -> np.ndarray:
        return self.match(pair_texts) >= 0


# --------------------------------------------------------------------------- prompt files

PROMPT_KEYS = ("prompt", "question", "input", "instruction", "query", "conversation_input",
               "messages", "conversations", "conversation", "text")
USER_ROLES = ("user", "human")


def first_turn_prompt(record: Any) -> str | None:
    """The first user turn of a benchmark record (a string, or an object in any of the
    evaluation formats: RewardBench, RM-Bench, JudgeBench, LLMBar, RMB, chat message lists)."""
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        return None
    for key in PROMPT_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, list):
            for m in value:
                if isinstance(m, dict):
                    role = m.get("role", m.get("from"))
                    content = m.get("content", m.get("value"))
                    if role in USER_ROLES and isinstance(content, str):
                        return content
                elif isinstance(m, str):
                    return m
    return None


def _records(path: Path) -> Iterator[Any]:
    name = path.name
    if name.endswith(".parquet"):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
            yield from batch.to_pylist()
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        if name.endswith((".jsonl", ".jsonl.gz")):
            for lineno, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}, line {lineno}: not valid JSON: {e.msg}") from e
            return
        if name.endswith((".json", ".json.gz")):
            try:
                doc = json.load(fh)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: not valid JSON (line {e.lineno}): {e.msg}") from e
            if isinstance(doc, dict):
                lists = [v for v in doc.values() if isinstance(v, list)]
                doc = lists[0] if len(lists) == 1 else [doc]
            yield from doc if isinstance(doc, list) else [doc]
            return
        for line in fh:  # plain text: one prompt per line
            if line.strip():
                yield line.rstrip("\n")


PROMPT_SUFFIXES = (".txt", ".json", ".jsonl", ".json.gz", ".jsonl.gz", ".parquet")


def load_prompts(paths: Iterable[str | Path]) -> Iterator[str]:
    """First-turn prompts from text (one per line), JSON, JSONL(.gz) or Parquet files, or
    folders of them (searched recursively)."""
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith(PROMPT_SUFFIXES)
                           and f.name not in ("_manifest.json", "report.json"))
        elif p.is_file():
            files = [p]
        else:
            raise NotFoundError(f"{p}: no such prompt file or folder")
        for f in files:
            for record in _records(f):
                prompt = first_turn_prompt(record)
                if prompt:
                    yield prompt
