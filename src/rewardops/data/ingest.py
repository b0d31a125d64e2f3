"""Ingest: read sources, validate every row, write pairs + quarantine + report.json.

Output folder: `part-*.parquet` (the good pairs), `quarantine.jsonl` (every bad row with source
file, row and reason) and `report.json`. Memory is bounded by one shard-writer batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from rewardops.data.readers import expand_sources, is_local, read_source, source_name
from rewardops.data.report import RunReport
from rewardops.data.shards import ShardWriter
from rewardops.data.validation import DEFAULT_MAX_ROW_BYTES, Quarantine
from rewardops.outputs import atomic_output

QUARANTINE_FILE = "quarantine.jsonl"
ProgressFn = Callable[[str, int], None]  # (source, rows since the last call)
PROGRESS_EVERY = 1_000


def ingest(
    srcs: Sequence[str | Path],
    out_dir: str | Path,
    fmt: str | None = None,
    strict: bool = False,
    max_row_bytes: int = DEFAULT_MAX_ROW_BYTES,
    shard_size: int = 100_000,
    progress: ProgressFn | None = None,
) -> RunReport:
    """Read every source (files, folders of files, or hub ids) into one validated dataset.

    In strict mode the first bad row raises `ValidationError` (file, row, reason).
    """
    out = Path(out_dir)
    files = expand_sources([str(s) for s in srcs])
    report = RunReport(stage="ingest", info={"inputs": files, "format": fmt, "strict": strict})
    local_inputs = [s for s in [*map(str, srcs), *files] if is_local(s)]
    with atomic_output(out, inputs=local_inputs, kind="dataset") as tmp:
        with ShardWriter(tmp, shard_size=shard_size) as writer, Quarantine(tmp / QUARANTINE_FILE, strict) as quarantine:
            for src in files:
                name = source_name(src)
                counts = report.source(name)
                pending = 0
                for result in read_source(src, fmt=fmt, max_row_bytes=max_row_bytes, source=name):
                    counts.rows_in += 1
                    if result.pair is not None:
                        writer.write(result.pair)
                        counts.kept += 1
                    else:
                        assert result.error is not None
                        quarantine.add(result.source_file, result.row, result.error, result.raw)
                        counts.quarantined[result.error.reason.value] += 1
                    pending += 1
                    if progress is not None and pending >= PROGRESS_EVERY:
                        progress(name, pending)
                        pending = 0
                if progress is not None and pending:
                    progress(name, pending)
        report.info["quarantine_file"] = str(out / QUARANTINE_FILE)
        report.write(tmp)
    return report
