"""rewardops.outputs: atomic swap, one writer per output, overlap refusal, manifest verification."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rewardops.data.schema import Message, PreferencePair
from rewardops.data.shards import ShardWriter, count_pairs, read_pairs, shard_paths, write_pairs
from rewardops.outputs import (
    MANIFEST,
    IncompleteOutputError,
    OutputError,
    OutputLockedError,
    atomic_output,
    lock_path,
    seal_output,
    verify_output,
    write_json_atomic,
)


def pairs(n: int, prefix: str = "p") -> list[PreferencePair]:
    return [PreferencePair(id=f"{prefix}{i}", conversation=[Message("user", f"q{i}")], chosen=f"good {i}",
                           rejected=f"bad {i}", source="t") for i in range(n)]


def test_atomic_output_swaps_in_a_verified_folder_and_replaces_the_old_one(tmp_path):
    out = tmp_path / "out"
    with atomic_output(out, kind="test") as tmp:
        assert tmp != out and tmp.parent == out.parent and not out.exists()
        (tmp / "a.txt").write_text("one")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("two")
    m = verify_output(out, kind="test")
    assert [f["path"] for f in m["files"]] == ["a.txt", "sub/b.txt"] and m["bytes"] == 6
    assert all(len(f["sha256"]) == 64 for f in m["files"]) and m["created_at"]
    with atomic_output(out, kind="test") as tmp:
        (tmp / "c.txt").write_text("three")
        assert (out / "a.txt").read_text() == "one"  # the old output stays readable until the swap
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "c.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary, old or lock file left


def test_an_exception_leaves_the_old_output_intact(tmp_path):
    out = tmp_path / "out"
    write_pairs(pairs(5), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(out, shard_size=2) as w:
            for p in pairs(9, "new"):
                w.write(p)
            raise RuntimeError("boom")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.id for p in read_pairs(out)] == [f"p{i}" for i in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_kind_mismatch_and_output_overlapping_an_input_are_refused_before_touching_anything(tmp_path):
    src = tmp_path / "src"
    write_pairs(pairs(3), src)
    before = sorted(p.name for p in src.iterdir())
    for final, why in [(src, "is the input"), (src / "inner", "sits inside the input"), (tmp_path, "contains the input")]:
        with pytest.raises(OutputError, match=why):
            with atomic_output(final, inputs=[src]):
                raise AssertionError("must not be reached")
    assert sorted(p.name for p in src.iterdir()) == before and not lock_path(src).exists()
    # a relative spelling of the same folder is the same folder
    with pytest.raises(OutputError, match="is the input"):
        with atomic_output(src / ".." / "src", inputs=[src]):
            pass
    with pytest.raises(IncompleteOutputError, match="not a 'checkpoint'"):
        verify_output(src, kind="checkpoint")


def test_a_foreign_non_empty_folder_is_not_replaced(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match="not written by rewardops"):
        write_pairs(pairs(2), home)
    assert (home / "thesis.tex").read_text() == "years of work"


_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from rewardops.outputs import atomic_output
    with atomic_output(Path(sys.argv[1]), command="holder-cmd") as tmp:
        (tmp / "x").write_text("x")
        print("holding", flush=True)
        sys.stdin.readline()
""")


