"""The curation reward models: training by settings, one loader, temperature calibration on gold.

Every RM folder curation writes holds `rm.json` (kind, where the weights are, the temperature it
was calibrated with); `load_scorer` reads only that (an unknown folder is an error naming what it
expected, never a guess). Probabilities are temperature-scaled on gold before anything thresholds
them (stage 1's k rule, stage 2's band, gold threshold and recycling gate):
p_cal = sigmoid(logit(p) / T), with T fitted by maximum likelihood on gold pairs (each gold pair's
listed chosen is the human-preferred response).

- `train_rm(settings, silver, gold, out)`: an RM on silver, checkpoint selected on gold, calibrated on gold.
- `train_gold_rm(settings, gold, out)`: the gold RM on ALL gold, cross-fitted: the gold is cut into
  K = round(1 / `calibration_fraction`) folds, one RM per fold trained on the other folds scores its
  own fold, so every gold pair gets a probability from a model that never trained on it. The
  temperature is fitted on those out-of-fold probabilities (a model is not calibrated on its own
  training data) and applied to the final gold RM, trained on every gold pair (paper §3.3: the gold
  RM is trained on all of D_gold). Each fold's RM is calibrated on the out-of-fold probabilities of
  the OTHER folds, so no gold pair's label enters the temperature of the model that scores it.
- `train_best_rm_crossfit(settings, silver, gold_rm_dir, fold_of, out)`: the best RM once per gold
  fold, its checkpoint selected and its temperature fitted on the gold MINUS that fold (the gold
  RM's own folds, `folds/fold-K/train`).

Stage 2's decision replays every gold pair through the two cross-fitted scorers (`CrossFitScorer`,
`stage2.replay_outcomes`): no gold pair is scored by a model that trained, was selected or was
calibrated on it. Selecting a checkpoint or fitting a temperature on the pairs the replay then
scores makes the replay optimistic (it credits the RM with the skill it was picked for), and the
decision could filter where filtering makes the data worse. The published RMs (`best_rm/`,
`gold_rm/`) still use all the gold.
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


def crossfit_folds(pairs: Sequence[PreferencePair], fraction: float, seed: int) -> list[list[PreferencePair]]:
    """K = round(1 / fraction) (at least 2) folds by a stable hash of each pair id."""
    k = max(2, round(1.0 / fraction))
    folds: list[list[PreferencePair]] = [[] for _ in range(k)]
    for p in pairs:
        folds[min(k - 1, int(unit("crossfit", seed, p.id) * k))].append(p)
    return folds


class CrossFitScorer:
    """Scores each gold pair (or its flipped copy: same id) with the fold RM that did not train on it."""

    def __init__(self, models: Sequence[PairScorer], fold_of: dict[str, int], name: str) -> None:
        self.models, self.fold_of, self.name = list(models), dict(fold_of), name

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[float]:
        out = [0.0] * len(pairs)
        by_fold: dict[int, list[int]] = {}
        for i, p in enumerate(pairs):
            if p.id not in self.fold_of:
                raise KeyError(f"{self.name}: pair {p.id} is not a cross-fitted gold pair")
            by_fold.setdefault(self.fold_of[p.id], []).append(i)
        for k, idx in by_fold.items():
            for i, v in zip(idx, self.models[k].score_pairs([pairs[i] for i in idx])):
                out[i] = float(v)
        return out


def train_gold_rm(settings: Any, gold: Path, out: Path,
                  embedder: Embedder | None = None) -> tuple[CalibratedScorer, CrossFitScorer | None, list]:
    """The gold RM on all human-verified pairs, calibrated on cross-fitted probabilities; returns it,
    the cross-fitted scorer of calibrated fold RMs (None when a fold would train on nothing) and the gold pairs.
    `out` gets rm.json, the weights, train/ (every gold pair) and folds/fold-K/ (each fold's RM)."""
    from rewardops.curation.builders import build_rm_trainer
    from rewardops.data.shards import read_pairs, write_pairs

    pairs = list(read_pairs(gold))
    if not pairs:
        raise DataError(f"{gold}: no gold pairs to train the gold RM on; verify some pairs first")
    out = Path(out)
    folds = crossfit_folds(pairs, settings.calibration_fraction, settings.seed)
    scorer, raw_oof = None, []
    if all(len(f) < len(pairs) for f in folds) and sum(1 for f in folds if f) >= 2:
        models, fold_of = [], {}
        for k, fold in enumerate(folds):
            ids = {p.id for p in fold}
            fold_of.update({i: k for i in ids})
            write_pairs([p for p in pairs if p.id not in ids], out / "folds" / f"fold-{k}" / "train")
            models.append(build_rm_trainer(settings, embedder).train(out / "folds" / f"fold-{k}" / "train", None,
                                                                         out / "folds" / f"fold-{k}"))
        raw_oof = CrossFitScorer(models, fold_of, f"crossfit({len(folds)} folds)").score_pairs(pairs)
        # fold k's temperature from the other folds' out-of-fold probabilities: no pair calibrates its own scorer
        fold_t = [fit_temperature([v for p, v in zip(pairs, raw_oof) if fold_of[p.id] != k]) for k in range(len(folds))]
        scorer = CrossFitScorer([CalibratedScorer(m, t) for m, t in zip(models, fold_t)], fold_of,
                                f"gold-crossfit({len(folds)} folds)")
    temperature = fit_temperature(raw_oof)
    write_pairs(pairs, out / "train")
    trained = build_rm_trainer(settings, embedder).train(out / "train", None, out)
    record = _write_rm_json(out, trained, rm_kind(settings), temperature, {
        "trained_on": str(out / "train"), "selected_on": None, "calibration_pairs": len(raw_oof),
        "calibrated_on": "out-of-fold probabilities of every gold pair", "crossfit_folds": len(folds),
        "crossfit_fold_temperatures": [m.temperature for m in scorer.models] if scorer else None,
        "gold_accuracy": accuracy(raw_oof),
    })
    full = CalibratedScorer(trained, temperature, record)
    return full, scorer, pairs


def train_best_rm_crossfit(settings: Any, silver: Path, gold_rm_dir: Path, fold_of: dict[str, int], out: Path,
                           embedder: Embedder | None = None) -> CrossFitScorer:
    """The best RM for the gold replay: per fold k of the gold RM (`gold_rm_dir/folds/fold-k/train` =
    the gold minus fold k), an RM trained on `silver`, checkpoint selected and temperature fitted on
    that gold minus fold k (`train_rm`), scoring fold k's pairs only. `out/fold-k` gets each one."""
    models = []
    for k in range(max(fold_of.values()) + 1):
        rest = Path(gold_rm_dir) / "folds" / f"fold-{k}" / "train"
        models.append(train_rm(settings, silver, rest, Path(out) / f"fold-{k}", embedder))
    return CrossFitScorer(models, fold_of, f"best-crossfit({len(models)} folds)")
