"""Parquet shards of preference pairs, read and written in bounded memory.

A dataset is a folder of `part-00000.parquet`, `part-00001.parquet`, ... all with PAIR_SCHEMA.
Writers flush every `batch_size` pairs and roll to a new shard every `shard_size` pairs, so
memory is bounded by the batch, never by the dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rewardops.data.schema import PAIR_SCHEMA, PreferencePair, pairs_to_table

SHARD_GLOB = "part-*.parquet"


def shard_paths(path: str | Path) -> list[Path]:
    """The shards of a dataset folder (or the single file given), in order."""
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise FileNotFoundError(f"{p}: no such dataset folder or Parquet file")
    return sorted(p.glob(SHARD_GLOB))


class ShardWriter:
    """Streams pairs into numbered Parquet shards under `out_dir`."""

    def __init__(
        self,
        out_dir: str | Path,
        shard_size: int = 100_000,
        batch_size: int = 4_096,
        prefix: str = "part",
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.batch_size = batch_size
        self.prefix = prefix
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

    def _flush(self) -> None:
        while self._buffer:
            if self._writer is None:
                path = self.out_dir / f"{self.prefix}-{len(self.paths):05d}.parquet"
                self.paths.append(path)
                self._writer = pq.ParquetWriter(path, PAIR_SCHEMA, compression="zstd")
                self._in_shard = 0
            room = self.shard_size - self._in_shard
            chunk, self._buffer = self._buffer[:room], self._buffer[room:]
            self._writer.write_table(pairs_to_table(chunk))
            self._in_shard += len(chunk)
            if self._in_shard >= self.shard_size:
                self._writer.close()
                self._writer = None

    def close(self) -> list[Path]:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not self.paths:  # an empty dataset is still a valid dataset
            path = self.out_dir / f"{self.prefix}-00000.parquet"
            pq.write_table(PAIR_SCHEMA.empty_table(), path)
            self.paths.append(path)
        return self.paths

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_pairs(pairs: Iterable[PreferencePair], out_dir: str | Path, shard_size: int = 100_000) -> list[Path]:
    with ShardWriter(out_dir, shard_size=shard_size) as w:
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


def count_pairs(path: str | Path) -> int:
    return sum(pq.ParquetFile(s).metadata.num_rows for s in shard_paths(path))
