"""Fixtures for curation tests: a tiny preference world with known truth, and cheap models."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from rewardops.data.schema import Message, PreferencePair

TOPICS = [
    ("python list comprehensions", "code", "objective", "low"),
    ("binary search", "code", "objective", "low"),
    ("photosynthesis", "factual", "objective", "low"),
    ("the French revolution", "factual", "objective", "medium"),
    ("compound interest", "math", "objective", "low"),
    ("prime numbers", "math", "objective", "low"),
    ("writing a cover letter", "writing", "subjective", "low"),
    ("a birthday poem", "writing", "subjective", "low"),
    ("whether to adopt a cat", "chat", "subjective", "medium"),
    ("the ethics of zoos", "chat", "subjective", "high"),
]
GOOD = [
    "Here is a clear and correct explanation of {t}, step by step, with a worked example and a short summary.",
    "Sure. {t} works as follows: first the key idea, then a concrete example, then a caveat worth knowing.",
    "A precise answer about {t}: the definition, a correct example, and a note on common mistakes.",
]
BAD = [
    "idk, {t} is kind of a thing i guess. whatever.",
    "{t}? not sure, maybe look it up somewhere, it is complicated lol.",
    "No idea honestly. {t} is boring and i will not explain it.",
]


def toy_pairs(n: int, noise: float = 0.0, seed: int = 0, prefix: str = "p") -> list[PreferencePair]:
    """n pairs over 10 topics; chosen is truly better, except a `noise` fraction stored flipped
    (truth_chosen_better=False), like the generated world with injected label noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic, cat, obj, con = TOPICS[i % len(TOPICS)]
        good = rng.choice(GOOD).format(t=topic)
        bad = rng.choice(BAD).format(t=topic)
        pair = PreferencePair(
            id=f"{prefix}{i:05d}", source="toy", conversation=[Message("user", f"Please explain {topic}. (q{i})")],
            chosen=good, rejected=bad, task_category=cat, objectivity=obj, controversiality=con,
            desired_attributes=f"A correct, clear explanation of {topic}.",
            annotation_guideline="Prefer the response that actually explains the topic correctly.",
            truth_chosen_better=True,
        )
        if rng.random() < noise:
            pair = pair.flipped()
            pair.label_source = "original"
            pair.lineage = []
        out.append(pair)
    return out


class TableScorer:
    """A `RewardScorer` that returns fixed probabilities by pair id (tests the routing rules)."""

    def __init__(self, table: dict[str, float], name: str = "table", fail_after: int | None = None) -> None:
        self.table = table
        self.name = name
        self.calls = 0
        self.fail_after = fail_after

    def score_pairs(self, pairs: Sequence[PreferencePair]) -> list[float]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("injected crash")
        return [self.table[p.id] for p in pairs]


@pytest.fixture(scope="session")
def embedder():
    import torch

    torch.set_num_threads(1)
    from rewardops.curation.retrieval import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()
