"""Bounded memory on hostile inputs: a small compressed file that expands enormously, and a small
Parquet file with one enormous cell. Peak memory is measured in a fresh subprocess (ru_maxrss),
so the test process's own memory does not count; the bomb files are written in chunks, never
held whole."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BOMB_MIB = 400  # decompressed size of the bomb's one huge string; the .json.gz is ~0.4 MB

INGEST_PEAK = """
import json, resource, sys
from rewardops.data.ingest import ingest
kw = json.loads(sys.argv[3])
report = ingest([sys.argv[1]], sys.argv[2], keep_partial=True, **kw)
print(json.dumps({"peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "per_source": {k: {"rows_in": v.rows_in, "kept": v.kept, "quarantined": dict(v.quarantined)}
                                 for k, v in report.per_source.items()},
                  "faults": report.info.get("file_faults", [])}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _run(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ingest_peak(src: Path, out: Path, **kw: object) -> dict:
    return _run(INGEST_PEAK, str(src), str(out), json.dumps(kw))


def _bomb(path: Path) -> Path:
    """A JSON list: a normal record, one record holding a BOMB_MIB MiB string, a normal record."""
    record = {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as fh:
        fh.write("[" + json.dumps(record) + ', {"prompt": "p", "rejected": "r", "chosen": "')
        block = "a" * (1 << 20)
        for _ in range(BOMB_MIB):
            fh.write(block)
        fh.write('"}, ' + json.dumps({**record, "prompt": "What is 3+3?"}) + "]")
    return path


@pytest.mark.slow
def test_json_gz_bomb_peak_rss_stays_near_a_normal_file(shared_data: Path, tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.json.gz")
    normal = tmp_path / "normal.json.gz"
    normal.write_bytes(gzip.compress((shared_data / "llama-factory" / "dpo_en_demo.json").read_bytes(), 9))
    assert 0.2e6 < bomb.stat().st_size < 0.6e6 and 0.2e6 < normal.stat().st_size < 0.6e6  # the same size class

    base = _ingest_peak(normal, tmp_path / "normal-out")
    (normal_counts,) = base["per_source"].values()
    assert normal_counts["kept"] > 250

    # default cap: the bomb is a file fault naming the file and what to do; nothing read whole
    capped = _ingest_peak(bomb, tmp_path / "bomb-out")
    (fault,) = capped["faults"]
    assert fault["file"].endswith("bomb.json.gz") and "decompresses to more than" in fault["error"]
    assert "max_decompressed_bytes" in fault["error"]
    assert capped["peak_kib"] <= 1.5 * base["peak_kib"], (capped["peak_kib"], base["peak_kib"])

    # the cap raised past the bomb: the file is streamed, the huge record quarantined, the others kept
    streamed = _ingest_peak(bomb, tmp_path / "bomb-out2", max_decompressed_bytes=(BOMB_MIB + 1) << 20)
    (counts,) = streamed["per_source"].values()
    assert counts == {"rows_in": 3, "kept": 2, "quarantined": {"row_too_large": 1}} and not streamed["faults"]
    assert streamed["peak_kib"] <= 1.5 * base["peak_kib"], (streamed["peak_kib"], base["peak_kib"])


def test_jsonl_gz_past_the_cap_is_a_file_fault(tmp_path: Path) -> None:
    from rewardops.data.readers import SourceFault, read_source

    src = tmp_path / "lines.jsonl.gz"
    line = json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        fh.write(line * 2000)
    assert len(list(read_source(src))) == 2000
    assert len(line) * 2000 > 80_000
    with pytest.raises(SourceFault, match=r"lines\.jsonl\.gz: decompresses to more than 80000 bytes.*after row \d+ \(the last good row\)"):
        list(read_source(src, max_decompressed_bytes=80_000))


PARQUET_CELL = """
import json, sys, tracemalloc
import pyarrow as pa, pyarrow.compute as pc, pyarrow.parquet as pq
big = pc.binary_repeat(pa.array(["a"]), 300 << 20)  # a 300 MiB cell made in Arrow, not in Python
chosen = pa.concat_arrays([pa.array(["a1"]), big, pa.array(["a3"])])
table = pa.table({"prompt": ["p1", "p2", "p3"], "chosen": chosen, "rejected": ["r1", "r2", "r3"]})
pq.write_table(table, sys.argv[1], compression="zstd")
del table, chosen, big
from rewardops.data.readers import read_source
tracemalloc.start()
rows = [(r.row, r.error.reason.value if r.error else None) for r in read_source(sys.argv[1])]
print(json.dumps({"rows": rows, "python_peak": tracemalloc.get_traced_memory()[1]}))
"""


@pytest.mark.slow
def test_parquet_cell_size_is_checked_before_python_objects(tmp_path: Path) -> None:
    src = tmp_path / "cell.parquet"
    got = _run(PARQUET_CELL, str(src))
    assert src.stat().st_size < 100_000
    assert got["rows"] == [[1, None], [2, "row_too_large"], [3, None]]
    # no Python object of the 300 MiB cell was made (Python-side allocations stay small)
    assert got["python_peak"] < 20 << 20, got["python_peak"]
