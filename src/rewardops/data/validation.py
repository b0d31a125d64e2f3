"""Validation with quarantine: every bad row is kept, with where it came from and why.

A reader turns each raw row into a `Candidate` (messages in a neutral role vocabulary) or a
`RowError`; `check_candidate` applies the structural rules below. Nothing is dropped silently:
a rejected row goes to the quarantine file (JSONL, one object per row: source file, row number,
reason, detail and the raw row, truncated), and in strict mode the first one raises
`ValidationError` naming file, row and reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

from rewardops.data.schema import ROLES


class Reason(str, Enum):
    """Why a row was quarantined. The values are the keys of report.json's `quarantined`."""

    MISSING_CONTENT = "missing_content"  # a field or message content that is absent or None
    EMPTY_CONTENT = "empty_content"  # content that is "" or only whitespace
    IDENTICAL_RESPONSES = "identical_responses"  # chosen == rejected
    UNKNOWN_ROLE = "unknown_role"  # a role outside system/user/assistant
    BROKEN_TURN_ORDER = "broken_turn_order"  # system not first, turns not alternating, ...
    FINAL_TURN_NOT_ASSISTANT = "final_turn_not_assistant"
    PROMPT_MISMATCH = "prompt_mismatch"  # chosen and rejected disagree on the conversation
    MALFORMED_RECORD = "malformed_record"  # wrong types or a shape the format does not allow
    INVALID_UTF8 = "invalid_utf8"
    UNPARSEABLE_LINE = "unparseable_line"
    ROW_TOO_LARGE = "row_too_large"


# Rows above this many bytes (of their serialized form) are quarantined, not parsed.
DEFAULT_MAX_ROW_BYTES = 1 << 20
# How much of a bad row's raw text the quarantine file keeps.
QUARANTINE_RAW_CHARS = 4_096


class ValidationError(ValueError):
    """Raised in strict mode for the first bad row."""

    def __init__(self, source_file: str, row: int, reason: Reason, detail: str = "") -> None:
        self.source_file, self.row, self.reason, self.detail = source_file, row, reason, detail
        extra = f": {detail}" if detail else ""
        super().__init__(f"{source_file}, row {row}: {reason.value}{extra}")


@dataclass
class RowError(Exception):
    """A row that cannot become a pair; raised by readers, caught by the ingest loop."""

    reason: Reason
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value


@dataclass
class Candidate:
    """A row mapped onto the pair shape but not yet checked.

    `conversation` holds (role, content) with roles already translated into system/user/assistant
    where the format defines a translation; anything else is kept as-is so that the check can name it.
    """

    conversation: list[tuple[Any, Any]]
    chosen: Any
    rejected: Any
    extra: dict[str, Any] = field(default_factory=dict)


def _has_surrogates(text: str) -> bool:
    # Undecodable bytes (read with errors="surrogateescape") and lone "\udXXX" escapes both
    # appear as surrogate code points, which no UTF-8 encoder accepts.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_text(value: Any, what: str) -> None:
    if value is None:
        raise RowError(Reason.MISSING_CONTENT, f"{what} is missing or None")
    if not isinstance(value, str):
        raise RowError(Reason.MALFORMED_RECORD, f"{what} is a {type(value).__name__}, not a string")
    if _has_surrogates(value):
        raise RowError(Reason.INVALID_UTF8, f"{what} is not valid UTF-8")
    if not value.strip():
        raise RowError(Reason.EMPTY_CONTENT, f"{what} is empty")


def check_turn_order(roles: list[str]) -> None:
    """The conversation before the final answer: [system], user, assistant, user, ..., user."""
    for i, role in enumerate(roles):
        if role not in ROLES:
            raise RowError(Reason.UNKNOWN_ROLE, f"turn {i} has role {role!r}")
    turns = roles[1:] if roles and roles[0] == "system" else roles
    if not turns:
        raise RowError(Reason.BROKEN_TURN_ORDER, "no user turn before the answer")
    for i, role in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            raise RowError(Reason.BROKEN_TURN_ORDER, f"turn {i + len(roles) - len(turns)} is {role!r}, expected {expected!r}")
    if turns[-1] != "user":
        raise RowError(Reason.BROKEN_TURN_ORDER, "the conversation does not end with a user turn")


def check_candidate(c: Candidate) -> None:
    """Raise RowError for the first rule the candidate breaks."""
    roles: list[str] = []
    for i, (role, content) in enumerate(c.conversation):
        if not isinstance(role, str):
            raise RowError(Reason.MALFORMED_RECORD, f"turn {i} has no role")
        roles.append(role)
        _check_text(content, f"turn {i} ({role}) content")
    check_turn_order(roles)
    _check_text(c.chosen, "chosen")
    _check_text(c.rejected, "rejected")
    if c.chosen == c.rejected:
        raise RowError(Reason.IDENTICAL_RESPONSES, "chosen and rejected are the same text")


class Quarantine:
    """Appends bad rows to a JSONL file; raises instead when strict."""

    def __init__(self, path: str | Path, strict: bool = False) -> None:
        self.path = Path(path)
        self.strict = strict
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "w", encoding="utf-8")

    def add(self, source_file: str, row: int, error: RowError, raw: Any = None) -> None:
        if self.strict:
            raise ValidationError(source_file, row, error.reason, error.detail)
        assert self._fh is not None, "quarantine file already closed"
        self._fh.write(json.dumps(quarantine_record(source_file, row, error, raw), ensure_ascii=True) + "\n")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "Quarantine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quarantine_record(source_file: str, row: int, error: RowError, raw: Any) -> dict[str, Any]:
    if raw is None:
        text = None
    elif isinstance(raw, bytes):
        text = raw.decode("utf-8", errors="backslashreplace")
    elif isinstance(raw, str):
        text = raw
    else:
        text = json.dumps(raw, ensure_ascii=True, default=str)
    truncated = text is not None and len(text) > QUARANTINE_RAW_CHARS
    if text is not None:
        # Surrogates would make the quarantine file itself invalid UTF-8.
        text = text[:QUARANTINE_RAW_CHARS].encode("utf-8", errors="backslashreplace").decode("utf-8")
    return {
        "source_file": source_file,
        "row": row,
        "reason": error.reason.value,
        "detail": error.detail,
        "raw": text,
        "raw_truncated": truncated,
    }
