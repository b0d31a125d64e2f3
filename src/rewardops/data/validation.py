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
from rewardops.errors import DataError


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
    NUL_CHARACTER = "nul_character"  # a NUL (U+0000) inside a text
    TOO_DEEPLY_NESTED = "too_deeply_nested"  # a record nested deeper than MAX_NESTING
    DUPLICATE_ID = "duplicate_id"  # a pair id already written by this run (from another source)


# Rows above this many bytes (of their serialized form) are quarantined, not parsed.
DEFAULT_MAX_ROW_BYTES = 1 << 20
# How much of a bad row's raw text the quarantine file keeps.
QUARANTINE_RAW_CHARS = 4_096
# Records nested deeper than this (objects/lists inside each other) are quarantined.
MAX_NESTING = 64
_BLANK_RE = r"^[\s\x0b\x1c-\x1f\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]*$"


class ValidationError(DataError):
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
    if "\x00" in value:
        raise RowError(Reason.NUL_CHARACTER, f"{what} contains a NUL character")
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


def nesting_depth(value: Any) -> int:
    """How deeply lists and dicts nest inside `value` (0 for a scalar); iterative, so a hostile
    record cannot exhaust the stack, and it stops as soon as MAX_NESTING is passed."""
    if not isinstance(value, (dict, list, tuple)):
        return 0
    deepest = 0
    stack = [(value, 1)]
    containers = (dict, list, tuple)
    while stack:
        v, d = stack.pop()
        if d > deepest:
            deepest = d
            if d > MAX_NESTING:
                return d
        for x in (v.values() if isinstance(v, dict) else v):
            if isinstance(x, containers):
                stack.append((x, d + 1))
    return deepest


def check_nesting(record: Any) -> None:
    if nesting_depth(record) > MAX_NESTING:
        raise RowError(Reason.TOO_DEEPLY_NESTED, f"nested deeper than {MAX_NESTING} levels")


