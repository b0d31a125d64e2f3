"""The Bradley-Terry loss, with the optional margin and reward-centering terms (off by default).

L = -log sigma(r_chosen - r_rejected - margin) + c * mean((r_chosen + r_rejected)^2)

The paper trains with the plain BT term only (paper §4.1). The margin term follows OpenRLHF /
Llama-2 (a per-pair margin subtracted inside the sigmoid); reward centering follows TRL's
`center_rewards_coefficient`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class PairStats:
    """Sums over pairs (divide by `pairs` for means), so micro-batches and ranks add up exactly."""

    pairs: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    margin_sum: float = 0.0
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0

    def add(self, other: "PairStats") -> None:
        for name in ("pairs", "loss_sum", "correct", "margin_sum", "reward_sum", "reward_sq_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor(
            [self.pairs, self.loss_sum, self.correct, self.margin_sum, self.reward_sum, self.reward_sq_sum],
            dtype=torch.float64,
        )

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> "PairStats":
        v = t.tolist()
        return cls(int(v[0]), *v[1:])

    def summary(self) -> dict[str, float]:
        n = max(self.pairs, 1)
        mean = self.reward_sum / (2 * n)
        var = max(self.reward_sq_sum / (2 * n) - mean * mean, 0.0)
        return {
            "loss": self.loss_sum / n,
            "accuracy": self.correct / n,
            "margin": self.margin_sum / n,
            "reward_mean": mean,
            "reward_std": var**0.5,
        }


def bradley_terry_loss(
    rewards: torch.Tensor,  # (n_pairs, 2): chosen, rejected
    margins: torch.Tensor | None = None,
    center_rewards_coef: float = 0.0,
) -> tuple[torch.Tensor, PairStats]:
    """Per-pair losses summed (the caller normalises by the global pair count) and their stats."""
    chosen, rejected = rewards[:, 0], rewards[:, 1]
    diff = chosen - rejected
    logits = diff - margins.to(diff) if margins is not None else diff
    per_pair = -F.logsigmoid(logits)
    if center_rewards_coef:
        per_pair = per_pair + center_rewards_coef * (chosen + rejected).pow(2)
    with torch.no_grad():
        stats = PairStats(
            pairs=int(rewards.shape[0]),
            loss_sum=float(per_pair.detach().sum()),
            correct=float((diff > 0).sum()) + 0.5 * float((diff == 0).sum()),
            margin_sum=float(diff.sum()),
            reward_sum=float(rewards.sum()),
            reward_sq_sum=float(rewards.pow(2).sum()),
        )
    return per_pair.sum(), stats
