"""Adapters from curation's protocols to the rest of RewardOps, and loading RMs by folder.

- `TransformerRMTrainer`: `RMTrainer` over `rewardops.training` (a catalog size, e.g.
  `demo-tiny-qwen3` or `qwen3-0.6b`): trains on silver, evaluates the exported model on gold.
- `EngineScorer`: `PairScorer` over `rewardops.evaluation.engine.HFRewardModel` (the same
  rendering and last-token reading as training), p = sigmoid(r_chosen - r_rejected).
- `load_scorer(path)`: whichever kind of RM a folder holds.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rewardops.curation.protocols import PairScorer
from rewardops.data.schema import PreferencePair


class EngineScorer:
    def __init__(self, model: str | Path, device: str | None = None, batch_size: int = 16, max_length: int = 4096) -> None:
        from rewardops.evaluation.engine import HFRewardModel
        from rewardops.evaluation.modelref import resolve_model

        self.rm = HFRewardModel(resolve_model(model), device=device, batch_size=batch_size, max_length=max_length)
        self.name = f"transformer-rm({Path(str(model)).name})"

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[float]:
        if not pairs:
            return []
        seqs = [self.rm.render(p.messages(p.chosen)) for p in pairs] + [self.rm.render(p.messages(p.rejected)) for p in pairs]
        r = self.rm.score_ids(seqs)
        n = len(pairs)
        return [1.0 / (1.0 + math.exp(-(r[i] - r[n + i]))) for i in range(n)]


class TransformerRMTrainer:
    """Trains with `rewardops.training.run` on the silver folder; the gold folder is the
    trainer's eval set (its final accuracy is recorded). The trainer keeps one final export, so
    checkpoint selection by gold accuracy happens across `select_epochs` candidate runs of
    1..N epochs (N=1: no selection)."""

    def __init__(self, size: str, overrides: dict[str, Any] | None = None, select_epochs: int = 1,
                 device: str | None = None) -> None:
        self.size = size
        self.overrides = overrides or {}
        self.select_epochs = select_epochs
        self.device = device
        self.last_history: list[float] = []

    def train(self, silver_dir: Path, gold_dir: Path | None, out_dir: Path) -> PairScorer:
        from rewardops import training

        best: tuple[float, EngineScorer] | None = None
        self.last_history = []
        for epochs in range(1, self.select_epochs + 1):
            out = Path(out_dir) / (f"epochs-{epochs}" if self.select_epochs > 1 else "")
            cfg = training.load_config(self.size, {"mlflow": False, **self.overrides, "data": str(silver_dir),
                                                   "out": str(out), "epochs": epochs, "resume": False})
            result = training.run(cfg)
            if result.export_dir is None:
                raise RuntimeError(f"{out}: the trainer exported no model")
            scorer = EngineScorer(result.export_dir, device=self.device)
            if gold_dir is None:
                best = (0.0, scorer)
                continue
            from rewardops.data.shards import read_pairs

            gold = list(read_pairs(gold_dir))
            acc = sum(p > 0.5 for p in scorer.score_pairs(gold)) / max(1, len(gold))
            self.last_history.append(acc)
            if best is None or acc > best[0]:
                best = (acc, scorer)
        assert best is not None
        (Path(out_dir) / "selection.json").write_text(json.dumps({"gold_accuracy_by_epochs": self.last_history}))
        return best[1]