def _check_label(value: Any, what: str, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not value:
        raise RowError(Reason.MALFORMED_RECORD, f"{what} must be a non-empty string, not {value!r:.40}")
    if _has_surrogates(value):
        raise RowError(Reason.INVALID_UTF8, f"{what} is not valid UTF-8")
    if "\x00" in value:
        raise RowError(Reason.NUL_CHARACTER, f"{what} contains a NUL character")


def check_pair(pair: Any) -> None:
    """THE structural check of a preference pair: raise `RowError` for the first rule it breaks.

    Every entry applies it: `ingest` (on each pair it builds), `preprocess` (vectorised as
    `check_table`, which is tested to flag exactly the rows this rejects), and curation or training
    code that takes pairs from elsewhere. Rules: id and source are non-empty strings; the
    conversation is [system], user, assistant, ..., user with known roles and non-empty text;
    chosen and rejected are non-empty text and differ; every text is valid UTF-8 without NUL;
    label_source is a string, scores map names to numbers, lineage is a list of strings and meta
    is JSON-serialisable.
    """
    conversation = getattr(pair, "conversation", None)
    if not isinstance(conversation, list):
        raise RowError(Reason.MALFORMED_RECORD, "conversation must be a list of messages")
    turns = [(getattr(m, "role", None), getattr(m, "content", None)) for m in conversation]
    check_candidate(Candidate(turns, getattr(pair, "chosen", None), getattr(pair, "rejected", None)))
    check_pair_fields(pair)


def check_pair_fields(pair: Any) -> None:
    """The part of `check_pair` beyond the texts and turns (`check_candidate`): readers that have
    already run `check_candidate` on a row finish its `check_pair` with this."""
    _check_label(getattr(pair, "id", None), "id")
    _check_label(getattr(pair, "source", None), "source")
    _check_label(getattr(pair, "label_source", None), "label_source")
    for name in ("task_category", "objectivity", "controversiality", "desired_attributes", "annotation_guideline"):
        value = getattr(pair, name, None)
        if value is not None:
            if not isinstance(value, str):
                raise RowError(Reason.MALFORMED_RECORD, f"{name} must be a string or None")
            if _has_surrogates(value) or "\x00" in value:
                raise RowError(Reason.INVALID_UTF8 if _has_surrogates(value) else Reason.NUL_CHARACTER, f"{name} is not clean text")
    truth = getattr(pair, "truth_chosen_better", None)
    if truth is not None and not isinstance(truth, bool):
        raise RowError(Reason.MALFORMED_RECORD, "truth_chosen_better must be true, false or null")
    scores = getattr(pair, "scores", {})
    if not isinstance(scores, dict) or not all(
        isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in scores.items()
    ):
        raise RowError(Reason.MALFORMED_RECORD, "scores must map names to numbers")
    lineage = getattr(pair, "lineage", [])
    if not isinstance(lineage, list) or not all(isinstance(x, str) for x in lineage):
        raise RowError(Reason.MALFORMED_RECORD, "lineage must be a list of strings")
    meta = getattr(pair, "meta", {})
    if not isinstance(meta, dict):
        raise RowError(Reason.MALFORMED_RECORD, "meta must be an object")
    check_nesting(meta)
    try:
        json.dumps(meta, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as e:
        raise RowError(Reason.MALFORMED_RECORD, f"meta is not clean JSON: {e}") from None


def check_table(table: Any) -> list[tuple[int, RowError]]:
    """`check_pair` over a PAIR_SCHEMA Arrow table: (row index, error) of every failing row.

    A vectorised pass flags every row that could fail (a superset); each flagged row is then
    checked exactly by `check_pair`, so the verdicts are `check_pair`'s own."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from rewardops.data.schema import PreferencePair

    n = table.num_rows
    if n == 0:
        return []
    flag = np.zeros(n, dtype=bool)

    def col(name: str) -> Any:
        c = table.column(name)
        return c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c

    def bad_text(arr: Any) -> np.ndarray:
        arr = arr.cast(pa.string())
        nul = pc.fill_null(pc.match_substring(arr, "\x00"), True)
        # only whitespace by Python's str.isspace (RE2's \s is ASCII only, so the rest is listed)
        blank = pc.fill_null(pc.match_substring_regex(arr, _BLANK_RE), True)
        return nul.to_numpy(zero_copy_only=False) | blank.to_numpy(zero_copy_only=False)

    for name in ("id", "source", "label_source", "chosen", "rejected"):
        flag |= bad_text(col(name))
    flag |= pc.fill_null(pc.equal(col("chosen").cast(pa.string()), col("rejected").cast(pa.string())), True).to_numpy(zero_copy_only=False)
    conv = col("conversation")
    if conv.null_count:
        flag |= conv.is_null().to_numpy(zero_copy_only=False)
        conv = pc.fill_null(conv, pa.scalar([], conv.type))
    offsets = conv.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    turns = conv.flatten()
    if len(turns):
        turn_row = np.repeat(np.arange(n), lengths)
        bad_turn = bad_text(turns.field("content"))
        roles = turns.field("role")
        is_sys = pc.fill_null(pc.equal(roles, "system"), False).to_numpy(zero_copy_only=False)
        is_user = pc.fill_null(pc.equal(roles, "user"), False).to_numpy(zero_copy_only=False)
        is_asst = pc.fill_null(pc.equal(roles, "assistant"), False).to_numpy(zero_copy_only=False)
        pos = np.arange(len(turns)) - offsets[:-1][turn_row]
        starts_sys = np.zeros(n, dtype=bool)
        first = offsets[:-1][lengths > 0]
        starts_sys[lengths > 0] = is_sys[first]
        k = pos - starts_sys[turn_row]  # position after an opening system turn
        expected_user = (k % 2) == 0
        ok_turn = np.where(k < 0, is_sys, np.where(expected_user, is_user, is_asst))
        bad_turn |= ~ok_turn
        flag[turn_row[bad_turn]] = True
        last_user = np.zeros(n, dtype=bool)
        has = lengths > 0
        last_user[has] = is_user[offsets[1:][has] - 1]
        flag |= ~last_user  # empty conversation, only a system turn, or not ending with a user turn
    else:
        flag[:] = True
    for name in ("task_category", "objectivity", "controversiality", "desired_attributes", "annotation_guideline", "meta"):
        c = col(name).cast(pa.string())
        flag |= pc.fill_null(pc.match_substring(c, "\x00"), False).to_numpy(zero_copy_only=False)
    # meta nested deeper than MAX_NESTING has more opening brackets than that
    brackets = pc.fill_null(pc.count_substring_regex(col("meta").cast(pa.string()), r"[\[{]"), 0)
    flag |= pc.greater(brackets, MAX_NESTING).to_numpy(zero_copy_only=False)
    errors = []
    rows = np.flatnonzero(flag).tolist()
    if rows:
        picked = table.take(pa.array(rows)).to_pylist()
        for i, row in zip(rows, picked):
            try:
                pair = PreferencePair.from_row(row)
            except (TypeError, ValueError, KeyError) as e:
                errors.append((i, RowError(Reason.MALFORMED_RECORD, f"not a pair row: {e}")))
                continue
            try:
                check_pair(pair)
            except RowError as err:
                errors.append((i, err))
    return errors


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
