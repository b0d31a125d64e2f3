"""Fault injection for stage 2: SIGKILL at a random point of progress, then check what consumers see.

Stage 2 runs in a subprocess (tests/faults/stage2_worker.py: the real `Stage2Filter` over a real
sharded pool, with deterministic hash RMs that sleep per batch so the kill lands mid-run) and is
killed once it has scored a number of batches drawn from the seed. Two shapes:
- `atomic`, the step function's (`curation.steps.stage2_shard`): the filter writes inside
  `rewardops.outputs.atomic_output`. After the kill no consumer accepts the output (a fresh one is
  absent and unverifiable; a replaced one is still the previous complete output, byte for byte);
  a rerun completes and its manifest verifies.
- `direct`: `Stage2Filter.run` into a folder (per-shard markers). After the kill the folder has no
  completion record and the dataset readers refuse its sets; a rerun redoes only unfinished shards.
Every completed run conserves pairs (kept + discarded + no_verdict = input rows, no duplicates) and
keeps exactly the pairs of an uninterrupted run.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rewardops.data.shards import read_pairs, write_pairs
from rewardops.outputs import IncompleteOutputError, is_complete, verify_output

import stage2_worker  # tests/faults is on sys.path (no package)
from faultdata import arithmetic_pairs

WORKER = Path(stage2_worker.__file__)
SETS = ("kept", "discarded", "no_verdict", "recycled")
N_PAIRS = 48


pytestmark = pytest.mark.slow  # stage-2 worker subprocesses killed and resumed


def _ids(folder: Path) -> dict[str, list[str]]:
    """Pair ids per set, read straight from the Parquet files (what a careless consumer would see)."""
    return {name: sorted(i for f in sorted((folder / name).glob("part-*.parquet")) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist())
            for name in SETS}


def _conserved(ids: dict[str, list[str]]) -> None:
    decided = ids["kept"] + ids["discarded"] + ids["no_verdict"]
    assert len(decided) == N_PAIRS and len(set(decided)) == N_PAIRS  # nothing lost, nothing doubled
    assert set(ids["recycled"]) <= set(ids["discarded"])


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stage2-pool") / "pool"
    write_pairs(arithmetic_pairs(N_PAIRS, seed=4), path, shard_size=8)
    return path


@pytest.fixture(scope="module")
def reference(pool, tmp_path_factory) -> dict[str, list[str]]:
    out = tmp_path_factory.mktemp("stage2-ref") / "out"
    stage2_worker.run("direct", pool, out)
    ids = _ids(out)
    _conserved(ids)
    assert ids["kept"] and ids["discarded"]  # both routes exercised
    return ids


def _kill_mid_run(mode: str, pool: Path, out: Path, seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    trace = tmp_path / "trace"
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen([sys.executable, str(WORKER), mode, str(pool), str(out), "0.12", str(trace)],
                            stdout=log, stderr=subprocess.STDOUT)
    # killed on progress, not on a clock: once the run has scored `at` of its 12 batches (>= 0.12 s each)
    at = rng.randint(1, N_PAIRS // 4 - 1)
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and (
            not trace.exists() or len(trace.read_text().split()) < at):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "worker.log").read_text()[-3000:]
    batches = len(trace.read_text().split())
    assert at <= batches <= N_PAIRS // 4, "the kill did not land mid-run"


@pytest.mark.parametrize("seed,replacing", [(7, False), (8, True)], ids=["fresh-seed7", "replacing-seed8"])
def test_atomic_stage2_killed_is_never_accepted(seed, replacing, pool, reference, tmp_path):
    out = tmp_path / "shard-out"
    if replacing:  # a complete output from an earlier run is being rewritten when the kill comes
        stage2_worker.run("atomic", pool, out)
        before = verify_output(out, stage2_worker.SHARD_KIND)
    _kill_mid_run("atomic", pool, out, seed, tmp_path)
    leftovers = list(tmp_path.glob(".shard-out.tmp-*"))
    assert leftovers  # the kill hit inside the atomic output: its temporary sibling is left behind
    if replacing:
        assert verify_output(out, stage2_worker.SHARD_KIND) == before  # still the previous complete output
        assert _ids(out) == reference
    else:
        assert not is_complete(out)
        with pytest.raises(IncompleteOutputError, match="no such output folder"):
            verify_output(out, stage2_worker.SHARD_KIND)
        for name in SETS:
            with pytest.raises(FileNotFoundError):
                list(read_pairs(out / name))
    stage2_worker.run("atomic", pool, out)  # the rerun completes and cleans up
    manifest = verify_output(out, stage2_worker.SHARD_KIND)
    assert not list(tmp_path.glob(".shard-out.tmp-*"))
    ids = _ids(out)
    _conserved(ids)
    assert ids == reference
    rows = sum(f["rows"] for f in manifest["files"]
               if f["path"].endswith(".parquet") and f["path"].split("/")[0] in ("kept", "discarded", "no_verdict"))
    assert rows == N_PAIRS  # the manifest's row counts conserve the pairs too


@pytest.mark.parametrize("seed", [21, 22])
def test_direct_stage2_killed_is_refused_then_resumes_exactly(seed, pool, reference, tmp_path):
    out = tmp_path / "out"
    _kill_mid_run("direct", pool, out, seed, tmp_path)
    assert not (out / "summary.json").exists() and not (out / "manifest.json").exists()  # no completion record
    with pytest.raises(IncompleteOutputError):
        verify_output(out)
    for name in SETS:
        if (out / name).is_dir():
            with pytest.raises(IncompleteOutputError, match="not a complete output"):
                list(read_pairs(out / name))
    done = sorted((out / "_progress").glob("shard-*.json")) if (out / "_progress").is_dir() else []
    assert len(done) < 6
    summary = stage2_worker.run("direct", pool, out)
    assert summary["shards_done"] == 6 and summary["input_rows"] == N_PAIRS
    assert sum(summary["outputs"].get(s, 0) for s in ("kept", "discarded", "no_verdict")) == N_PAIRS
    ids = _ids(out)
    _conserved(ids)
    assert ids == reference
    assert len(list(read_pairs(out / "kept"))) == len(ids["kept"])  # the completed sets are accepted
    assert not (out / "_work").exists() or not any((out / "_work").iterdir())  # no half-written shard left
