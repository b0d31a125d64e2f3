"""What curation needs from the rest of the system, as small structural interfaces.

The trainer, the scoring engine and the human/LLM annotators are written elsewhere (or are
swappable); curation only relies on these shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from rewardops.data.schema import PreferencePair


@runtime_checkable
class PairScorer(Protocol):
    """A trained reward model, read as pair probabilities. (Not the scoring engine's
    `rewardops.evaluation.engine.RewardScorer`, which turns token ids into rewards; a transformer
    RM is adapted from that one to this one by `curation.adapters.EngineScorer`.)"""

    name: str

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[float]:
        """p = sigmoid(r(x, chosen) - r(x, rejected)) for each pair, in order."""
        ...


@runtime_checkable
class RMTrainer(Protocol):
    """Trains a BT reward model on `silver_dir`, selecting the checkpoint by accuracy on `gold_dir`."""

    def train(self, silver_dir: Path, gold_dir: Path | None, out_dir: Path) -> PairScorer: ...


@runtime_checkable
class Embedder(Protocol):
    """Texts -> L2-normalised float32 vectors of shape (n, dim)."""

    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class Annotator(Protocol):
    """Human verification: for each pair, True (the listed chosen is better), False (the rejected
    is better) or None (undecidable: the pair is discarded, never sent to LLMs). An interactive
    annotator may return fewer answers than pairs: the rest were not reviewed (not discarded)."""

    name: str

    def verify(self, pairs: Sequence[PreferencePair]) -> list[bool | None]: ...
