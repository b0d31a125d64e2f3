"""Pre-processing (paper App. C.1): structural check, global exact dedup, 13-gram decontamination.

The structural check is `rewardops.data.validation.check_pair`, the one ingest applies, run
vectorised (`check_table`).

Streams record batches over any number of input shards and writes the kept rows as new shards.
Memory: one Arrow batch (`batch_size` rows) + the dedup `DigestSet` (16-32 bytes per distinct
pair) + the prompt n-gram index (under ~100 bytes per distinct prompt n-gram: 3 MB for the 3,275
prompts of the evaluation fixtures); no per-row Python
objects outlive their batch. Outputs: `part-*.parquet`, `quarantine.jsonl` (rows failing the
structural check), `dropped.jsonl` (id, source, shard, row and reason of every duplicate or
contaminated pair; for contaminated ones, which prompt matched) and `report.json`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rewardops.data.decontaminate import DEFAULT_N, Decontaminator
from rewardops.data.dedup import DigestSet, combine_keys, role_codes
from rewardops.data.ingest import QUARANTINE_FILE
from rewardops.data.report import RunReport
from rewardops.data.schema import PAIR_SCHEMA
from rewardops.data.shards import ShardWriter, shard_paths
from rewardops.data.texthash import TextBatch
from rewardops.data.validation import Quarantine, RowError, check_table
from rewardops.outputs import atomic_output
from rewardops.errors import DataError
from rewardops.errors import NotFoundError

DROPPED_FILE = "dropped.jsonl"
ProgressFn = Callable[[int], None]  # rows done since the last call


def _count_by_source(report: RunReport, sources: pa.Array, mask: np.ndarray, field: str, reason: str | None = None) -> None:
    if not mask.any():
        return
    for item in pc.value_counts(sources.filter(pa.array(mask))).to_pylist():
        counts = report.source(item["values"])
        if reason is not None:
            counts.quarantined[reason] += item["counts"]
        else:
            setattr(counts, field, getattr(counts, field) + item["counts"])


def _with_lineage(table: pa.Table, step: str) -> pa.Table:
    """Append `step` to every row's lineage list, without a Python object per row."""
    col = table.column("lineage").combine_chunks()
    if col.null_count:
        col = pc.fill_null(col, pa.scalar([], col.type))
    n = len(col)
    old_off = col.offsets.to_numpy().astype(np.int64)
    lengths = np.diff(old_off)
    values = col.flatten()
    new_off = np.concatenate(([0], np.cumsum(lengths + 1)))
    row = np.repeat(np.arange(n), lengths + 1)
    pos = np.arange(int(new_off[-1])) - new_off[row]
    src = (old_off[row] - old_off[0]) + pos
    src[pos == lengths[row]] = len(values)  # the appended step
    new_values = pa.concat_arrays([values.cast(pa.string()), pa.array([step], pa.string())]).take(pa.array(src))
    lineage = pa.ListArray.from_arrays(pa.array(new_off.astype(np.int32)), new_values)
    idx = table.schema.get_field_index("lineage")
    return table.set_column(idx, PAIR_SCHEMA.field("lineage"), lineage)


PROMPT_FILES = "prompt files"  # the label of prompts given as a plain list (from --decontaminate files)


@dataclass
class LabelledPrompts:
    """Distinct benchmark prompts and, for each, the benchmarks it belongs to."""

    prompts: list[str]
    labels: list[tuple[str, ...]]
    per_label: dict[str, int]  # benchmark -> its distinct prompts

    @classmethod
    def build(cls, prompts: Iterable[str] | Mapping[str, Iterable[str]]) -> "LabelledPrompts":
        groups = prompts.items() if isinstance(prompts, Mapping) else [(PROMPT_FILES, prompts)]
        index: dict[str, int] = {}
        texts: list[str] = []
        labels: list[list[str]] = []
        per_label: dict[str, int] = {}
        for label, group in groups:
            per_label.setdefault(label, 0)
            for text in group:
                i = index.get(text)
                if i is None:
                    i = index[text] = len(texts)
                    texts.append(text)
                    labels.append([])
                if label not in labels[i]:
                    labels[i].append(label)
                    per_label[label] += 1
        return cls(texts, [tuple(x) for x in labels], per_label)


class ShardFault(DataError):
    """An input shard that cannot be read as pairs (unreadable Parquet, wrong schema)."""


