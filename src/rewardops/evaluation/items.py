"""The records every benchmark loader produces and every scorer consumes.

One prompt with its candidate responses is an `EvalItem`, whatever the benchmark: a RewardBench
pair is two responses, a RewardBench-2 row four (or more), an RM-Bench row six, a PPE-Correctness
row 32. The engine scores every (item, response) once; the benchmark's scorer then reads the
scores back in response order, together with the item's `meta` (labels, correctness bits, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from rewardops.errors import DataError


@dataclass(frozen=True)
class EvalItem:
    id: str
    subset: str
    prompt: tuple[dict[str, str], ...]  # the conversation before the scored assistant turn
    responses: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def messages(self, index: int) -> list[dict[str, str]]:
        return [*self.prompt, {"role": "assistant", "content": self.responses[index]}]

    def key(self, index: int) -> str:
        """The example id the score cache is keyed by."""
        return f"{self.id}#{index}"


@dataclass(frozen=True)
class Quarantined:
    """A malformed record that was skipped: where it is and why."""

    file: str
    row: int  # 0-based index of the record in its file (line number - 1 for JSONL)
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}: {self.reason}"


@dataclass
class LoadedBenchmark:
    items: list[EvalItem]
    quarantined: list[Quarantined] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "math_filtered.json absent"


class MalformedRecord(DataError):
    """Raised by a record parser; the loader turns it into a `Quarantined` entry."""


class MissingBenchmarkData(DataError, FileNotFoundError):
    """A benchmark's files are not where they were looked for."""


def prompt_from_text(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


def require_str(record: dict[str, Any], name: str, allow_empty: bool = False) -> str:
    value = record.get(name)
    if not isinstance(value, str):
        raise MalformedRecord(f"field {name!r} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise MalformedRecord(f"field {name!r} is empty")
    return value


def require_str_list(record: dict[str, Any], name: str, min_len: int = 1) -> list[str]:
    value = record.get(name)
    if not isinstance(value, list) or len(value) < min_len:
        raise MalformedRecord(f"field {name!r} must be a list of at least {min_len} strings")
    if not all(isinstance(v, str) for v in value):
        raise MalformedRecord(f"field {name!r} must hold only strings")
    return list(value)


def conversation(value: Any, name: str = "conversation") -> tuple[dict[str, str], ...]:
    """A list of {role, content} turns (extra keys such as RMB's `language` are dropped)."""
    if not isinstance(value, list) or not value:
        raise MalformedRecord(f"field {name!r} must be a non-empty list of turns")
    turns = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict) or not isinstance(turn.get("content"), str):
            raise MalformedRecord(f"{name}[{i}] has no string 'content'")
        role = turn.get("role")
        if role not in ("system", "user", "assistant"):
            raise MalformedRecord(f"{name}[{i}] has role {role!r}")
        turns.append({"role": role, "content": turn["content"]})
    if turns[-1]["role"] != "user":
        raise MalformedRecord(f"{name} must end with a user turn, ends with {turns[-1]['role']!r}")
    return tuple(turns)


def unique_ids(items: Iterable[EvalItem]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"duplicate item id {item.id!r}")
        seen.add(item.id)
