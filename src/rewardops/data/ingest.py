"""Ingest: read sources, validate every row, write pairs + quarantine + report.json.

Output folder (written atomically, `rewardops.outputs`): `part-*.parquet` (the good pairs),
`quarantine.jsonl` (every bad row with source file, row and reason), `report.json` and
`_manifest.json`. Memory is bounded by one shard-writer batch plus 16-32 bytes per pair id.

Sources: a file given twice (or by a relative and an absolute path, or through a symlink or a
folder) is one source, read once; the repeats are listed in report.json's `duplicate_sources`.
Pair ids are `<tag>:<row>` where the tag is the file's `parent/stem`, lengthened by more parent
folders when two different files would share it, so ids are unique across sources; a row whose id
was already written (rows of the `pairs` format keep their own ids) is quarantined as
`duplicate_id`.

File-level faults (corrupt or truncated compression, unreadable Parquet, broken JSON structure, an
undetectable format or encoding) stop the run with one message naming the file and the last good
row, and nothing is written; with `keep_partial` the rows read before the fault are kept and the
fault is listed in report.json's `file_faults`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rewardops.data.dedup import DigestSet
from rewardops.data.readers import (
    ReadResult,
    SourceFault,
    canonical_source,
    expand_sources,
    file_tag,
    is_local,
    read_source,
    source_name,
)
from rewardops.data.report import RunReport, SourceCounts
from rewardops.data.shards import ShardWriter
from rewardops.data.validation import DEFAULT_MAX_ROW_BYTES, Quarantine, Reason, RowError
from rewardops.outputs import atomic_output

QUARANTINE_FILE = "quarantine.jsonl"
ProgressFn = Callable[[str, int], None]  # (source, rows since the last call)
PROGRESS_EVERY = 1_000


def unique_sources(files: Sequence[str]) -> tuple[list[str], list[str]]:
    """(sources in order, each canonical source once; the repeats that were dropped)."""
    seen: set[str] = set()
    kept, repeats = [], []
    for f in files:
        key = canonical_source(f)
        if key in seen:
            repeats.append(f)
        else:
            seen.add(key)
            kept.append(f)
    return kept, repeats


def id_tags(files: Sequence[str]) -> dict[str, str]:
    """A short tag per local source, unique among `files`: `parent/stem`, with more parent folders
    when two different files would share it (derived from the canonical path only)."""
    local = [f for f in files if is_local(f)]
    paths = {f: Path(canonical_source(f)) for f in local}
    depth = {f: 1 for f in local}

    def tag(f: str) -> str:
        p = paths[f]
        base = file_tag(p).rsplit("/", 1)[-1]
        parents = [q.name for q in p.parents if q.name][: depth[f]]
        return "/".join([*reversed(parents), base])

    for _ in range(64):
        tags: dict[str, list[str]] = {}
        for f in local:
            tags.setdefault(tag(f), []).append(f)
        clashes = [fs for fs in tags.values() if len(fs) > 1]
        if not clashes:
            break
        for fs in clashes:
            for f in fs:
                depth[f] += 1
    return {f: tag(f) for f in local}


def _id_key(pair_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(pair_id.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def ingest(
    srcs: Sequence[str | Path],
    out_dir: str | Path,
    fmt: str | None = None,
    strict: bool = False,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    shard_size: int = 100_000,
    progress: ProgressFn | None = None,
    keep_partial: bool = False,
    expected_pairs: int = 1 << 16,
    max_decompressed_bytes: int | None = None,
) -> RunReport:
    """Read every source (files, folders of files, or hub ids) into one validated dataset.

    In strict mode the first bad row raises `ValidationError` (file, row, reason). A file-level
    fault raises `SourceFault` unless `keep_partial`. Either way nothing is written then.
    A compressed file that expands past `max_decompressed_bytes` (default:
    `rewardops.data.readers.decompressed_cap`) is such a fault: a decompression bomb.
    """
    out = Path(out_dir)
    given = [str(s) for s in srcs]
    local_inputs = [s for s in given if is_local(s)]
    # refuse an output that is, holds or sits inside an input before reading anything
    with atomic_output(out, inputs=local_inputs, kind="dataset") as tmp:
        files, repeats = unique_sources(expand_sources(given))
        tags = id_tags(files)
        report = RunReport(stage="ingest", info={"inputs": files, "format": fmt, "strict": strict})
        if repeats:
            report.info["duplicate_sources"] = repeats
        faults: list[dict[str, object]] = []
        ids = DigestSet(2 * expected_pairs)
        with ShardWriter(tmp, shard_size=shard_size) as writer, Quarantine(tmp / QUARANTINE_FILE, strict) as quarantine:

            def flush(batch: list[ReadResult], counts: SourceCounts) -> None:
                """Rows in read order; pair ids checked against every id written so far, a batch at once."""
                good = [r for r in batch if r.pair is not None]
                fresh = ids.add_batch(np.array([_id_key(r.pair.id) for r in good], dtype=np.uint64)) if good else []
                is_new = {id(r): bool(f) for r, f in zip(good, fresh)}
                for r in batch:
                    pair, error = r.pair, r.error
                    if pair is not None and not is_new[id(r)]:
                        pair, error = None, RowError(Reason.DUPLICATE_ID, f"pair id {pair.id!r} was already written by this run")
                    if pair is not None:
                        writer.write(pair)
                        counts.kept += 1
                    else:
                        assert error is not None
                        quarantine.add(r.source_file, r.row, error, r.raw)
                        counts.quarantined[error.reason.value] += 1
                batch.clear()

            for src in files:
                name = source_name(src)
                counts = report.source(name)
                batch: list[ReadResult] = []
                try:
                    for result in read_source(src, fmt=fmt, max_row_bytes=max_row_bytes, source=name, id_prefix=tags.get(src),
                                              max_decompressed_bytes=max_decompressed_bytes):
                        counts.rows_in += 1
                        batch.append(result)
                        if len(batch) >= PROGRESS_EVERY:
                            flush(batch, counts)
                            if progress is not None:
                                progress(name, PROGRESS_EVERY)
                except SourceFault as fault:
                    if not keep_partial:
                        raise
                    faults.append({"file": fault.source_file, "last_good_row": fault.last_row, "error": fault.detail})
                pending = len(batch)
                flush(batch, counts)
                if progress is not None and pending:
                    progress(name, pending)
        if faults:
            report.info["file_faults"] = faults
            report.info["keep_partial"] = True
        report.info["quarantine_file"] = str(out / QUARANTINE_FILE)
        report.write(tmp)
    return report
