"""Small real preference pairs for the fault-injection suite."""

from __future__ import annotations

import random

from rewardops.data.schema import Message, PreferencePair


def arithmetic_pairs(n: int, seed: int = 0) -> list[PreferencePair]:
    """Pairs with varied lengths; the chosen answer is right, the rejected one wrong."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        filler = " ".join(rng.choice(["please", "explain", "briefly", "the", "sum"]) for _ in range(rng.randint(0, 20)))
        out.append(PreferencePair(
            id=f"f{seed}-{i}", source="faults", conversation=[Message("user", f"What is {a} + {b}? {filler}".strip())],
            chosen=f"The answer is {a + b}." + " Here is why." * rng.randint(0, 5),
            rejected=f"The answer is {a + b + rng.randint(1, 9)}." + " Trust me." * rng.randint(0, 5),
        ))
    return out
