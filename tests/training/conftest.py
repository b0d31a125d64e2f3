"""Fixtures for the training tests: tiny preference datasets written as real Parquet shards."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from rewardops.data.schema import Message, PreferencePair
from rewardops.data.shards import write_pairs

CATEGORIES = ("math", "code", "chat", "safety")


def make_pairs(n: int, seed: int = 0, long_every: int = 0) -> list[PreferencePair]:
    """Pairs with varied lengths; the chosen answer is right, the rejected one wrong."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        filler = " ".join(rng.choice(["please", "explain", "briefly", "the", "sum", "of"]) for _ in range(rng.randint(0, 25)))
        if long_every and i % long_every == 0:
            filler += " word" * 400
        prompt = f"What is {a} + {b}? {filler}".strip()
        good = f"The answer is {a + b}." + " Here is why." * rng.randint(0, 6)
        bad = f"The answer is {a + b + rng.randint(1, 9)}." + " Trust me." * rng.randint(0, 6)
        out.append(
            PreferencePair(
                id=f"p{seed}-{i}",
                source="test",
                conversation=[Message("user", prompt)],
                chosen=good,
                rejected=bad,
                task_category=CATEGORIES[i % len(CATEGORIES)],
            )
        )
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs")
    write_pairs(make_pairs(48, seed=1), path, shard_size=20)
    return path


@pytest.fixture(scope="session")
def eval_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("eval_pairs")
    write_pairs(make_pairs(16, seed=2), path)
    return path
