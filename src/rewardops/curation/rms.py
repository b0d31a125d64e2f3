"""The curation reward models: training by settings, one loader, temperature calibration on gold.

Every RM folder curation writes holds `rm.json` (kind, where the weights are, the temperature it
was calibrated with); `load_scorer` reads only that (an unknown folder is an error naming what it
expected, never a guess). Probabilities are temperature-scaled on gold before anything thresholds
them (stage 1's k rule, stage 2's band, gold threshold and recycling gate):
p_cal = sigmoid(logit(p) / T), with T fitted by maximum likelihood on gold pairs (each gold pair's
listed chosen is the human-preferred response).

- `train_rm(settings, silver, gold, out)`: an RM on silver, checkpoint selected on gold, calibrated on gold.
- `train_gold_rm(settings, gold, out)`: the gold RM on gold minus a held-out calibration split
  (`calibration_fraction`), calibrated on that split (a model is not calibrated on its own training data).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rewardops.curation.judges import unit
from rewardops.curation.protocols import Embedder, PairScorer
from rewardops.data.schema import PreferencePair
from rewardops.errors import DataError, NotFoundError

RM_FILE = "rm.json"
T_MIN, T_MAX = 0.05, 20.0
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def fit_temperature(probs: Sequence[float]) -> float:
    """The T minimising the NLL of gold pairs (label: listed chosen is better) under
    sigmoid(logit(p)/T); 1.0 without pairs. Golden-section search on log T in [T_MIN, T_MAX]."""
    if len(probs) == 0:
        return 1.0
    z = _logit(np.asarray(probs))

    def nll(log_t: float) -> float:
        return float(np.logaddexp(0.0, -z / math.exp(log_t)).sum())

    lo, hi = math.log(T_MIN), math.log(T_MAX)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return round(math.exp((lo + hi) / 2), 6)


def calibrate(probs: Sequence[float], temperature: float) -> list[float]:
    if temperature == 1.0 or len(probs) == 0:
        return [float(p) for p in probs]
    return (1.0 / (1.0 + np.exp(-_logit(np.asarray(probs)) / temperature))).tolist()


class CalibratedScorer:
    """A `PairScorer` whose probabilities are temperature-scaled; `record` is its rm.json."""

    def __init__(self, scorer: PairScorer, temperature: float, record: dict[str, Any] | None = None) -> None:
        self.scorer = scorer
        self.temperature = float(temperature)
        self.record = dict(record or {})
        self.name = scorer.name if temperature == 1.0 else f"{scorer.name}|T={temperature:g}"

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[float]:
        return calibrate(self.scorer.score_pairs(pairs), self.temperature)


def skill_lower_bound(accuracy: float, n: int, z: float) -> float:
    """One-sided Wilson lower bound of an accuracy measured on n pairs."""
    if n <= 0:
        return 0.0
    centre = accuracy + z * z / (2 * n)
    spread = z * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)


def informative(scorer: Any, z: float) -> tuple[bool, str]:
    """Whether an RM beats chance on the held-out gold it was calibrated on, at one-sided z.

    Stage 2 discards what the gold RM rejects; an RM no better than a coin would discard right
    and wrong pairs alike and could leave the kept set noisier than the pool. Returns (ok, why)."""
    record = getattr(scorer, "record", {}) or {}
    acc, n = record.get("gold_accuracy"), int(record.get("calibration_pairs") or 0)
    if acc is None or n == 0:
        return False, f"{getattr(scorer, 'name', 'the RM')}: no held-out gold accuracy to trust it on"
    bound = skill_lower_bound(float(acc), n, z)
    if bound <= 0.5:
        return False, (f"{getattr(scorer, 'name', 'the RM')}: held-out gold accuracy {acc:.3f} on {n} pairs is not "
                       f"above chance (lower bound {bound:.3f} at z={z:g})")
    return True, f"held-out gold accuracy {acc:.3f} on {n} pairs (lower bound {bound:.3f})"


def _write_rm_json(out: Path, scorer: PairScorer, kind: str, temperature: float, info: dict[str, Any]) -> dict[str, Any]:
    from rewardops.outputs import write_json_atomic

    record: dict[str, Any] = {"kind": kind, "name": scorer.name, "temperature": temperature, **info}
    inner = getattr(scorer, "rm", None)  # a transformer RM (adapters.EngineScorer): where its export is
    if inner is not None and getattr(inner, "ref", None) is not None:
        record["export"] = os.path.relpath(inner.ref.model_dir, out)
    embedder = getattr(scorer, "embedder", None)
    if embedder is not None:
        record["embedder"] = embedder.name
    write_json_atomic(out / RM_FILE, record)
    return record


def load_scorer(folder: str | Path, embedder: Embedder | None = None) -> CalibratedScorer:
    """The calibrated RM of a folder curation wrote (rm.json); a clear error for anything else."""
    from rewardops.curation.cheap_rm import load_embedding_bt, load_hashed_bt

    folder = Path(folder)
    path = folder / RM_FILE
    if not path.is_file():
        raise NotFoundError(f"{folder}: no reward model here (no {RM_FILE}); point at a folder written by "
                                "`rewardops curate final-rms` or `rewardops curate gold-rm` (best_rm/ or gold_rm/)")
    try:
        info = json.loads(path.read_text())
        kind = info["kind"]
        temperature = float(info.get("temperature", 1.0))
    except (ValueError, KeyError, TypeError) as exc:
        raise NotFoundError(f"{path}: not a valid reward-model record ({exc}); re-run the command that wrote it") from None
    if kind == "hashed-bt":
        scorer: PairScorer = load_hashed_bt(folder)
    elif kind == "embedding-bt":
        if embedder is None or embedder.name != info.get("embedder"):
            from rewardops.curation.retrieval import HashedEmbedder, SentenceTransformerEmbedder

            name = info.get("embedder") or ""
            embedder = HashedEmbedder() if name.startswith("hashed-bow") else SentenceTransformerEmbedder(name or None)
        scorer = load_embedding_bt(folder, embedder)
    elif kind == "transformer":
        from rewardops.curation.adapters import EngineScorer

        if "export" not in info:
            raise NotFoundError(f"{path}: a transformer RM record without its export folder; re-run the command that wrote it")
        scorer = EngineScorer((folder / info["export"]).resolve())
    else:
        raise NotFoundError(f"{path}: unknown reward-model kind {kind!r} (hashed-bt, embedding-bt, transformer)")
    return CalibratedScorer(scorer, temperature, info)


def rm_kind(settings: Any) -> str:
    return settings.rm.partition(":")[0]


def accuracy(probs: Sequence[float]) -> float | None:
    return float(np.mean(np.asarray(probs) > 0.5)) if len(probs) else None


def train_rm(settings: Any, silver: Path, gold: Path | None, out: Path, embedder: Embedder | None = None,
             calibration: Sequence[PreferencePair] | None = None) -> CalibratedScorer:
    """An RM trained on `silver`, checkpoint selected on `gold`, temperature fitted on `calibration`
    (default: the gold pairs); `out` gets the weights and rm.json."""
    from rewardops.curation.builders import build_rm_trainer
    from rewardops.data.shards import read_pairs

    out = Path(out)
    trainer = build_rm_trainer(settings, embedder)
    scorer = trainer.train(silver, gold, out)
    if calibration is None:
        calibration = list(read_pairs(gold)) if gold is not None else []
    raw = scorer.score_pairs(list(calibration))
    temperature = fit_temperature(raw)
    out.mkdir(parents=True, exist_ok=True)
    record = _write_rm_json(out, scorer, rm_kind(settings), temperature, {
        "trained_on": str(silver), "selected_on": str(gold) if gold is not None else None,
        "calibration_pairs": len(raw), "gold_accuracy": accuracy(raw),
        "selection_history": list(getattr(trainer, "last_history", []) or []),
    })
    return CalibratedScorer(scorer, temperature, record)


def calibration_split(pairs: Sequence[PreferencePair], fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out) by a stable hash of each pair id."""
    held = [p for p in pairs if unit("calibration", seed, p.id) < fraction]
    ids = {p.id for p in held}
    return [p for p in pairs if p.id not in ids], held


def train_gold_rm(settings: Any, gold: Path, out: Path, embedder: Embedder | None = None) -> tuple[CalibratedScorer, list]:
    """The gold RM on all human-verified pairs except the calibration split; returns it and the split."""
    from rewardops.data.shards import read_pairs, write_pairs

    pairs = list(read_pairs(gold))
    if not pairs:
        raise DataError(f"{gold}: no gold pairs to train the gold RM on; verify some pairs first")
    train, held = calibration_split(pairs, settings.calibration_fraction, settings.seed)
    if not train:
        train, held = pairs, []
    out = Path(out)
    write_pairs(train, out / "train")
    write_pairs(held, out / "calibration")
    scorer = train_rm(settings, out / "train", None, out, embedder, calibration=held)
    return scorer, held
