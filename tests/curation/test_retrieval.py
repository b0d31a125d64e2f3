from __future__ import annotations

import numpy as np
import pytest

from rewardops.curation.retrieval import ExampleRetriever, VectorIndex, build_index, error_driven_retrieve, k_for, pair_text

from .conftest import TOPICS, toy_pairs


@pytest.mark.parametrize("p,k", [(0.0, 8), (0.3, 8), (0.5, 8), (0.51, 4), (0.6, 4), (0.75, 2), (0.9, 1), (0.99, 1), (1.0, 0)])
def test_error_driven_k_rule(p, k):
    assert k_for(p) == k


def test_vector_index_add_remove_search():
    idx = VectorIndex(2)
    idx.add(["a", "b", "c"], np.array([[1, 0], [0, 1], [0.7, 0.7]], dtype=np.float32))
    idx.add(["a"], np.array([[0, 1]], dtype=np.float32))  # an id already present is not added twice
    assert len(idx) == 3
    assert [i for i, _ in idx.search(np.array([[1, 0]], dtype=np.float32), 2)[0]] == ["a", "c"]
    assert idx.remove(["a", "zzz"]) == 1 and "a" not in idx
    assert [i for i, _ in idx.search(np.array([[1, 0]], dtype=np.float32), 5)[0]] == ["c", "b"]


def test_retrieval_pulls_same_topic_neighbours_deduplicated(embedder):
    pool = toy_pairs(60, prefix="u")
    gold = toy_pairs(10, prefix="g", seed=5)
    index = build_index(pool, embedder)
    assert gold[0].chosen not in pair_text(gold[0]) and "task_category: code" in pair_text(gold[0])
    probs = [0.2, 0.2] + [0.95] * 8  # the RM gets the first two gold pairs wrong
    hits = error_driven_retrieve(gold, probs, embedder, index)
    ids = [h[0] for h in hits]
    assert len(ids) == len(set(ids))  # de-duplicated
    from_wrong = [h for h in hits if h[1] in (gold[0].id, gold[1].id)]
    assert sum(h[1] == gold[0].id for h in hits) == 8  # the worst error is served first, in full
    assert 8 < len(from_wrong) <= 16 and len(hits) <= 16 + 8  # 8 each for p<=0.5, 1 each for p=0.95, minus repeats
    twice = error_driven_retrieve([gold[0], gold[0]], [0.1, 0.1], embedder, index)
    assert len(twice) == 8  # the same neighbours pulled by two queries appear once
    by_id = {p.id: p for p in pool}
    topic0 = TOPICS[0][0]
    same = sum(topic0 in by_id[h[0]].conversation[0].content for h in hits if h[1] == gold[0].id)
    assert same >= 5  # most neighbours share the topic


def test_example_retriever_never_returns_the_pair_itself(embedder):
    gold = toy_pairs(20, prefix="g")
    r = ExampleRetriever(gold, embedder, k=3)
    ex = r.examples(gold[:2])
    assert all(len(e) == 3 for e in ex) and all(gold[i].id not in {x.id for x in ex[i]} for i in range(2))


def _assert_exact(index, got, query_scores, k, removed=frozenset()):
    """`got` is an exact top k of one query (up to the order of equal scores): its scores are the k
    best live scores, each position really has its score, none is removed or repeated."""
    live = np.array([s for i, s in enumerate(query_scores) if i not in removed])
    best = np.sort(live)[::-1][:k]
    positions = [int(index.offsets[s]) + r for s, r, _ in got]
    assert np.allclose([s for _, _, s in got], best, atol=1e-5)
    assert np.allclose([query_scores[p] for p in positions], best, atol=1e-5)
    assert len(set(positions)) == len(positions) and not set(positions) & set(removed)


def test_pool_index_is_exact_search_over_sharded_on_disk_vectors(tmp_path, embedder):
    from rewardops.curation.retrieval import PoolIndex
    from rewardops.data.shards import write_pairs

    pool = toy_pairs(300, prefix="u")
    write_pairs(pool, tmp_path / "pool", shard_size=100)  # 3 shards
    index = PoolIndex.open(tmp_path / "pool", tmp_path / "vec", embedder, chunk_rows=32)  # chunks inside shards too
    assert len(index) == 300 and len(index.shards) == 3
    vectors = embedder.embed([pair_text(p) for p in pool])
    queries = embedder.embed([pair_text(p) for p in toy_pairs(12, prefix="g", seed=5)])
    scores = queries @ vectors.T
    found = index.search(queries, 8)
    for got, row in zip(found, scores):
        _assert_exact(index, got, row, 8)
    # removed positions never come back; the rest is still the exact top k
    gone = {int(index.offsets[s]) + r for s, r, _ in found[0][:5]}
    assert index.remove(index.position(p) for p in gone) == 5 and len(index) == 295
    again = index.search(queries, 8)
    for got, row in zip(again, scores):
        _assert_exact(index, got, row, 8, gone)
    # fetched by position from Parquet: the very pairs
    positions = [(s, r) for s, r, _ in again[3]]
    assert [p.id for p in index.fetch(positions)] == [pool[int(index.offsets[s]) + r].id for s, r in positions]
    # by id (a resume whose pool was re-sharded)
    assert index.remove_ids([pool[0].id, pool[150].id, "nope"]) == 2 - (0 in gone) - (150 in gone)


def test_pool_vectors_are_computed_once_and_another_embedders_are_refused(tmp_path, embedder):
    from rewardops.curation.retrieval import HashedEmbedder, PoolIndex
    from rewardops.data.shards import write_pairs

    write_pairs(toy_pairs(50, prefix="u"), tmp_path / "pool", shard_size=20)
    PoolIndex.open(tmp_path / "pool", tmp_path / "vec", embedder)
    files = sorted((tmp_path / "vec").glob("part-*.npy"))
    assert len(files) == 3 and np.load(files[0]).shape == (20, embedder.dim)
    mtimes = [f.stat().st_mtime_ns for f in files]
    before = embedder.embedded
    PoolIndex.open(tmp_path / "pool", tmp_path / "vec", embedder)
    assert embedder.embedded == before and [f.stat().st_mtime_ns for f in files] == mtimes  # not embedded again
    with pytest.raises(ValueError, match="another embedder"):
        PoolIndex.open(tmp_path / "pool", tmp_path / "vec", HashedEmbedder(64), embed_missing=False)
