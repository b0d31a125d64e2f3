"""Reading benchmark records from wherever they are: JSON, JSONL, Parquet, a `datasets` folder
saved with `save_to_disk`, or a Hugging Face dataset id.

Every reader yields `(file, row, record)` so a bad record can be reported by file and row. A file
that cannot be parsed at all is an error naming the file; a line of JSONL that is not JSON is a
quarantined row, not the end of the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from rewardops.errors import DataError, NotFoundError

RECORD_SUFFIXES = (".json", ".jsonl", ".parquet")


@dataclass(frozen=True)
class RawRecord:
    file: str
    row: int
    record: dict[str, Any] | None  # None: the row could not be parsed (see `error`)
    error: str | None = None


def read_file(path: Path) -> Iterator[RawRecord]:
    name = str(path)
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            for row, line in enumerate(fh):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield RawRecord(name, row, None, f"not valid JSON ({exc.msg})")
                    continue
                yield _as_record(name, row, value)
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON: {exc}") from exc
        if isinstance(data, dict):  # {"data": [...]} or a columnar dict from pandas
            data = data.get("data", data.get("rows", data))
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
        for row, value in enumerate(data):
            yield _as_record(name, row, value)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        row = 0
        for batch in pf.iter_batches(batch_size=1024):
            for value in batch.to_pylist():
                yield _as_record(name, row, value)
                row += 1
    else:
        raise DataError(f"{path}: unsupported file type (use .json, .jsonl or .parquet)")


def _as_record(name: str, row: int, value: Any) -> RawRecord:
    if not isinstance(value, dict):
        return RawRecord(name, row, None, f"expected a JSON object, got {type(value).__name__}")
    return RawRecord(name, row, value)


def is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()
    )


def read_saved_dataset(path: Path, split: str | None) -> Iterator[RawRecord]:
    from datasets import DatasetDict, load_from_disk

    ds = load_from_disk(str(path))
    if isinstance(ds, DatasetDict):
        if split is None or split not in ds:
            raise DataError(f"{path}: pick one of the splits {sorted(ds)} (asked for {split!r})")
        ds = ds[split]
    for row, value in enumerate(ds):
        yield RawRecord(f"{path}[{split}]" if split else str(path), row, dict(value))


def read_hub_dataset(dataset_id: str, split: str, config: str | None = None) -> Iterator[RawRecord]:
    """A dataset from the Hugging Face hub (or its local cache when offline)."""
    from datasets import load_dataset

    try:
        ds = load_dataset(dataset_id, config, split=split)
    except Exception as exc:  # offline, missing, gated: say which dataset and how to get it
        raise NotFoundError(
            f"could not load Hugging Face dataset {dataset_id!r} split {split!r}: {exc}. "
            "Download it on a machine with network access (datasets.load_dataset(...).save_to_disk(DIR)) "
            "and point --data-dir at the saved folder."
        ) from exc
    for row, value in enumerate(ds):
        yield RawRecord(f"hf://{dataset_id}[{split}]", row, dict(value))


def record_files(path: Path) -> list[Path]:
    """The record files of a benchmark folder, recursively, in a stable order."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in RECORD_SUFFIXES)
