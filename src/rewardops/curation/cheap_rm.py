"""Small, real Bradley-Terry reward models that train in seconds on CPU.

They are what the tests, the offline demo and the benchmarks use when the full trainer
(`rewardops.training`, transformer backbones) is too slow for the job; they are named for what
they are everywhere they appear.

- `EmbeddingBT`: an MLP over frozen sentence-transformers embeddings of (conversation, response):
  r(x, y) = MLP([e(y), e(x) * e(y)]).
- `HashedBT`: a linear model over hashed word unigrams/bigrams of the response,
  r(y) = mean_t w[h(t)], the cheapest thing that still learns; it is the scan benchmark's scorer.

Both train with the BT loss -log sigmoid(r_chosen - r_rejected) on silver and keep the epoch
with the best accuracy on gold (the checkpoint-selection rule of paper §3.2).
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardops.curation.protocols import Embedder
from rewardops.data.schema import PreferencePair
from rewardops.data.shards import read_pairs, shard_paths
from rewardops.errors import DataError


def _load(path: Path | None) -> list[PreferencePair]:
    if path is None:
        return []
    path = Path(path)
    if not path.exists() or not shard_paths(path):
        return []
    return list(read_pairs(path))


def _accuracy(probs: Sequence[float]) -> float:
    return float(np.mean(np.asarray(probs) > 0.5)) if len(probs) else float("nan")


def _train_bt(model: Any, feats_c: Any, feats_r: Any, gold_eval: Any, epochs: int, lr: float, batch: int, seed: int,
              weight_decay: float = 0.0) -> tuple[dict, list[float]]:
    """BT training with per-epoch gold accuracy; returns (best state, gold accuracy history)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    n = feats_c.shape[0] if hasattr(feats_c, "shape") else len(feats_c)
    history: list[float] = []
    best_state, best_acc = None, -1.0
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch):
            idx = perm[s : s + batch]
            loss = -torch.nn.functional.logsigmoid(model(feats_c, idx) - model(feats_r, idx)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        acc = gold_eval() if gold_eval is not None else float("nan")
        history.append(acc)
        if gold_eval is None or acc > best_acc:  # without gold: keep the last epoch
            best_acc = acc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return best_state, history


class EmbeddingBTScorer:
    def __init__(self, embedder: Embedder, model: Any, name: str = "embedding-bt") -> None:
        self.embedder = embedder
        self.model = model
        self.name = name

    def _feats(self, pairs: Sequence[PreferencePair], which: str) -> Any:
        import torch

        convs = [" ".join(m.content for m in p.conversation) for p in pairs]
        resps = [getattr(p, which) for p in pairs]
        ec = self.embedder.embed(convs)
        er = self.embedder.embed(resps)
        return torch.from_numpy(np.concatenate([er, ec * er], axis=1))

    def rewards(self, pairs: Sequence[PreferencePair], which: str = "chosen") -> np.ndarray:
        import torch

        with torch.no_grad():
            f = self._feats(pairs, which)
            return self.model.net(f).squeeze(-1).numpy()

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[float]:
        if not pairs:
            return []
        diff = self.rewards(pairs, "chosen") - self.rewards(pairs, "rejected")
        return (1.0 / (1.0 + np.exp(-diff))).tolist()


class _IndexedMLP:
    """An MLP applied to rows `idx` of a feature matrix (keeps the training loop generic)."""

    def __init__(self, dim: int, hidden: int) -> None:
        import torch

        layers = [torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, 1)] if hidden else [torch.nn.Linear(dim, 1)]
        self.net = torch.nn.Sequential(*layers)

    def __call__(self, feats: Any, idx: Any) -> Any:
        return self.net(feats[idx]).squeeze(-1)

    def parameters(self):
        return self.net.parameters()

    def state_dict(self):
        return self.net.state_dict()

    def load_state_dict(self, state):
        self.net.load_state_dict(state)

    def train(self):
        self.net.train()

    def eval(self):
        self.net.eval()


class EmbeddingBTTrainer:
    """`RMTrainer` for the embedding MLP. Checkpoint = the epoch with the best gold accuracy."""

    def __init__(self, embedder: Embedder, hidden: int = 64, epochs: int = 20, lr: float = 3e-3,
                 batch_size: int = 64, weight_decay: float = 1e-4, seed: int = 0) -> None:
        self.embedder = embedder
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.seed = seed
        self.last_history: list[float] = []

    def fit(self, silver: Sequence[PreferencePair], gold: Sequence[PreferencePair]) -> EmbeddingBTScorer:
        import torch

        if not silver:
            raise DataError("cannot train a reward model on an empty silver set")
        torch.manual_seed(self.seed)
        dim = 2 * self.embedder.embed(["x"]).shape[1]
        model = _IndexedMLP(dim, self.hidden)
        scorer = EmbeddingBTScorer(self.embedder, model, name=f"embedding-bt({self.embedder.name})")
        fc, fr = scorer._feats(silver, "chosen"), scorer._feats(silver, "rejected")
        gold_eval = None
        if gold:
            gc, gr = scorer._feats(gold, "chosen"), scorer._feats(gold, "rejected")
            all_idx = torch.arange(len(gold))

            def gold_eval() -> float:
                with torch.no_grad():
                    return float((model(gc, all_idx) > model(gr, all_idx)).float().mean())

        state, self.last_history = _train_bt(model, fc, fr, gold_eval, self.epochs, self.lr, self.batch_size,
                                             self.seed, self.weight_decay)
        model.load_state_dict(state)
        return scorer

    def train(self, silver_dir: Path, gold_dir: Path | None, out_dir: Path) -> EmbeddingBTScorer:
        scorer = self.fit(_load(silver_dir), _load(gold_dir))
        save_embedding_bt(scorer, out_dir, {"gold_accuracy_by_epoch": self.last_history, "hidden": self.hidden})
        return scorer


