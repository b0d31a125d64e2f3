"""Per-shard processing with crash-safe resume.

Each input shard `part-00007.parquet` is processed on its own into `<out>/<output>/part-00007.parquet`
for every named output (kept, discarded, ...), written first under `<out>/_work/` and moved into
place, and then a marker `<out>/_progress/shard-00007.json` is written last. A rerun skips shards
with a marker and redoes any other shard from scratch, overwriting what a crashed attempt moved in:
no duplicates, no loss. Shards are independent, so a pipeline can fan out over them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rewardops.data.schema import PAIR_SCHEMA, PreferencePair
from rewardops.data.shards import shard_paths, verify_shard

BatchFn = Callable[[list[PreferencePair], Counter], Iterable[tuple[str, PreferencePair]]]
PROGRESS = "_progress"
WORK = "_work"


class _OutputFile:
    """One output Parquet file, written in batches (an empty file if nothing was written)."""

    def __init__(self, path: Path, batch_size: int) -> None:
        self.path = path
        self.batch_size = batch_size
        self.count = 0
        self._rows: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, pair: PreferencePair) -> None:
        self._rows.append(pair.to_row())
        self.count += 1
        if len(self._rows) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(self.path, PAIR_SCHEMA, compression="zstd")
        if self._rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=PAIR_SCHEMA))
            self._rows = []

    def close(self) -> Path:
        self._flush()
        assert self._writer is not None
        self._writer.close()
        return self.path


def marker_path(out_dir: Path, index: int) -> Path:
    return out_dir / PROGRESS / f"shard-{index:05d}.json"


def done_shards(out_dir: str | Path) -> dict[int, dict[str, Any]]:
    d = Path(out_dir) / PROGRESS
    if not d.is_dir():
        return {}
    return {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in sorted(d.glob("shard-*.json"))}


def process_shard(
    in_path: Path,
    index: int,
    out_dir: Path,
    outputs: Sequence[str],
    fn: BatchFn,
    batch_size: int = 4096,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    work = out_dir / WORK / f"shard-{index:05d}"
    shutil.rmtree(work, ignore_errors=True)
    writers = {name: _OutputFile(work / name / "part.parquet", batch_size) for name in outputs}
    counters: Counter = Counter()
    n_in = 0
    for batch in pq.ParquetFile(in_path).iter_batches(batch_size=batch_size):
        pairs = [PreferencePair.from_row(r) for r in batch.to_pylist()]
        n_in += len(pairs)
        for name, pair in fn(pairs, counters):
            if name not in writers:
                raise KeyError(f"{in_path}: batch function emitted unknown output {name!r}")
            writers[name].write(pair)
        if on_batch:
            on_batch(len(pairs))
    counts = {}
    for name, w in writers.items():
        path = w.close()
        dest = out_dir / name / f"part-{index:05d}.parquet"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        counts[name] = w.count
    marker = {"input": str(in_path), "input_rows": n_in, "outputs": counts, "counters": dict(counters)}
    mpath = marker_path(out_dir, index)
    mpath.parent.mkdir(parents=True, exist_ok=True)
    tmp = mpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(marker, indent=1, sort_keys=True))
    os.replace(tmp, mpath)
    shutil.rmtree(work, ignore_errors=True)
    return marker


def run_shards(
    in_dir: str | Path,
    out_dir: str | Path,
    outputs: Sequence[str],
    fn: BatchFn,
    only: Sequence[int] | None = None,
    batch_size: int = 4096,
    on_batch: Callable[[int], None] | None = None,
    on_skip: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[int, dict[str, Any]]:
    """Process every shard of `in_dir` (or the indices in `only`) not already done. The input's
    manifest and file sizes are checked whole, the content hash of each processed shard alone (a
    fanned-out worker never reads the other shards)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = shard_paths(in_dir, hashes=False)
    done = done_shards(out)
    indices = range(len(paths)) if only is None else only
    results: dict[int, dict[str, Any]] = {}
    for i in indices:
        if not 0 <= i < len(paths):
            raise IndexError(f"{in_dir}: shard index {i} out of range (it has {len(paths)} shards)")
        if i in done:
            if Path(done[i]["input"]).name != paths[i].name:
                raise RuntimeError(f"{out}: shard {i} was made from {done[i]['input']}, not {paths[i]}; use a fresh output folder")
            results[i] = done[i]
            if on_skip:
                on_skip(i, done[i])
            continue
        if Path(in_dir).is_dir():
            verify_shard(paths[i])
        results[i] = process_shard(paths[i], i, out, outputs, fn, batch_size=batch_size, on_batch=on_batch)
    return results


def summarize(out_dir: str | Path) -> dict[str, Any]:
    """Totals over every finished shard (what `manifest.json` records)."""
    done = done_shards(out_dir)
    outputs: Counter = Counter()
    counters: Counter = Counter()
    rows = 0
    for m in done.values():
        rows += m["input_rows"]
        outputs.update(m["outputs"])
        counters.update(m["counters"])
    return {"shards_done": len(done), "input_rows": rows, "outputs": dict(outputs), "counters": dict(counters)}
