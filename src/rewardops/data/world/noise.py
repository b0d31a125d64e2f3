"""The label-noise model: which share of each kind of pair has its label flipped.

Rates differ by family and by controversiality: style traps and contested safety questions
are where real annotators disagree or get fooled, clean arithmetic is where they rarely do.
The relative weights below are fixed; `flip_rate_table(noise)` scales them so the mean flip
rate over the world's mixture equals `noise` (capped at 1 per cell). Curation stages can use
the table, or the per-pair `meta["flip_rate"]`, to measure precision and recall per cell.
"""

from __future__ import annotations

import functools

# The world's mixture: P(family), then P(controversiality | family). Family builders honour
# the controversiality they are given, so these are exact, not estimates.
FAMILY_WEIGHTS: dict[str, float] = {
    "math": 0.20, "factual": 0.20, "instruction_following": 0.18, "code": 0.12,
    "safety": 0.15, "style_trap": 0.15,
}
CONTROVERSIALITY_MIX: dict[str, dict[str, float]] = {
    "math": {"low": 0.8, "medium": 0.2},
    "factual": {"low": 0.8, "medium": 0.2},
    "instruction_following": {"low": 0.7, "medium": 0.3},
    "code": {"low": 0.5, "medium": 0.5},
    "safety": {"low": 0.6, "medium": 0.25, "high": 0.15},
    "style_trap": {"medium": 0.4, "high": 0.6},
}

# Relative flip propensity. Documented table (rate = k * family weight * controversiality weight):
#
#   family                 weight    controversiality  weight
#   math                    0.6      low               1.0
#   factual                 0.8      medium            1.8
#   instruction_following   1.0      high              3.0
#   code                    0.7
#   safety                  1.3
#   style_trap              2.0
FAMILY_NOISE_WEIGHT: dict[str, float] = {
    "math": 0.6, "factual": 0.8, "instruction_following": 1.0, "code": 0.7, "safety": 1.3, "style_trap": 2.0,
}
CONTROVERSIALITY_NOISE_WEIGHT: dict[str, float] = {"low": 1.0, "medium": 1.8, "high": 3.0}


def _cells() -> list[tuple[str, str, float, float]]:
    return [
        (fam, c, FAMILY_WEIGHTS[fam] * share, FAMILY_NOISE_WEIGHT[fam] * CONTROVERSIALITY_NOISE_WEIGHT[c])
        for fam, mix in CONTROVERSIALITY_MIX.items() for c, share in mix.items()
    ]


def flip_rate_table(noise: float) -> dict[str, dict[str, float]]:
    """family -> controversiality -> flip probability, with mixture mean exactly `noise`."""
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must be a mean flip rate in [0, 1], got {noise!r}")
    table: dict[str, dict[str, float]] = {}
    for fam, c, rate in _solve(float(noise)):
        table.setdefault(fam, {})[c] = rate
    return table


@functools.lru_cache(maxsize=32)
def _solve(noise: float) -> tuple[tuple[str, str, float], ...]:
    cells = _cells()

    def mean(k: float) -> float:
        return sum(p * min(1.0, k * w) for _, _, p, w in cells)

    lo, hi = 0.0, 1.0 / min(w for *_, w in cells)  # at hi every cell is capped at 1
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean(mid) < noise else (lo, mid)
    k = 0.0 if noise == 0 else (lo + hi) / 2 if noise < 1 else 1.0 / min(w for *_, w in cells)
    return tuple((fam, c, min(1.0, k * w)) for fam, c, _, w in cells)


def family_flip_rates(noise: float) -> dict[str, float]:
    """Expected flip rate per family (averaged over its controversiality mix)."""
    table = flip_rate_table(noise)
    return {fam: sum(share * table[fam][c] for c, share in mix.items()) for fam, mix in CONTROVERSIALITY_MIX.items()}


# The table at the default noise level, for reference and documentation.
DEFAULT_FLIP_RATES = flip_rate_table(0.1)

# The demo's world (`make demo`): a quarter of the labels flipped, as much noise as the real-data
# benches inject, so that what curation buys shows in the ablation (paper §4.3).
DEMO_WORLD_NOISE = 0.25
