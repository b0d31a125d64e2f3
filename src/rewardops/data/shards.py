"""Parquet shards of preference pairs, read and written in bounded memory.

A dataset is a folder of `part-00000.parquet`, `part-00001.parquet`, ... all with PAIR_SCHEMA,
plus `_manifest.json` (rewardops.outputs). Writers flush every `batch_size` pairs and roll to a new
shard every `shard_size` pairs, so memory is bounded by the batch, never by the dataset.

Writers are atomic: a `ShardWriter` handed a folder of its own writes into a temporary sibling and
swaps it into place with its manifest on a clean close (an exception leaves the old folder as it
was); handed the temporary folder of an open `atomic_output` itself, it writes straight into it
and the enclosing `atomic_output` seals the whole folder (a subfolder of it is a dataset of its
own, with its own manifest). Readers (`shard_paths`,
`iter_batches`, `read_pairs`, `count_pairs`) verify the manifest first and refuse a folder without
a valid one (`IncompleteOutputError`, naming the folder and the command that repairs it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rewardops.data.schema import PAIR_SCHEMA, PreferencePair, pairs_to_table
from rewardops.outputs import IncompleteOutputError, atomic_output, is_staging, verify_output
from rewardops.errors import DataError, NotFoundError

SHARD_GLOB = "part-*.parquet"
DATASET_KIND = "dataset"


def shard_paths(path: str | Path, verify: bool = True, hashes: bool = True) -> list[Path]:
    """The shards of a dataset folder (or the single file given), in order.

    A folder must be a complete output (`rewardops.outputs.verify_output`); `verify=False` is for
    writers looking into their own staging folder only. `hashes=False` checks the manifest, the
    file list and sizes but not the contents: for a worker that reads one shard of a large dataset
    and checks that shard's hash alone (`verify_shard`)."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise NotFoundError(f"{p}: no such dataset folder or Parquet file")
    if verify:
        manifest = verify_output(p, hashes=hashes)
        names = sorted(f["path"] for f in manifest["files"] if "/" not in f["path"] and Path(f["path"]).match(SHARD_GLOB))
        return [p / n for n in names]
    return sorted(p.glob(SHARD_GLOB))