def _shard_tables(shard: Path, batch_size: int) -> Iterable[pa.Table]:
    """The record batches of one input shard as PAIR_SCHEMA tables; a shard that is not a readable
    pair shard is one ShardFault naming it and its last good row (and the run writes nothing)."""
    row = 0
    try:
        pf = pq.ParquetFile(shard)
        missing = [f.name for f in PAIR_SCHEMA if f.name not in pf.schema_arrow.names]
        if missing:
            raise ShardFault(f"{shard}: not a pair shard (no column {', '.join(missing)}); pass datasets written by "
                             "ingest, generate or preprocess (other files go through `rewardops ingest` first)")
        for batch in pf.iter_batches(batch_size=batch_size, columns=PAIR_SCHEMA.names):
            table = pa.Table.from_batches([batch]).cast(PAIR_SCHEMA)
            yield table
            row += table.num_rows
    except ShardFault:
        raise
    except (OSError, pa.ArrowException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ShardFault(f"{shard}: unreadable Parquet shard after row {row} (the last good row): {first}; "
                         "nothing was written") from None


def preprocess(
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    prompts: Iterable[str] | Mapping[str, Iterable[str]] | None = None,
    n: int = DEFAULT_N,
    dedup: bool = True,
    batch_size: int = 4_096,
    shard_size: int = 100_000,
    progress: ProgressFn | None = None,
    expected_pairs: int = 1 << 16,
    report_info: Mapping[str, Any] | None = None,
) -> RunReport:
    """Structural check, then dedup, then decontamination against `prompts`: an iterable of
    benchmark prompt strings (from `load_prompts(files)`), or a mapping benchmark name -> its
    prompts (`rewardops.evaluation.prompts.benchmark_prompts`), which makes the report count the
    contaminated pairs per benchmark (`contaminated_by_benchmark`; a pair whose matched prompt
    belongs to several benchmarks counts for each). `report_info` is added to report.json."""
    in_list = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    shards = []
    for src in in_list:
        found = shard_paths(src, verify=False)
        if found and Path(src).is_dir():
            found = shard_paths(src)  # a dataset folder must be a complete, verified output
        if not found:
            raise NotFoundError(
                f"{src}: no part-*.parquet shards (an input must be a dataset written by ingest, "
                "generate or preprocess; benchmark prompt files go after --decontaminate, one flag per path)"
            )
        shards.extend(found)
    out = Path(out_dir)
    labelled = LabelledPrompts.build(prompts) if prompts is not None else None
    decon = Decontaminator(labelled.prompts, n=n) if labelled is not None else None
    seen = DigestSet(2 * expected_pairs)  # stays under half full without growing
    hits: Counter[str] = Counter({label: 0 for label in (labelled.per_label if labelled else {})})
    report = RunReport(stage="preprocess", info={
        "inputs": [str(s) for s in in_list],
        "shards_in": len(shards),
        "dedup": dedup,
        "decontamination": None if decon is None or labelled is None else {
            "n": n, "prompts": len(decon.prompts), "prompt_ngrams": len(decon),
            "prompts_per_benchmark": dict(labelled.per_label),
        },
        **(report_info or {}),
    })
    with atomic_output(out, inputs=in_list, kind="dataset") as tmp:
        writer = ShardWriter(tmp, shard_size=shard_size, batch_size=batch_size)
        with Quarantine(tmp / QUARANTINE_FILE) as quarantine, open(tmp / DROPPED_FILE, "w", encoding="utf-8") as dropped:
            for shard in shards:
                row0 = 0
                for table in _shard_tables(shard, batch_size):
                    _process_batch(table, shard, row0, decon, seen if dedup else None, report, writer, quarantine,
                                   dropped, labelled, hits)
                    row0 += table.num_rows
                    if progress is not None:
                        progress(table.num_rows)
        writer.close()
        report.info["dedup_table_bytes"] = seen.nbytes
        report.info["prompt_index_bytes"] = 0 if decon is None else decon.nbytes
        if labelled is not None:
            report.info["contaminated_by_benchmark"] = dict(sorted(hits.items()))
        report.write(tmp)
    return report


@dataclass
class BatchDecision:
    """What pre-processing decides for each row of a batch (masks are over the batch's rows)."""

    errors: list[tuple[int, RowError]]  # rows failing the structural check
    duplicate: np.ndarray
    contaminated: np.ndarray
    prompt_of: np.ndarray  # the benchmark prompt a row shares an n-gram with, or -1
    keep: np.ndarray


def decide_batch(table: pa.Table, decon: Decontaminator | None, seen: DigestSet | None) -> BatchDecision:
    """Structural check, then dedup against (and into) `seen`, then decontamination. No I/O."""
    rows = table.num_rows
    # Every text of the batch in one array: the turns' contents, then chosen, then rejected.
    conv = table.column("conversation").combine_chunks()
    conv_off = conv.offsets.to_numpy().astype(np.int64)
    turns = conv.flatten()
    contents = turns.field("content").cast(pa.string())
    chosen = table.column("chosen").combine_chunks().cast(pa.string())
    rejected = table.column("rejected").combine_chunks().cast(pa.string())
    n_turns = len(contents)
    texts = TextBatch(pa.concat_arrays([contents, chosen, rejected]))
    hashes, _ = texts.normalized_hashes()
    turn_row = np.repeat(np.arange(rows), np.diff(conv_off))

    errors = check_table(table)  # the structural check every entry applies (validation.check_pair)
    keep = np.ones(rows, dtype=bool)
    keep[[i for i, _ in errors]] = False

    dup = np.zeros(rows, dtype=bool)
    if seen is not None:
        keys = combine_keys(conv_off, role_codes(turns.field("role")), hashes[:n_turns],
                            hashes[n_turns : n_turns + rows], hashes[n_turns + rows :])
        idx = np.flatnonzero(keep)
        dup[idx[~seen.add_batch(keys[idx])]] = True
        keep &= ~dup

    contaminated = np.zeros(rows, dtype=bool)
    prompt_of = np.full(rows, -1, dtype=np.int64)
    if decon is not None:
        tok, text_of = texts.token_hashes()
        per_text = decon.match_tokens(tok, text_of, len(texts))
        pair_of_text = np.concatenate([turn_row, np.arange(rows), np.arange(rows)])
        hit = per_text >= 0
        prompt_of[pair_of_text[hit]] = per_text[hit]
        contaminated = keep & (prompt_of >= 0)
        keep &= ~contaminated
    return BatchDecision(errors, dup, contaminated, prompt_of, keep)


def _process_batch(
    table: pa.Table,
    shard: Path,
    row0: int,
    decon: Decontaminator | None,
    seen: DigestSet | None,
    report: RunReport,
    writer: ShardWriter,
    quarantine: Quarantine,
    dropped: IO[str],
    labelled: LabelledPrompts | None = None,
    hits: Counter[str] | None = None,
) -> None:
    sources = table.column("source").combine_chunks()
    _count_by_source(report, sources, np.ones(table.num_rows, bool), "rows_in")
    d = decide_batch(table, decon, seen)
    for i, err in d.errors:
        quarantine.add(str(shard), row0 + i + 1, err, {"id": table.column("id")[i].as_py(), "source": sources[i].as_py()})
        report.source(sources[i].as_py()).quarantined[err.reason.value] += 1
    _count_by_source(report, sources, d.duplicate, "duplicates")
    _log_dropped(dropped, table, shard, row0, d.duplicate, "duplicate")
    _count_by_source(report, sources, d.contaminated, "contaminated")
    _log_dropped(dropped, table, shard, row0, d.contaminated, "contaminated", decon, d.prompt_of, labelled)
    if labelled is not None and hits is not None and d.contaminated.any():
        for p in d.prompt_of[d.contaminated].tolist():
            hits.update(labelled.labels[p])
    _count_by_source(report, sources, d.keep, "kept")
    if d.keep.any():
        kept = table.filter(pa.array(d.keep)) if not d.keep.all() else table
        writer.write_table(_with_lineage(kept.cast(PAIR_SCHEMA), "preprocess"))


def _log_dropped(
    fh: IO[str],
    table: pa.Table,
    shard: Path,
    row0: int,
    mask: np.ndarray,
    reason: str,
    decon: Decontaminator | None = None,
    prompt_of: np.ndarray | None = None,
    labelled: LabelledPrompts | None = None,
) -> None:
    rows = np.flatnonzero(mask)
    if not len(rows):
        return
    picked = pa.array(rows)
    ids = table.column("id").take(picked).to_pylist()
    sources = table.column("source").take(picked).to_pylist()
    shard_s = json.dumps(str(shard))
    lines = []
    for k, i in enumerate(rows.tolist()):
        line = (f'{{"id": {json.dumps(ids[k])}, "source": {json.dumps(sources[k])}, "shard": {shard_s}, '
                f'"row": {row0 + i + 1}, "reason": "{reason}"')
        if decon is not None and prompt_of is not None:
            p = int(prompt_of[i])
            line += f', "prompt_index": {p}, "prompt": {json.dumps(decon.prompts[p][:200])}'
            if labelled is not None:
                line += f', "benchmarks": {json.dumps(list(labelled.labels[p]))}'
        lines.append(line + "}\n")
    fh.write("".join(lines))


def warm_up() -> None:
    """Load (or compile) the numba kernels now rather than on the first batch (lives here, above
    texthash, dedup and decontaminate, so that none of them imports another's user)."""
    from rewardops.data.dedup import pair_keys
    from rewardops.data.schema import MESSAGE_TYPE
    from rewardops.data.texthash import KERNELS

    if KERNELS is None:
        return
    texts = pa.array(["warm up these kernels", "caf\u00e9 na\u00efve \U0001f60a"])
    Decontaminator(["warm up these kernels"], n=2).match_texts(texts)
    conv = pa.array([[{"role": "user", "content": "hi"}]] * 2, pa.list_(MESSAGE_TYPE))
    DigestSet(16).add_batch(pair_keys(conv, texts, texts))
