"""Readers: real preference-data formats mapped onto `PreferencePair`.

Two layers:
- *containers* yield `RawRow`s (one record, or the error that stopped it) from a local JSON list,
  JSONL (optionally .gz), Parquet file, or a Hugging Face `datasets` id, with 1-based row numbers
  (the line number for JSONL, the record position otherwise). Memory is bounded on hostile
  input: JSON and JSONL are streamed (never read whole), compressed files are refused past a
  decompressed-byte cap (`decompressed_cap`), and a Parquet row's size is measured from its
  Arrow buffers before any Python object is made of it;
- *formats* map one record onto a `Candidate`: `hh-rlhf` transcripts, `conversational`
  (TRL / UltraFeedback / Skywork-Reward-Preference message lists), `sharegpt` (LLaMA-Factory),
  `plain` prompt/chosen/rejected strings, and `pairs` (RewardOps' own shards).

The format is detected from the first records of each source unless it is named.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from rewardops.data.schema import LabelSource, Message, PreferencePair
from rewardops.data.validation import (
    DEFAULT_MAX_ROW_BYTES,
    MAX_NESTING,
    Candidate,
    Reason,
    RowError,
    check_candidate,
    check_pair_fields,
    nesting_depth,
)
from rewardops.errors import DataError, NotFoundError


@dataclass
class RawRow:
    source_file: str
    row: int
    record: dict[str, Any] | None = None
    error: RowError | None = None
    raw: Any = None  # what the quarantine file keeps when the row is bad


# --------------------------------------------------------------------------- containers

LOCAL_SUFFIXES = (".jsonl.gz", ".jsonl", ".json.gz", ".json", ".parquet")
RUN_OUTPUTS = frozenset({"report.json", "quarantine.jsonl", "dropped.jsonl", "_manifest.json"})  # never read as data
SHARD_NAME = re.compile(r"part-\d+\.parquet")


def is_local(src: str | Path) -> bool:
    p = Path(src)
    return p.exists() or str(src).endswith(LOCAL_SUFFIXES) or str(src).startswith((".", "/"))


def source_name(src: str | Path) -> str:
    """A short, stable name for a source: `parent/stem` for files, `id:split` for the hub."""
    if not is_local(src):
        name, split = split_hub_id(str(src))
        return f"{name}:{split}"
    p = Path(src)
    if p.is_dir() or SHARD_NAME.fullmatch(p.name):  # a RewardOps dataset: its folder names it
        return p.resolve().name if p.is_dir() else p.resolve().parent.name
    return file_tag(p)


def file_tag(path: Path) -> str:
    """`parent/stem` of a data file, unique enough to prefix row ids."""
    stem = path.name
    for suffix in LOCAL_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return f"{path.parent.name}/{stem}" if path.parent.name else stem


class SourceFault(DataError):
    """A file-level fault (corrupt or truncated compression, unreadable Parquet, an undecodable
    encoding, broken JSON structure): it names the file and the last row read before it."""

    def __init__(self, source_file: str, last_row: int, detail: str) -> None:
        self.source_file, self.last_row, self.detail = source_file, last_row, detail
        where = f"after row {last_row} (the last good row)" if last_row else "before its first row"
        super().__init__(f"{source_file}: {detail}, {where}")


# A compressed file may expand to at most max(MIN_DECOMPRESSED_CAP, MAX_EXPANSION x its size)
# before it is refused as a decompression bomb (real JSON text compresses 3-15x).
MAX_EXPANSION = 100
MIN_DECOMPRESSED_CAP = 64 << 20
JSON_CHUNK_CHARS = 1 << 16  # how much decoded JSON text is read at a time


class DecompressionLimit(DataError):
    """A compressed file that expands past its cap (a decompression bomb, or a cap to raise)."""


def decompressed_cap(path: Path, max_decompressed_bytes: int | None = None) -> int:
    """The decompressed bytes a compressed `path` may expand to (see MAX_EXPANSION)."""
    if max_decompressed_bytes is not None:
        return max_decompressed_bytes
    return max(MIN_DECOMPRESSED_CAP, MAX_EXPANSION * path.stat().st_size)


class _CappedStream(io.RawIOBase):
    """The decompressed bytes of `inner`, refused (DecompressionLimit) past `cap` bytes."""

    def __init__(self, inner: IO[bytes], cap: int, src: str) -> None:
        self.inner, self.cap, self.src, self.total = inner, cap, src, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(min(len(buffer), self.cap + 1 - self.total))
        self.total += len(data)
        if self.total > self.cap:
            raise DecompressionLimit(
                f"decompresses to more than {self.cap} bytes (a decompression bomb?); "
                f"if the file is genuine, raise max_decompressed_bytes or decompress it yourself"
            )
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.inner.close()
        super().close()


def _open_binary(path: Path, max_decompressed_bytes: int | None = None) -> IO[bytes]:
    """The bytes of a data file; a `.gz` file is decompressed as a stream, capped (decompressed_cap)."""
    if path.name.endswith(".gz"):
        capped = _CappedStream(gzip.open(path, "rb"), decompressed_cap(path, max_decompressed_bytes), str(path))
        return io.BufferedReader(capped, 1 << 16)  # type: ignore[return-value]
    return open(path, "rb")


# Byte-order marks, longest first (UTF-32 LE starts with UTF-16 LE's mark).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def detect_encoding(path: Path) -> str:
    """utf-8 (no mark), utf-8-sig, utf-16 or utf-32 (with a byte-order mark); anything else is a
    per-file error: UTF-16/32 without a mark would be misread row by row."""
    with _open_binary(path) as fh:
        head = fh.read(4096)
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if b"\x00" in head:
        raise SourceFault(str(path), 0, "looks like UTF-16 or UTF-32 without a byte-order mark (NUL bytes); "
                                        "re-save it as UTF-8 (or with a byte-order mark)")
    return "utf-8"


def _read_line(fh: IO[bytes], limit: int) -> tuple[bytes, bool]:
    """One line, at most `limit` bytes kept; (b"", False) at EOF. The flag says it was longer."""
    line = fh.readline(limit + 1)
    if len(line) <= limit or line.endswith(b"\n"):
        return line, False
    while True:  # skip the rest of an oversized line without holding it
        rest = fh.readline(1 << 20)
        if not rest or rest.endswith(b"\n"):
            return line, True


def _read_text_line(fh: IO[str], limit: int) -> tuple[str, bool]:
    line = fh.readline(limit + 1)
    if len(line) <= limit or line.endswith("\n"):
        return line, False
    while True:
        rest = fh.readline(1 << 20)
        if not rest or rest.endswith("\n"):
            return line, True


def _parse_record(text: str, source_file: str, row: int, raw: Any) -> RawRow:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        return RawRow(source_file, row, error=RowError(Reason.UNPARSEABLE_LINE, str(e)), raw=raw)
    except RecursionError:
        return RawRow(source_file, row, error=RowError(Reason.TOO_DEEPLY_NESTED, "nested too deeply to parse"), raw=raw)
    return _as_record(record, source_file, row, raw)


def _as_record(record: Any, source_file: str, row: int, raw: Any) -> RawRow:
    if not isinstance(record, dict):
        err = RowError(Reason.MALFORMED_RECORD, f"a row must be an object, got {type(record).__name__}")
        return RawRow(source_file, row, error=err, raw=raw)
    # a JSON text with at most MAX_NESTING opening brackets cannot nest deeper: skip the walk
    shallow = isinstance(raw, (str, bytes)) and raw.count("[" if isinstance(raw, str) else b"[") + raw.count("{" if isinstance(raw, str) else b"{") <= MAX_NESTING
    if not shallow and nesting_depth(record) > MAX_NESTING:
        err = RowError(Reason.TOO_DEEPLY_NESTED, f"nested deeper than {MAX_NESTING} levels")
        return RawRow(source_file, row, error=err, raw=None if raw is record else raw)
    return RawRow(source_file, row, record=record, raw=raw if raw is not None else record)


def iter_jsonl(path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, encoding: str | None = None,
               max_decompressed_bytes: int | None = None) -> Iterator[RawRow]:
    """JSONL rows, streamed; blank lines carry no row and are skipped (line numbers still count).
    UTF-8 is read line by line as bytes (a bad line is quarantined); UTF-16/32 with a byte-order
    mark are decoded as a stream."""
    src = str(path)
    encoding = encoding or detect_encoding(path)
    if encoding in ("utf-16", "utf-32"):
        with _open_binary(path, max_decompressed_bytes) as raw_fh, io.TextIOWrapper(raw_fh, encoding=encoding, newline="") as fh:
            lineno = 0
            while True:
                line, too_long = _read_text_line(fh, max_row_bytes)
                if not line:
                    return
                lineno += 1
                if too_long:
                    yield RawRow(src, lineno, error=RowError(Reason.ROW_TOO_LARGE, f"line longer than {max_row_bytes} characters"),
                                 raw=line[:1024])
                    continue
                if line.strip():
                    yield _parse_record(line, src, lineno, line)
        return
    with _open_binary(path, max_decompressed_bytes) as fh:
        lineno = 0
        while True:
            line, too_long = _read_line(fh, max_row_bytes)
            if not line:
                return
            lineno += 1
            if lineno == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8):]
            if too_long:
                err = RowError(Reason.ROW_TOO_LARGE, f"line longer than {max_row_bytes} bytes")
                yield RawRow(src, lineno, error=err, raw=line[:1024])
                continue
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield RawRow(src, lineno, error=RowError(Reason.INVALID_UTF8, str(e)), raw=line)
                continue
            yield _parse_record(text, src, lineno, text)


def _row_bytes(record: Any) -> int:
    # surrogatepass: a lone surrogate (a "\ud800" escape in JSON) must be measured, not crash
    return len(json.dumps(record, ensure_ascii=False, default=str).encode("utf-8", errors="surrogatepass"))


_WS = " \t\n\r"


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    return i


# JSON text of one record may spell a byte in up to 6 characters (\u00e9); a record whose text is
# longer than this many characters per allowed byte is too large without parsing it.
_TEXT_PER_BYTE = 6
_OPENERS_OR_CLOSERS = re.compile(r'[\[{]+|[\]}]+|["\\]')
_STRING_TOKEN = re.compile(r'["\\]')
_SCALAR_END = re.compile(r"[,\]}\s]")


class _JsonText:
    """Decoded JSON text read in chunks, with a cursor; memory is one chunk plus the value being
    kept (at most `keep` characters): the file is never held whole (a 0.4 MB .json.gz can be
    400 MB of text)."""

    def __init__(self, fh: IO[str], src: str) -> None:
        self.fh, self.src = fh, src
        self.buf, self.pos = "", 0
        self.lines_before = 1  # the line number at buf[0]
        self.rows = 0  # records yielded so far (for fault messages)

    def _fill(self) -> bool:
        try:
            chunk = self.fh.read(JSON_CHUNK_CHARS)
        except UnicodeDecodeError as e:
            raise SourceFault(self.src, self.rows, f"not valid {e.encoding} ({e.reason})") from None
        if not chunk:
            return False
        self.lines_before += self.buf.count("\n", 0, self.pos)
        self.buf, self.pos = self.buf[self.pos:] + chunk, 0
        return True

    def line(self) -> int:
        return self.lines_before + self.buf.count("\n", 0, self.pos)

    def peek(self) -> str:
        """The next character that is not white space ('' at the end), the cursor on it."""
        while True:
            self.pos = _skip_ws(self.buf, self.pos)
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def take(self, char: str, what: str) -> None:
        if self.peek() != char:
            got = self.peek() or "the end of the file"
            raise SourceFault(self.src, self.rows, f"broken JSON (expected {what} at line {self.line()}, got {got[:1]!r})")
        self.pos += 1

    def value(self, keep: int) -> tuple[str | None, int, int]:
        """The text of the JSON value at the cursor (None when longer than `keep` characters: it
        is skipped, not held), its length and its first line; the cursor moves past it.
        Brackets and strings are balanced without parsing, so a value too deeply nested for the
        parser is still skipped correctly."""
        self.peek()
        first_line = self.line()
        parts: list[str] = []
        length = 0
        depth = 0
        in_string = False
        scalar = self.buf[self.pos] not in '[{"'
        i = self.pos

        def stash(upto: int) -> None:  # keep buf[pos:upto] while the value fits in `keep`
            nonlocal length
            piece = self.buf[self.pos:upto]
            length += len(piece)
            if length <= keep:
                parts.append(piece)
            else:
                parts.clear()
            self.pos = upto

        while True:
            if i >= len(self.buf):
                over = i - len(self.buf)  # an escape that crossed the chunk's end
                stash(len(self.buf))
                if not self._fill():
                    if scalar:
                        break
                    raise SourceFault(self.src, self.rows,
                                      f"not valid JSON (line {first_line}): the file ends inside a record")
                i = over
                continue
            if scalar:
                m = _SCALAR_END.search(self.buf, i)
                if m is None:
                    i = len(self.buf)
                    continue
                i = m.start()
                break
            m = (_STRING_TOKEN if in_string else _OPENERS_OR_CLOSERS).search(self.buf, i)
            if m is None:
                i = len(self.buf)
                continue
            token = m.group()
            i = m.start()
            if in_string:
                if token == "\\":
                    i += 2
                    continue
                in_string = False
                i += 1
                if depth == 0:
                    break
            elif token == '"':
                in_string = True
                i += 1
            elif token == "\\":
                raise SourceFault(self.src, self.rows, f"not valid JSON (line {self.line()}): a backslash outside a string")
            elif token[0] in "[{":
                depth += len(token)
                i = m.end()
            else:  # closers: the value ends when its depth reaches 0
                if len(token) >= depth:
                    i += depth
                    depth = 0
                    break
                depth -= len(token)
                i = m.end()
        stash(i)
        return ("".join(parts) if length <= keep else None), length, first_line


def _json_record(text: str | None, length: int, line: int, src: str, row: int, max_row_bytes: int) -> RawRow:
    """One record of a JSON list from its text (None: skipped as too long)."""
    if text is None:
        return RawRow(src, row, error=RowError(Reason.ROW_TOO_LARGE,
                                               f"record of {length} characters of JSON text > {max_row_bytes} bytes"))
    try:
        record = json.loads(text)
    except RecursionError:
        return RawRow(src, row, error=RowError(Reason.TOO_DEEPLY_NESTED, "nested too deeply to parse"), raw=text[:1024])
    except json.JSONDecodeError as e:
        raise SourceFault(src, row - 1, f"not valid JSON (line {line + e.lineno - 1}, column {e.colno}): {e.msg}") from None
    size = _row_bytes(record)
    if size > max_row_bytes:
        return RawRow(src, row, error=RowError(Reason.ROW_TOO_LARGE, f"record of {size} bytes > {max_row_bytes}"))
    if _has_bad_bytes(record):
        return RawRow(src, row, error=RowError(Reason.INVALID_UTF8, "record holds text that is not valid UTF-8"), raw=record)
    return _as_record(record, src, row, record)


def _stream_list(text: _JsonText, max_row_bytes: int) -> Iterator[RawRow]:
    """The records of the JSON list at the cursor, one at a time."""
    text.take("[", "a JSON list of records")
    if text.peek() == "]":
        text.pos += 1
        return
    while True:
        row = text.rows + 1
        value, length, line = text.value(_TEXT_PER_BYTE * max_row_bytes)
        yield _json_record(value, length, line, text.src, row, max_row_bytes)
        text.rows = row
        nxt = text.peek()
        if nxt == ",":
            text.pos += 1
            continue
        if nxt == "]":
            text.pos += 1
            return
        raise SourceFault(text.src, row, "broken JSON list (expected ',' or ']' after a record)")


def iter_json_list(text: str, src: str, max_row_bytes: int, start: int = 0) -> Iterator[RawRow]:
    """The records of a JSON list held in a string (starting at its "[")."""
    stream = _JsonText(io.StringIO(text[start:]), src)
    yield from _stream_list(stream, max_row_bytes)
    if stream.peek():
        raise SourceFault(src, stream.rows, "text after the end of the JSON list")


def iter_json(path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, max_decompressed_bytes: int | None = None) -> Iterator[RawRow]:
    """A JSON list of records (or an object holding one list), streamed: memory is bounded by one
    record, whatever the file's size. A file whose first line is a complete JSON object (or that
    is not a list or an object) is read as JSONL, so `.json` files that hold JSON lines work too."""
    src = str(path)
    encoding = detect_encoding(path)
    text_encoding = "utf-8-sig" if encoding in ("utf-8", "utf-8-sig") else encoding
    errors = "surrogateescape" if encoding in ("utf-8", "utf-8-sig") else "strict"  # bad bytes: flagged per row
    with _open_binary(path, max_decompressed_bytes) as raw_fh, \
            io.TextIOWrapper(raw_fh, encoding=text_encoding, errors=errors, newline="") as fh:
        text = _JsonText(fh, src)
        first = text.peek()
        if first == "[":
            yield from _stream_list(text, max_row_bytes)
            if text.peek():
                raise SourceFault(src, text.rows, "text after the end of the JSON list")
            return
        if first == "{":
            head = text.buf[text.pos:text.pos + _TEXT_PER_BYTE * max_row_bytes]
            while "\n" not in head and len(head) < _TEXT_PER_BYTE * max_row_bytes and text._fill():
                head = text.buf[text.pos:text.pos + _TEXT_PER_BYTE * max_row_bytes]
            if not _first_line_is_object(head):
                yield from _stream_object(text, max_row_bytes)
                return
    yield from iter_jsonl(path, max_row_bytes, encoding="utf-8" if encoding == "utf-8-sig" else encoding,
                          max_decompressed_bytes=max_decompressed_bytes)


def _stream_object(text: _JsonText, max_row_bytes: int) -> Iterator[RawRow]:
    """`{"key": [records...], ...}`: the one list's records, streamed; other values are skipped."""
    text.take("{", "a JSON object")
    lists = 0
    while text.peek() != "}":
        key, _, _ = text.value(1 << 16)
        if key is None or not key.startswith('"'):
            raise SourceFault(text.src, text.rows, "broken JSON object (expected a member name)")
        text.take(":", "':' after a member name")
        if text.peek() == "[":
            lists += 1
            if lists > 1:
                raise SourceFault(text.src, text.rows, "a JSON object must hold exactly one list of records")
            yield from _stream_list(text, max_row_bytes)
        else:
            text.value(0)  # another member: skipped, not held
        if text.peek() == ",":
            text.pos += 1
        elif text.peek() != "}":
            raise SourceFault(text.src, text.rows, "broken JSON object (expected ',' or '}')")
    text.pos += 1
    if lists != 1:
        raise SourceFault(text.src, text.rows, "a JSON object must hold exactly one list of records")
    if text.peek():
        raise SourceFault(text.src, text.rows, "text after the end of the JSON object")


