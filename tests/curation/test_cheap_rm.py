from __future__ import annotations

import torch

from rewardops.curation.cheap_rm import EmbeddingBTTrainer, HashedBTTrainer, load_embedding_bt, load_hashed_bt
from rewardops.data.shards import write_pairs

from .conftest import toy_pairs


def _acc(scorer, pairs):
    return sum(p > 0.5 for p in scorer.score_pairs(pairs)) / len(pairs)


def test_embedding_bt_learns_and_selects_by_gold(tmp_path, embedder):
    torch.set_num_threads(1)
    silver, gold, test = toy_pairs(120, seed=1), toy_pairs(30, seed=2, prefix="g"), toy_pairs(40, seed=3, prefix="t")
    write_pairs(silver, tmp_path / "silver")
    write_pairs(gold, tmp_path / "gold")
    trainer = EmbeddingBTTrainer(embedder, epochs=8)
    scorer = trainer.train(tmp_path / "silver", tmp_path / "gold", tmp_path / "rm")
    assert len(trainer.last_history) == 8 and _acc(scorer, test) >= 0.9
    again = load_embedding_bt(tmp_path / "rm", embedder)
    assert again.score_pairs(test[:5]) == scorer.score_pairs(test[:5])
    flipped = [p.flipped() for p in test[:5]]
    assert all(abs(a + b - 1) < 1e-6 for a, b in zip(scorer.score_pairs(test[:5]), scorer.score_pairs(flipped)))


def test_hashed_bt_learns_from_mostly_clean_labels(tmp_path):
    silver = toy_pairs(300, noise=0.2, seed=1)
    test = toy_pairs(60, seed=3, prefix="t")
    write_pairs(silver, tmp_path / "silver")
    scorer = HashedBTTrainer(dim=1 << 14, epochs=5).train(tmp_path / "silver", None, tmp_path / "rm")
    assert _acc(scorer, test) >= 0.9
    assert load_hashed_bt(tmp_path / "rm").score_pairs(test[:3]) == scorer.score_pairs(test[:3])