def save_embedding_bt(scorer: EmbeddingBTScorer, out_dir: str | Path, info: dict[str, Any]) -> None:
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(scorer.model.state_dict(), out / "embedding_bt.pt")
    (out / "embedding_bt.json").write_text(json.dumps({"kind": "embedding-bt", "embedder": scorer.embedder.name, **info}, indent=1))


def load_embedding_bt(out_dir: str | Path, embedder: Embedder) -> EmbeddingBTScorer:
    import torch

    out = Path(out_dir)
    info = json.loads((out / "embedding_bt.json").read_text())
    dim = 2 * embedder.embed(["x"]).shape[1]
    model = _IndexedMLP(dim, info["hidden"])
    model.load_state_dict(torch.load(out / "embedding_bt.pt", weights_only=True))
    model.eval()
    return EmbeddingBTScorer(embedder, model, name=f"embedding-bt({embedder.name})")


_WORD = re.compile(r"\w+|[^\w\s]")
_GRAM_CACHES: dict[int, dict[str, int]] = {}
_GRAM_CACHE_MAX = 2_000_000


def hashed_tokens(text: str, dim: int) -> list[int]:
    """Unigram and bigram hashes (crc32, stable across processes) modulo `dim`; memoised per dim
    because a corpus repeats its grams."""
    cache = _GRAM_CACHES.setdefault(dim, {})
    if len(cache) > _GRAM_CACHE_MAX:
        cache.clear()
    toks = _WORD.findall(text.lower())
    out = []
    for g in toks + [a + " " + b for a, b in zip(toks, toks[1:])]:
        h = cache.get(g)
        if h is None:
            h = cache[g] = zlib.crc32(g.encode()) % dim
        out.append(h)
    return out or [0]


class HashedBTScorer:
    def __init__(self, weights: np.ndarray, name: str = "hashed-bt") -> None:
        self.weights = weights.astype(np.float32)
        self.dim = len(weights)
        self.name = name

    def rewards(self, texts: Sequence[str]) -> np.ndarray:
        """Mean weight of each text's grams, vectorised over the batch."""
        ids = [hashed_tokens(t, self.dim) for t in texts]
        lens = np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))
        flat = np.fromiter((x for i in ids for x in i), dtype=np.int64, count=int(lens.sum()))
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        return np.add.reduceat(self.weights[flat], starts) / lens

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[float]:
        if not pairs:
            return []
        d = self.rewards([p.chosen for p in pairs]) - self.rewards([p.rejected for p in pairs])
        return (1.0 / (1.0 + np.exp(-d.astype(np.float64)))).tolist()


class HashedBTTrainer:
    """`RMTrainer` for the hashed bag-of-words BT model (torch EmbeddingBag, mean pooling)."""

    def __init__(self, dim: int = 1 << 16, epochs: int = 10, lr: float = 0.05, batch_size: int = 128, seed: int = 0) -> None:
        self.dim = dim
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.last_history: list[float] = []

    def fit(self, silver: Sequence[PreferencePair], gold: Sequence[PreferencePair]) -> HashedBTScorer:
        import torch

        if not silver:
            raise DataError("cannot train a reward model on an empty silver set")
        torch.manual_seed(self.seed)
        bag = torch.nn.EmbeddingBag(self.dim, 1, mode="mean")
        torch.nn.init.zeros_(bag.weight)
        c_ids = [hashed_tokens(p.chosen, self.dim) for p in silver]
        r_ids = [hashed_tokens(p.rejected, self.dim) for p in silver]

        class _M:
            def __call__(self, ids: list[list[int]], idx: Any) -> Any:
                sel = [ids[i] for i in idx.tolist()]
                flat = torch.tensor([x for s in sel for x in s], dtype=torch.long)
                off = torch.tensor(np.cumsum([0] + [len(s) for s in sel[:-1]]), dtype=torch.long)
                return bag(flat, off).squeeze(-1)

            def parameters(self):
                return bag.parameters()

            def state_dict(self):
                return bag.state_dict()

            def train(self):
                bag.train()

            def eval(self):
                bag.eval()

        model = _M()
        gold_eval = None
        if gold:
            def gold_eval() -> float:
                s = HashedBTScorer(bag.weight.detach().numpy()[:, 0].copy())
                return _accuracy(s.score_pairs(gold))

        state, self.last_history = _train_bt(model, c_ids, r_ids, gold_eval, self.epochs, self.lr, self.batch_size, self.seed)
        return HashedBTScorer(state["weight"].numpy()[:, 0].copy(), name="hashed-bt")

    def train(self, silver_dir: Path, gold_dir: Path | None, out_dir: Path) -> HashedBTScorer:
        scorer = self.fit(_load(silver_dir), _load(gold_dir))
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "hashed_bt.npy", scorer.weights)
        (out / "hashed_bt.json").write_text(json.dumps({"kind": "hashed-bt", "dim": self.dim,
                                                        "gold_accuracy_by_epoch": self.last_history}, indent=1))
        return scorer


def load_hashed_bt(out_dir: str | Path) -> HashedBTScorer:
    return HashedBTScorer(np.load(Path(out_dir) / "hashed_bt.npy"))
