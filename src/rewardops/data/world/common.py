"""Shared pieces of the preference world: the draft record, word pools and the phrasing spinner."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from random import Random
from typing import Any, Protocol, Sequence, TypeVar

T = TypeVar("T")

# The six world families. Five map 1:1 onto TaskCategory values; style traps are math or
# factual questions (their task_category says which) with a wrong, longer, markdown-heavy
# rejected answer, as in RM-Bench's hard setting. `meta["family"]` names the family.
FAMILIES = ("math", "factual", "instruction_following", "code", "safety", "style_trap")


@dataclass
class Draft:
    """One generated pair before ids, conversation wrapping and label noise."""

    prompt: str
    chosen: str  # the truly better response
    rejected: str
    task_category: str
    objectivity: str
    controversiality: str
    desired_attributes: str
    annotation_guideline: str
    template: str  # e.g. "math/word/07": which prompt template made it
    group: str  # the underlying item (a fact, a function, a request): the split unit
    verifier: dict[str, Any] = field(default_factory=dict)


class FamilyBuilder(Protocol):
    def __call__(self, rng: Random, controversiality: str) -> Draft: ...


_SPIN = re.compile(r"\[([^\[\]]*\|[^\[\]]*)\]")


def spin(rng: Random, text: str) -> str:
    """Replace every `[a|b|c]` with one of its options (no nesting; `[1, 2]` is left alone)."""
    return _SPIN.sub(lambda m: rng.choice(m.group(1).split("|")), text)


def pick(rng: Random, options: Sequence[T]) -> T:
    return options[int(rng.random() * len(options))]


def pick_index(rng: Random, options: Sequence[Any]) -> int:
    return int(rng.random() * len(options))


def weighted(rng: Random, table: dict[str, float]) -> str:
    u = rng.random() * sum(table.values())
    for key, w in table.items():
        u -= w
        if u < 0:
            return key
    return key


def cap_first(text: str) -> str:
    return text[:1].upper() + text[1:]


NAMES = (
    "Aisha", "Ben", "Carlos", "Dana", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jamal",
    "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq",
    "Uma", "Viktor", "Wei", "Ximena", "Yusuf", "Zoe", "Amara", "Bjorn", "Chloe", "Dmitri",
    "Esther", "Felix", "Gita", "Hamza", "Isla", "Jonas", "Keiko", "Liam", "Maya", "Nikos",
    "Olga", "Pablo", "Rania", "Sofia", "Tomas", "Valentina", "Wanjiru", "Yara", "Zainab", "Arjun",
)

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a concise and accurate assistant.",
    "You are a friendly AI assistant. Answer the user's questions carefully.",
    "You are an assistant that follows instructions precisely.",
    "Be helpful, honest and harmless.",
    "You are a knowledgeable tutor.",
)

OPENERS = (
    ("Hi there!", "Hello! How can I help you today?"),
    ("Hey, can I ask you something?", "Of course, go ahead."),
    ("Good morning.", "Good morning! What can I do for you?"),
    ("I have a question for you.", "Sure, I'm happy to help. What is it?"),
)