def _first_line_is_object(body: str) -> bool:
    """A text whose first line is a complete JSON object is JSON lines."""
    first = body.split("\n", 1)[0].strip()
    if not first.startswith("{"):
        return False
    try:
        json.loads(first)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def _has_bad_bytes(record: Any) -> bool:
    try:
        json.dumps(record, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _arrow_sizes(arr: pa.Array) -> Any:
    """Bytes per row of an Arrow array, from its offsets and value lengths (no Python objects):
    string/binary lengths, summed through lists, maps and structs; 8 per fixed-width value."""
    import numpy as np
    import pyarrow.compute as pc

    n = len(arr)
    t = arr.type
    if isinstance(arr, pa.ChunkedArray):
        return np.concatenate([_arrow_sizes(c) for c in arr.chunks]) if arr.num_chunks else np.zeros(0, np.int64)
    if pa.types.is_dictionary(t):
        return _arrow_sizes(arr.dictionary)[np.asarray(arr.indices.fill_null(0), dtype=np.int64)] if n else np.zeros(0, np.int64)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return np.asarray(pc.binary_length(arr).fill_null(0), dtype=np.int64)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_map(t):
        child = _arrow_sizes(arr.values)
        sums = np.concatenate([[0], np.cumsum(child, dtype=np.int64)])
        offsets = np.asarray(arr.offsets, dtype=np.int64)
        return sums[offsets[1:]] - sums[offsets[:-1]] + 2
    if pa.types.is_fixed_size_list(t):
        child = _arrow_sizes(arr.flatten()).reshape(n, t.list_size) if n else np.zeros((0, 1), np.int64)
        return child.sum(axis=1) + 2
    if pa.types.is_struct(t):
        total = np.full(n, 2, dtype=np.int64)
        for field, child in zip(t, arr.flatten()):
            total += _arrow_sizes(child) + len(field.name) + 4
        return total
    return np.full(n, 8, dtype=np.int64)


def iter_parquet(path: Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, batch_size: int = 1024) -> Iterator[RawRow]:
    """Parquet rows in batches. A row's size is measured from the Arrow buffers (string lengths,
    list offsets) before any Python object is made of it, so an oversized cell is quarantined
    without being copied into Python."""
    src = str(path)
    i = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
        sizes = sum((_arrow_sizes(col) for col in batch.columns), start=0)
        for j in range(batch.num_rows):
            i += 1
            if int(sizes[j]) > max_row_bytes:
                err = RowError(Reason.ROW_TOO_LARGE, f"record of more than {max_row_bytes} bytes "
                                                     f"({int(sizes[j])} bytes of cell data)")
                yield RawRow(src, i, error=err)
                continue
            (record,) = batch.slice(j, 1).to_pylist()
            size = _row_bytes(record)
            if size > max_row_bytes:
                err = RowError(Reason.ROW_TOO_LARGE, f"record of {size} bytes > {max_row_bytes}")
                yield RawRow(src, i, error=err)
                continue
            yield _as_record(record, src, i, record)


def split_hub_id(src: str) -> tuple[str, str]:
    """`org/name[:split]` (an optional `hf://` prefix is dropped); the split defaults to train."""
    name = src.removeprefix("hf://")
    name, _, split = name.partition(":")
    return name, split or "train"


def iter_hub(
    dataset_id: str, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES, **load_kwargs: Any
) -> Iterator[RawRow]:
    """A Hugging Face `datasets` id, streamed (no full download). Extra keyword arguments go to
    `datasets.load_dataset` (e.g. `data_files`, `revision`)."""
    import datasets  # imported here: it is slow to import and only this path needs it

    name, split = split_hub_id(dataset_id)
    try:
        ds = datasets.load_dataset(name, split=split, streaming=True, **load_kwargs)
    except Exception as e:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot read it"
        raise ValueError(
            f"{dataset_id}: not a local file, and loading it as a Hugging Face dataset "
            f"(name {name!r}, split {split!r}) failed: {type(e).__name__}: {e}"
        ) from e
    src = f"{name}:{split}"
    for i, record in enumerate(ds, start=1):
        size = _row_bytes(record)
        if size > max_row_bytes:
            yield RawRow(src, i, error=RowError(Reason.ROW_TOO_LARGE, f"record of {size} bytes > {max_row_bytes}"))
            continue
        yield _as_record(record, src, i, record)


def _guarded(rows: Iterator[RawRow], src: str) -> Iterator[RawRow]:
    """Any failure of the container below a row (a corrupt or truncated gzip, an unreadable
    Parquet file, a decoding error mid-stream) becomes one SourceFault naming the last good row."""
    last = 0
    try:
        for row in rows:
            last = row.row
            yield row
    except SourceFault:
        raise
    except DecompressionLimit as e:
        raise SourceFault(src, last, str(e)) from None
    except (OSError, EOFError, zlib.error, UnicodeError, ValueError, KeyError, TypeError, RecursionError,
            MemoryError, pa.ArrowException) as e:
        detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise SourceFault(src, last, f"unreadable ({type(e).__name__}{': ' + detail[:300] if detail else ''})") from None


def iter_raw_rows(src: str | Path, max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
                  max_decompressed_bytes: int | None = None) -> Iterator[RawRow]:
    """The rows of one source, whatever its container; a compressed file may expand to
    `decompressed_cap` bytes (`max_decompressed_bytes` overrides the default)."""
    if not is_local(src):
        yield from iter_hub(str(src), max_row_bytes)
        return
    path = Path(src)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise SourceFault(str(path), 0, "is a folder, not a data file")
    name = path.name
    if name.endswith(".parquet"):
        yield from _guarded(iter_parquet(path, max_row_bytes), str(path))
    elif name.endswith((".jsonl", ".jsonl.gz")):
        yield from _guarded(iter_jsonl(path, max_row_bytes, max_decompressed_bytes=max_decompressed_bytes), str(path))
    elif name.endswith((".json", ".json.gz")):
        yield from _guarded(iter_json(path, max_row_bytes, max_decompressed_bytes), str(path))
    else:
        raise DataError(f"{path}: unknown file type (expected .json, .jsonl, .jsonl.gz or .parquet)")


def canonical_source(src: str) -> str:
    """A source's identity: the real path of a local file (relative, absolute and symlinked
    spellings are one source), `hf:<name>:<split>` for a hub dataset."""
    if is_local(src):
        return os.path.realpath(os.path.expanduser(src))
    name, split = split_hub_id(src)
    return f"hf:{name}:{split}"


def expand_sources(srcs: list[str]) -> list[str]:
    """Folders become their data files (sorted); files and hub ids pass through. A folder written
    by RewardOps (part-*.parquet shards) must be a complete, verified output."""
    out: list[str] = []
    for s in srcs:
        p = Path(s)
        if p.is_dir():
            shards = sorted(p.glob("part-*.parquet"))
            if shards:  # a RewardOps dataset: its verified shards only, not its report or logs
                from rewardops.outputs import verify_output

                manifest = verify_output(p)
                names = sorted(f["path"] for f in manifest["files"] if SHARD_NAME.fullmatch(f["path"]))
                out.extend(str(p / n) for n in names)
                continue
            files = sorted(str(f) for f in p.rglob("*")
                           if f.is_file() and f.name.endswith(LOCAL_SUFFIXES) and f.name not in RUN_OUTPUTS)
            if not files:
                raise NotFoundError(f"{p}: folder holds no .json/.jsonl/.jsonl.gz/.parquet files")
            out.extend(files)
        else:
            out.append(s)
    return out


# --------------------------------------------------------------------------- formats

_HH_TURN = re.compile(r"(?:\A|\n\n)(Human|Assistant):[ ]?")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


def _require(record: dict[str, Any], key: str) -> Any:
    value = record.get(key)
    if value is None:
        raise RowError(Reason.MISSING_CONTENT, f"field {key!r} is missing or None")
    return value


def _require_str(record: dict[str, Any], key: str) -> str:
    value = _require(record, key)
    if not isinstance(value, str):
        raise RowError(Reason.MALFORMED_RECORD, f"field {key!r} is a {type(value).__name__}, not a string")
    return value


def parse_hh_transcript(text: str) -> list[tuple[str, str]]:
    """`\\n\\nHuman: ...\\n\\nAssistant: ...` into (role, content) turns."""
    parts = _HH_TURN.split(text)
    if parts[0].strip():
        raise RowError(Reason.MALFORMED_RECORD, "transcript does not start with a Human:/Assistant: turn")
    return [(HH_ROLES[parts[i]], parts[i + 1]) for i in range(1, len(parts), 2)]


def _split_final(turns: list[tuple[Any, Any]], which: str) -> tuple[list[tuple[Any, Any]], Any]:
    if not turns:
        raise RowError(Reason.MISSING_CONTENT, f"{which} has no turns")
    role, content = turns[-1]
    if role != "assistant":
        raise RowError(Reason.FINAL_TURN_NOT_ASSISTANT, f"the final turn of {which} is {role!r}")
    return turns[:-1], content


def _shared_prefix(chosen: list[tuple[Any, Any]], rejected: list[tuple[Any, Any]]) -> tuple[list[tuple[Any, Any]], Any, Any]:
    prefix_c, final_c = _split_final(chosen, "chosen")
    prefix_r, final_r = _split_final(rejected, "rejected")
    if prefix_c != prefix_r:
        raise RowError(Reason.PROMPT_MISMATCH, "chosen and rejected have different conversations before the answer")
    return prefix_c, final_c, final_r


def map_hh_rlhf(record: dict[str, Any]) -> Candidate:
    chosen = parse_hh_transcript(_require_str(record, "chosen"))
    rejected = parse_hh_transcript(_require_str(record, "rejected"))
    conversation, c, r = _shared_prefix(chosen, rejected)
    return Candidate(conversation, c, r, _extra(record, {"chosen", "rejected"}))


def _messages(value: Any, which: str, role_key: str = "role", content_key: str = "content",
              roles: dict[str, str] | None = None) -> list[tuple[Any, Any]]:
    if value is None:
        raise RowError(Reason.MISSING_CONTENT, f"{which} is missing or None")
    if not isinstance(value, list):
        raise RowError(Reason.MALFORMED_RECORD, f"{which} is a {type(value).__name__}, not a list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise RowError(Reason.MALFORMED_RECORD, f"{which}[{i}] is not a message object")
        role = m.get(role_key)
        if roles is not None and isinstance(role, str):
            role = roles.get(role, role)
        out.append((role, m.get(content_key)))
    return out


def map_conversational(record: dict[str, Any]) -> Candidate:
    """TRL preference (implicit or explicit prompt), UltraFeedback-binarized, Skywork-Reward-Preference."""
    chosen = _messages(record.get("chosen"), "chosen")
    rejected = _messages(record.get("rejected"), "rejected")
    prefix, c, r = _shared_prefix(chosen, rejected)
    prompt = record.get("prompt")
    if isinstance(prompt, list):  # explicit prompt: chosen/rejected hold only the answers
        conversation = _messages(prompt, "prompt") + prefix
    elif isinstance(prompt, str) and not prefix:  # a string prompt with bare answers
        conversation = [("user", prompt)]
    else:  # implicit prompt (a string prompt, if any, repeats the first user turn)
        conversation = prefix
    return Candidate(conversation, c, r, _extra(record, {"chosen", "rejected", "prompt", "messages"}))


def _sharegpt_answer(value: Any, which: str, role_key: str, content_key: str) -> Any:
    if isinstance(value, str):
        return value
    if value is None:
        raise RowError(Reason.MISSING_CONTENT, f"{which} is missing or None")
    if not isinstance(value, dict):
        raise RowError(Reason.MALFORMED_RECORD, f"{which} is a {type(value).__name__}, not a message")
    role = SHAREGPT_ROLES.get(value.get(role_key), value.get(role_key))
    if role != "assistant":
        raise RowError(Reason.FINAL_TURN_NOT_ASSISTANT, f"{which} is from {value.get(role_key)!r}")
    return value.get(content_key)


def map_sharegpt(record: dict[str, Any]) -> Candidate:
    """LLaMA-Factory ShareGPT preference rows: `conversations` [{from, value}] (or `messages`
    [{role, content}]), `chosen`/`rejected` one message each, and an optional `system` string."""
    if "conversations" in record:
        key, role_key, content_key = "conversations", "from", "value"
    else:
        key, role_key, content_key = "messages", "role", "content"
    conversation = _messages(record.get(key), key, role_key, content_key, SHAREGPT_ROLES)
    system = record.get("system")
    if isinstance(system, str) and system.strip():
        conversation = [("system", system), *conversation]
    c = _sharegpt_answer(record.get("chosen"), "chosen", role_key, content_key)
    r = _sharegpt_answer(record.get("rejected"), "rejected", role_key, content_key)
    return Candidate(conversation, c, r, _extra(record, {key, "chosen", "rejected", "system"}))


def map_plain(record: dict[str, Any]) -> Candidate:
    """`prompt`/`chosen`/`rejected` strings (RewardBench v1, the UltraFeedback sample), or
    Alpaca-style `instruction` [+ `input`] with chosen/rejected strings."""
    if "prompt" in record or "instruction" not in record:
        prompt = _require(record, "prompt")
        used = {"prompt", "chosen", "rejected", "system"}
    else:
        prompt = _require(record, "instruction")
        extra_input = record.get("input")
        if isinstance(prompt, str) and isinstance(extra_input, str) and extra_input.strip():
            prompt = f"{prompt}\n\n{extra_input}"
        used = {"instruction", "input", "chosen", "rejected", "system"}
    conversation: list[tuple[Any, Any]] = [("user", prompt)]
    system = record.get("system")
    if isinstance(system, str) and system.strip():
        conversation.insert(0, ("system", system))
    return Candidate(conversation, _require(record, "chosen"), _require(record, "rejected"), _extra(record, used))


PAIR_FIELDS = frozenset(PreferencePair.__dataclass_fields__)


def map_pairs(record: dict[str, Any]) -> Candidate:
    """RewardOps' own shards (or their JSON export): every field is kept."""
    conversation = _messages(record.get("conversation"), "conversation")
    passthrough = {k: v for k, v in record.items() if k in PAIR_FIELDS and k not in {"conversation", "chosen", "rejected"}}
    return Candidate(conversation, record.get("chosen"), record.get("rejected"), {"__pair__": passthrough})


def _extra(record: dict[str, Any], used: set[str]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in used}


FORMATS: dict[str, Callable[[dict[str, Any]], Candidate]] = {
    "hh-rlhf": map_hh_rlhf,
    "conversational": map_conversational,
    "sharegpt": map_sharegpt,
    "plain": map_plain,
    "pairs": map_pairs,
}


def detect_format(record: dict[str, Any]) -> str | None:
    """The format one record is in, or None when it matches none."""
    keys = set(record)
    if {"conversation", "chosen", "rejected", "label_source"} <= keys:
        return "pairs"
    if "chosen" not in keys and "rejected" not in keys:
        return None
    if "conversations" in keys or ("messages" in keys and isinstance(record.get("chosen"), dict)):
        return "sharegpt"
    chosen = record.get("chosen")
    if chosen is None:
        chosen = record.get("rejected")
    if isinstance(chosen, list):
        return "conversational"
    if isinstance(chosen, str):
        if "prompt" in keys or "instruction" in keys:
            return "plain"
        if _HH_TURN.match(chosen) or "\n\nAssistant:" in chosen:
            return "hh-rlhf"
    return None


DETECT_WINDOW = 200


def detect_source_format(rows: list[RawRow]) -> str | None:
    """The most common format among the first readable records of a source."""
    votes: dict[str, int] = {}
    for row in rows:
        if row.record is not None and (fmt := detect_format(row.record)) is not None:
            votes[fmt] = votes.get(fmt, 0) + 1
    return max(votes, key=votes.__getitem__) if votes else None


# --------------------------------------------------------------------------- rows to pairs


@dataclass
class ReadResult:
    """One row read from a source: a pair, or the error that keeps it out."""

    source_file: str
    row: int
    pair: PreferencePair | None
    error: RowError | None
    raw: Any


def build_pair(c: Candidate, source: str, source_file: str, row: int, fmt: str, id_prefix: str | None = None) -> PreferencePair:
    """The checked candidate as a pair; its id is `<id_prefix or source>:<row>`."""
    default_id = f"{id_prefix or source}:{row}"
    conversation = [Message(role=r, content=t) for r, t in c.conversation]
    if "__pair__" in c.extra:
        fields = dict(c.extra["__pair__"])
        fields["scores"] = dict(fields.get("scores") or {})  # a dict (JSON) or key/value pairs (Arrow map)
        meta = fields.get("meta")
        fields["meta"] = json.loads(meta) if isinstance(meta, str) else dict(meta or {})
        fields["lineage"] = [*list(fields.get("lineage") or []), "ingest"]
        fields.setdefault("id", default_id)
        fields.setdefault("source", source)
        fields.setdefault("label_source", LabelSource.ORIGINAL.value)
        return PreferencePair(conversation=conversation, chosen=c.chosen, rejected=c.rejected, **fields)
    meta: dict[str, Any] = {"source_file": source_file, "row": row, "format": fmt}
    if c.extra:  # source-specific fields, made JSON-safe (Parquet rows may hold bytes or dates)
        meta["extra"] = json.loads(json.dumps(c.extra, default=str))
    return PreferencePair(
        id=default_id,
        source=source,
        conversation=conversation,
        chosen=c.chosen,
        rejected=c.rejected,
        label_source=LabelSource.ORIGINAL.value,
        lineage=["ingest"],
        meta=meta,
    )


def read_source(
    src: str | Path,
    fmt: str | None = None,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    source: str | None = None,
    id_prefix: str | None = None,
    max_decompressed_bytes: int | None = None,
) -> Iterator[ReadResult]:
    """Every row of one source as a checked pair or an error, in order, streamed.

    `fmt` names the format; None detects it from the first records. Pair ids are
    `<id_prefix>:<row>` (default: the file's `parent/stem`); rows of the `pairs` format keep theirs.
    A file-level fault raises `SourceFault` (naming the file and the last good row).
    """
    if fmt is not None and fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    source = source or source_name(src)
    if id_prefix is None:
        id_prefix = file_tag(Path(src)) if is_local(src) and source != file_tag(Path(src)) else None
    rows = iter_raw_rows(src, max_row_bytes, max_decompressed_bytes)
    head: list[RawRow] = []
    if fmt is None:
        for row in rows:
            head.append(row)
            if sum(r.record is not None for r in head) >= DETECT_WINDOW:
                break
        fmt = detect_source_format(head)
        if fmt is None:
            if not any(r.record is not None for r in head):
                fmt = "plain"  # no readable record at all: every row is quarantined as it is
            else:
                first = next(r for r in head if r.record is not None)
                raise SourceFault(str(src), 0,
                    f"cannot detect the format (keys of row {first.row}: {sorted(first.record or {})}); "
                    f"name it with --format ({', '.join(FORMATS)})"
                )
    mapper = FORMATS[fmt]

    def all_rows() -> Iterator[RawRow]:
        yield from head
        yield from rows

    for raw in all_rows():
        if raw.error is not None:
            yield ReadResult(raw.source_file, raw.row, None, raw.error, raw.raw)
            continue
        assert raw.record is not None
        try:
            candidate = mapper(raw.record)
            check_candidate(candidate)
            try:
                pair = build_pair(candidate, source, raw.source_file, raw.row, fmt, id_prefix)
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                raise RowError(Reason.MALFORMED_RECORD, f"fields of the wrong type: {e}") from None
            check_pair_fields(pair)  # with check_candidate above: check_pair, the one check every entry applies
        except RowError as err:
            yield ReadResult(raw.source_file, raw.row, None, err, raw.raw)
            continue
        yield ReadResult(raw.source_file, raw.row, pair, None, None)
