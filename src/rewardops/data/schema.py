"""The preference pair: one record type for every stage of the recipe.

A pair is (conversation, chosen, rejected) plus the five preference attributes of
Skywork-Reward-V2 §3.2, the provenance of its label, and room for what later stages add
(RM probabilities, judge verdicts, the path a pair took through curation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pyarrow as pa

ROLES = ("system", "user", "assistant")


class TaskCategory(str, Enum):
    MATH = "math"
    FACTUAL = "factual"
    INSTRUCTION_FOLLOWING = "instruction_following"
    CODE = "code"
    SAFETY = "safety"
    CHAT = "chat"
    REASONING = "reasoning"
    WRITING = "writing"
    OTHER = "other"


class Objectivity(str, Enum):
    OBJECTIVE = "objective"
    SUBJECTIVE = "subjective"


class Controversiality(str, Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class LabelSource(str, Enum):
    ORIGINAL = "original"
    HUMAN = "human"
    LLM = "llm"
    FLIPPED = "flipped"


ATTRIBUTE_FIELDS = (
    "task_category",
    "objectivity",
    "controversiality",
    "desired_attributes",
    "annotation_guideline",
)
ENUM_ATTRIBUTES: dict[str, type[Enum]] = {
    "task_category": TaskCategory,
    "objectivity": Objectivity,
    "controversiality": Controversiality,
}


@dataclass
class Message:
    role: str
    content: str


@dataclass
class PreferencePair:
    """One preference pair. `chosen`/`rejected` are the final assistant turns' text."""

    id: str
    source: str
    conversation: list[Message]
    chosen: str
    rejected: str
    task_category: str | None = None
    objectivity: str | None = None
    controversiality: str | None = None
    desired_attributes: str | None = None
    annotation_guideline: str | None = None
    label_source: str = LabelSource.ORIGINAL.value
    # Known truth (the generated world only): is the listed `chosen` really the better one?
    truth_chosen_better: bool | None = None
    # What later stages add: RM probabilities, judge votes, ... keyed by name.
    scores: dict[str, float] = field(default_factory=dict)
    # The stages a pair went through, in order, e.g. ["ingest", "stage2:kept"].
    lineage: list[str] = field(default_factory=list)
    # Free-form JSON for source-specific extras (verifier data, original row numbers).
    meta: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        # Built by hand: dataclasses.asdict's deep copy was ~40% of a stage-2 scan.
        return {
            "id": self.id,
            "source": self.source,
            "conversation": [{"role": m.role, "content": m.content} for m in self.conversation],
            "chosen": self.chosen,
            "rejected": self.rejected,
            **{name: getattr(self, name) for name in ATTRIBUTE_FIELDS},
            "label_source": self.label_source,
            "truth_chosen_better": self.truth_chosen_better,
            "scores": list(self.scores.items()),
            "lineage": list(self.lineage),
            "meta": json.dumps(self.meta, sort_keys=True) if self.meta else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "PreferencePair":
        row = dict(row)
        row["conversation"] = [Message(**m) for m in row["conversation"] or []]
        scores = row.get("scores") or []
        row["scores"] = dict(scores.items() if isinstance(scores, dict) else scores)
        row["lineage"] = list(row.get("lineage") or [])
        meta = row.get("meta")
        row["meta"] = json.loads(meta) if meta else {}
        return cls(**row)

    def attributes(self) -> dict[str, str | None]:
        return {name: getattr(self, name) for name in ATTRIBUTE_FIELDS}

    def messages(self, response: str) -> list[dict[str, str]]:
        """The conversation followed by `response` as the final assistant turn."""
        return [{"role": m.role, "content": m.content} for m in self.conversation] + [
            {"role": "assistant", "content": response}
        ]

    def copy(self) -> "PreferencePair":
        """An independent copy: its lineage, scores and meta can change without touching this pair."""
        return PreferencePair(**{**self.__dict__, "lineage": list(self.lineage), "scores": dict(self.scores),
                                 "meta": dict(self.meta)})

    def flipped(self) -> "PreferencePair":
        """The same pair with chosen and rejected swapped (the paper's recycling)."""
        truth = None if self.truth_chosen_better is None else not self.truth_chosen_better
        return PreferencePair(
            **{
                **self.__dict__,
                "chosen": self.rejected,
                "rejected": self.chosen,
                "label_source": LabelSource.FLIPPED.value,
                "truth_chosen_better": truth,
                "scores": dict(self.scores),
                "lineage": [*self.lineage, "flipped"],
                "meta": dict(self.meta),
            }
        )


MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])

PAIR_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("conversation", pa.list_(MESSAGE_TYPE), nullable=False),
        pa.field("chosen", pa.string(), nullable=False),
        pa.field("rejected", pa.string(), nullable=False),
        pa.field("task_category", pa.string()),
        pa.field("objectivity", pa.string()),
        pa.field("controversiality", pa.string()),
        pa.field("desired_attributes", pa.string()),
        pa.field("annotation_guideline", pa.string()),
        pa.field("label_source", pa.string(), nullable=False),
        pa.field("truth_chosen_better", pa.bool_()),
        pa.field("scores", pa.map_(pa.string(), pa.float64())),
        pa.field("lineage", pa.list_(pa.string())),
        pa.field("meta", pa.string()),
    ],
    metadata={b"rewardops.schema": b"preference-pair/1"},
)


def pairs_to_table(pairs: list[PreferencePair]) -> pa.Table:
    return pa.Table.from_pylist([p.to_row() for p in pairs], schema=PAIR_SCHEMA)


def table_to_pairs(table: pa.Table) -> list[PreferencePair]:
    return [PreferencePair.from_row(r) for r in table.to_pylist()]
