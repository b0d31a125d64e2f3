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