def test_a_second_writer_fails_at_once_naming_the_first(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(OutputLockedError, match=rf"pid {holder.pid}, `holder-cmd`"):
            with atomic_output(out):
                raise AssertionError("must not be reached")
        with pytest.raises(OutputLockedError):
            write_pairs(pairs(1), out)
    finally:
        holder.communicate("go\n", timeout=60)
    assert holder.returncode == 0
    assert (out / "x").read_text() == "x" and verify_output(out)["command"] == "holder-cmd"
    write_pairs(pairs(1), out)  # the lock is free again
    assert count_pairs(out) == 1


def test_a_killed_writer_leaves_the_old_output_and_its_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    write_pairs(pairs(4), out)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    holder.kill()
    holder.wait(timeout=60)
    assert count_pairs(out) == 4  # still the complete old output
    assert lock_path(out).exists() and any(p.name.startswith(".out.tmp-") for p in tmp_path.iterdir())
    write_pairs(pairs(2), out)  # the dead writer's flock died with it; its temporary folder is cleaned
    assert count_pairs(out) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_verify_detects_truncated_missing_extra_changed_files_and_a_missing_or_bad_manifest(tmp_path):
    def fresh(name: str):
        d = tmp_path / name
        write_pairs(pairs(30), d, shard_size=10)
        return d

    d = fresh("trunc")
    shard = shard_paths(d)[1]
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(IncompleteOutputError, match=r"part-00001.parquet: \d+ bytes on disk.*truncated.*re-running"):
        list(read_pairs(d))

    d = fresh("missing")
    shard_paths(d)[2].unlink()
    with pytest.raises(IncompleteOutputError, match="missing.*part-00002.parquet"):
        count_pairs(d)

    d = fresh("extra")
    (d / "part-00009.parquet").write_bytes((d / "part-00000.parquet").read_bytes())
    with pytest.raises(IncompleteOutputError, match="not in its manifest.*part-00009.parquet"):
        shard_paths(d)

    d = fresh("changed")
    shard = shard_paths(d)[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(IncompleteOutputError, match="sha256"):
        list(read_pairs(d))

    d = fresh("nomanifest")
    (d / MANIFEST).unlink()
    with pytest.raises(IncompleteOutputError) as e:
        list(read_pairs(d))
    assert str(d) in str(e.value) and "no _manifest.json" in str(e.value) and "re-running" in str(e.value)

    d = fresh("badmanifest")
    (d / MANIFEST).write_text("{not json")
    with pytest.raises(IncompleteOutputError, match="invalid manifest"):
        list(read_pairs(d))


def test_verification_notices_a_change_after_a_successful_read(tmp_path):
    d = tmp_path / "d"
    write_pairs(pairs(10), d)
    assert count_pairs(d) == 10
    shard = shard_paths(d)[0]
    shard.write_bytes(shard.read_bytes()[:-1])
    with pytest.raises(IncompleteOutputError):
        count_pairs(d)


def test_a_folder_of_hand_written_shards_is_refused_until_sealed(tmp_path):
    d = tmp_path / "hand"
    write_pairs(pairs(3), tmp_path / "src")
    d.mkdir()
    (d / "part-00000.parquet").write_bytes((tmp_path / "src" / "part-00000.parquet").read_bytes())
    with pytest.raises(IncompleteOutputError, match="hand"):
        list(read_pairs(d))
    seal_output(d)
    assert count_pairs(d) == 3


def test_write_json_atomic(tmp_path):
    p = tmp_path / "a" / "report.json"
    write_json_atomic(p, {"x": 1, "é": [1, 2]})
    assert json.loads(p.read_text(encoding="utf-8")) == {"x": 1, "é": [1, 2]}
    write_json_atomic(p, {"x": 2})
    assert json.loads(p.read_text()) == {"x": 2} and [q.name for q in p.parent.iterdir()] == ["report.json"]


def test_writers_inside_an_atomic_output_write_into_it_and_it_seals_everything(tmp_path):
    out = tmp_path / "out"
    with atomic_output(out) as tmp:
        write_pairs(pairs(3), tmp)  # straight into the staging folder
        write_pairs(pairs(2), tmp / "sub")  # a nested dataset gets its own manifest too
        (tmp / "report.json").write_text("{}")
    names = [f["path"] for f in verify_output(out)["files"]]
    assert names == ["part-00000.parquet", "report.json", "sub/_manifest.json", "sub/part-00000.parquet"]
    assert count_pairs(out) == 3 and count_pairs(out / "sub") == 2


def test_an_output_where_nothing_can_be_written_is_a_message(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):  # running as root: permissions do not bind; use a file as the parent
            (tmp_path / "file").write_text("x")
            target = tmp_path / "file" / "out"
        else:
            target = ro / "out"
        with pytest.raises(OutputError, match="cannot write next to it"):
            write_pairs(pairs(1), target)
    finally:
        ro.chmod(0o700)