def verify_shard(shard: Path) -> None:
    """One shard's content against its dataset's manifest (sha256), without hashing the others."""
    import hashlib

    manifest = verify_output(shard.parent, hashes=False)
    entry = next((f for f in manifest["files"] if f["path"] == shard.name), None)
    if entry is None:
        raise IncompleteOutputError(f"{shard}: not listed in {shard.parent}'s manifest")
    digest = hashlib.sha256()
    with open(shard, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if entry.get("sha256") != digest.hexdigest():
        raise IncompleteOutputError(f"{shard}: content differs from its manifest's sha256 (changed or corrupt); "
                                    f"rewrite {shard.parent} with the command that made it")


class ShardWriter:
    """Streams pairs (`write`) or Arrow tables with PAIR_SCHEMA (`write_table`) into numbered
    Parquet shards under `out_dir`: the one shard writer (preprocess, curation, every dataset)."""

    def __init__(
        self,
        out_dir: str | Path,
        shard_size: int = 100_000,
        batch_size: int = 4_096,
        prefix: str = "part",
        inputs: Iterable[str | Path] = (),
        first: int = 0,
    ) -> None:
        """`first`: the number of the first shard (a worker writing shard i of a fanned-out dataset)."""
        self.final_dir = Path(out_dir)
        self._stack = ExitStack()
        if is_staging(self.final_dir):
            self.out_dir = self.final_dir
            self.out_dir.mkdir(parents=True, exist_ok=True)
        else:  # our own atomic output: written into a temporary sibling, swapped in by close()
            self.out_dir = self._stack.enter_context(atomic_output(self.final_dir, inputs=inputs, kind=DATASET_KIND))
        self._closed = False
        self.shard_size = shard_size
        self.batch_size = batch_size
        self.prefix = prefix
        self.first = first
        self.count = 0
        self.paths: list[Path] = []
        self._buffer: list[PreferencePair] = []
        self._writer: pq.ParquetWriter | None = None
        self._in_shard = 0

    def write(self, pair: PreferencePair) -> None:
        self._buffer.append(pair)
        self.count += 1
        if len(self._buffer) >= self.batch_size or self._in_shard + len(self._buffer) >= self.shard_size:
            self._flush()

    def write_all(self, pairs: Iterable[PreferencePair]) -> None:
        for p in pairs:
            self.write(p)

    def write_table(self, table: pa.Table) -> None:
        """Rows already in PAIR_SCHEMA (after any pairs written before them)."""
        self._flush()
        self.count += table.num_rows
        self._write_rows(table)

    def _flush(self) -> None:
        if self._buffer:
            table, self._buffer = pairs_to_table(self._buffer), []
            self._write_rows(table)

    def _write_rows(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None:
                path = self.out_dir / f"{self.prefix}-{self.first + len(self.paths):05d}.parquet"
                self.paths.append(path)
                self._writer = pq.ParquetWriter(path, PAIR_SCHEMA, compression="zstd")
                self._in_shard = 0
            room = self.shard_size - self._in_shard
            chunk, table = table.slice(0, room), table.slice(room)
            self._writer.write_table(chunk)
            self._in_shard += chunk.num_rows
            if self._in_shard >= self.shard_size:
                self._writer.close()
                self._writer = None

    def close(self) -> list[Path]:
        """Finish the last shard and (for a folder of its own) swap the dataset into place."""
        if self._closed:
            return self.paths
        try:
            self._flush()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if not self.paths:  # an empty dataset is still a valid dataset
                path = self.out_dir / f"{self.prefix}-{self.first:05d}.parquet"
                pq.write_table(PAIR_SCHEMA.empty_table(), path)
                self.paths.append(path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._stack.close()  # commits an own atomic output
        self.paths = [self.final_dir / p.name for p in self.paths]
        return self.paths

    def abort(self) -> None:
        """Drop what was written: the output folder stays as it was before this writer."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - the half-written shard is discarded anyway
                pass
            self._writer = None
        self._buffer = []
        self._stack.__exit__(RuntimeError, RuntimeError("shard writer aborted"), None)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_pairs(pairs: Iterable[PreferencePair], out_dir: str | Path, shard_size: int = 100_000,
                inputs: Iterable[str | Path] = ()) -> list[Path]:
    """Write a complete dataset folder (atomically, with its manifest) and return its shards."""
    with ShardWriter(out_dir, shard_size=shard_size, inputs=inputs) as w:
        w.write_all(pairs)
    return w.paths


def iter_batches(path: str | Path, batch_size: int = 4_096, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches over every shard of a dataset, one batch in memory at a time."""
    for shard in shard_paths(path):
        pf = pq.ParquetFile(shard)
        yield from pf.iter_batches(batch_size=batch_size, columns=columns)


def read_pairs(path: str | Path, batch_size: int = 4_096) -> Iterator[PreferencePair]:
    """Every pair of a dataset folder, streamed."""
    for batch in iter_batches(path, batch_size=batch_size):
        for row in batch.to_pylist():
            yield PreferencePair.from_row(row)


def pairs_digest(path: str | Path) -> str:
    """sha256 of what a trainer reads from a dataset (each pair's id, conversation, chosen and
    rejected, in order), independent of the shard layout and the lineage: two folders with the same
    digest give the same training."""
    import hashlib
    import json

    digest = hashlib.sha256()
    for batch in iter_batches(path, columns=["id", "conversation", "chosen", "rejected"]):
        for row in batch.to_pylist():
            digest.update(json.dumps(row, sort_keys=True, default=str).encode())
            digest.update(b"\n")
    return digest.hexdigest()


def count_pairs(path: str | Path) -> int:
    total = 0
    for s in shard_paths(path):
        try:
            total += pq.ParquetFile(s).metadata.num_rows
        except (OSError, pa.ArrowException) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DataError(f"{s}: unreadable Parquet shard: {first}") from None
    return total
