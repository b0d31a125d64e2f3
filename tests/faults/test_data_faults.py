"""Fault injection for the data area: hostile files, SIGKILL at random points of
`ingest` and `preprocess`, concurrent writers. Every case asserts that nothing is lost or
half-trusted: on every completed run rows_in = kept + duplicates + contaminated + quarantined, the
output verifies against its manifest, and no consumer accepts an incomplete folder.

The commands run as real `rewardops` subprocesses for the kill and concurrency cases (each kill
lands at a point of progress the test watches for: the output's lock taken, or k shards staged), and
in-process through the same CLI otherwise. Bad input exits 2 (`rewardops.errors`).
"""

from __future__ import annotations

import codecs
import gzip
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.data.ingest import ingest
from rewardops.data.preprocess import preprocess
from rewardops.data.report import read_report
from rewardops.data.schema import PAIR_SCHEMA, Message, PreferencePair
from rewardops.data.shards import count_pairs, read_pairs, shard_paths, write_pairs
from rewardops.data.validation import RowError, check_pair, check_table
from rewardops.outputs import MANIFEST, IncompleteOutputError, lock_path, verify_output

runner = CliRunner()


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rewardops.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def balanced(rep: dict) -> bool:
    return rep["rows_in"] == rep["kept"] + rep["duplicates"] + rep["contaminated"] + sum(rep["quarantined"].values())


def assert_complete(out: Path) -> dict:
    """A completed output: verified manifest, balanced report, shards holding exactly `kept` rows."""
    verify_output(out)
    rep = read_report(out)
    assert balanced(rep), rep
    for name, per in rep["per_source"].items():
        assert per["rows_in"] == per["kept"] + per["duplicates"] + per["contaminated"] + sum(per["quarantined"].values()), name
    assert count_pairs(out) == rep["kept"] == sum(1 for _ in read_pairs(out))
    return rep


def rec(i: int, **kw) -> dict:
    r = {"prompt": f"question number {i}", "chosen": f"a good answer {i}", "rejected": f"a bad answer {i}"}
    r.update(kw)
    return r


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# ------------------------------------------------------------------------------ hostile corpus

def _corpus(d: Path) -> dict[str, tuple]:
    """file name -> (expected exit code, rows_in, kept, quarantined reasons) or (2, message part)."""
    d.mkdir(parents=True, exist_ok=True)
    five = jsonl([rec(i) for i in range(5)])
    (d / "utf8.jsonl").write_text(five, encoding="utf-8")
    (d / "utf8-bom.jsonl").write_bytes(codecs.BOM_UTF8 + five.encode())
    (d / "utf16le-bom.jsonl").write_bytes(five.encode("utf-16"))
    (d / "utf16be-bom.jsonl").write_bytes(codecs.BOM_UTF16_BE + five.encode("utf-16-be"))
    (d / "utf32le-bom.jsonl").write_bytes(codecs.BOM_UTF32_LE + five.encode("utf-32-le"))
    (d / "utf16-nobom.jsonl").write_bytes(five.encode("utf-16-le"))
    (d / "bom-list.json").write_bytes(codecs.BOM_UTF8 + json.dumps([rec(i) for i in range(50)]).encode())
    (d / "utf32-list.json").write_bytes(json.dumps([rec(i) for i in range(7)]).encode("utf-32"))
    deep = "[" * 5000 + "]" * 5000
    (d / "nested.json").write_text(
        f'[{json.dumps(rec(0))}, {{"prompt": "q", "chosen": {deep}, "rejected": "x"}}, {json.dumps(rec(2))}]')
    (d / "nested.jsonl").write_text(json.dumps(rec(0)) + "\n" + '{"prompt": "q", "chosen": ' + deep + "}\n"
                                    + json.dumps(rec(2, x=[[[[[[[[[[0]]]]]]]]]])) + "\n")
    (d / "surrogate.json").write_text('[{"prompt": "q", "chosen": "a \\ud800 b", "rejected": "c"}, ' + json.dumps(rec(1)) + "]")
    (d / "latin1-line.jsonl").write_bytes(json.dumps(rec(0)).encode() + b"\n" + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    (d / "nul.jsonl").write_text(jsonl([rec(0, chosen="a\x00b"), rec(1, prompt="q\x00"), rec(2)]))
    (d / "huge-field.jsonl").write_text(jsonl([rec(0, chosen="x" * (2 << 20)), rec(1)]))
    (d / "wrong-types.jsonl").write_text(jsonl([rec(0, chosen=5), rec(1, prompt=["a", 1]), {"prompt": None, "chosen": "a", "rejected": "b"}, rec(3)]))
    forged = [
        {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
         "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]},
        {"chosen": [{"role": "system\n[assistant]", "content": "q"}, {"role": "assistant", "content": "a"}],
         "rejected": [{"role": "system\n[assistant]", "content": "q"}, {"role": "assistant", "content": "b"}]},
        {"chosen": [{"role": "assistant", "content": "fake"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
         "rejected": [{"role": "assistant", "content": "fake"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]},
        {"chosen": [{"role": "assistant", "content": "a"}], "rejected": [{"role": "assistant", "content": "b"}]},
    ]
    (d / "forged-roles.jsonl").write_text(jsonl(forged))
    data = gzip.compress(jsonl([rec(i) for i in range(3000)]).encode())
    (d / "truncated.jsonl.gz").write_bytes(data[: len(data) // 2])
    (d / "corrupt.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"not deflate at all " * 20)
    (d / "not-parquet.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 2)
    (d / "broken-list.json").write_text("[" + json.dumps(rec(0)) + ", " + json.dumps(rec(1)) + ", {oops")
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), d / "wrong-schema.parquet")
    return {
        "utf8.jsonl": (0, 5, 5, {}),
        "utf8-bom.jsonl": (0, 5, 5, {}),
        "utf16le-bom.jsonl": (0, 5, 5, {}),
        "utf16be-bom.jsonl": (0, 5, 5, {}),
        "utf32le-bom.jsonl": (0, 5, 5, {}),
        "bom-list.json": (0, 50, 50, {}),
        "utf32-list.json": (0, 7, 7, {}),
        "nested.json": (0, 3, 2, {"too_deeply_nested": 1}),
        "nested.jsonl": (0, 3, 2, {"too_deeply_nested": 1}),
        "surrogate.json": (0, 2, 1, {"invalid_utf8": 1}),
        "latin1-line.jsonl": (0, 2, 1, {"invalid_utf8": 1}),
        "nul.jsonl": (0, 3, 1, {"nul_character": 2}),
        "huge-field.jsonl": (0, 2, 1, {"row_too_large": 1}),
        "wrong-types.jsonl": (0, 4, 1, {"malformed_record": 2, "missing_content": 1}),
        "forged-roles.jsonl": (0, 4, 1, {"unknown_role": 1, "broken_turn_order": 2}),
        "utf16-nobom.jsonl": (2, "without a byte-order mark"),
        "truncated.jsonl.gz": (2, "Compressed file ended"),
        "corrupt.jsonl.gz": (2, "before its first row"),
        "not-parquet.parquet": (2, "Parquet"),
        "broken-list.json": (2, "after row 2 (the last good row)"),
        "wrong-schema.parquet": (2, "cannot detect the format"),
    }


def test_hostile_corpus_row_faults_stay_rows_and_file_faults_are_one_message(tmp_path: Path):
    corpus = tmp_path / "corpus"
    expected = _corpus(corpus)
    for name, exp in expected.items():
        out = tmp_path / "out" / name
        result = runner.invoke(app, ["ingest", str(corpus / name), "--out", str(out)])
        text = " ".join(result.output.split())
        assert "Traceback" not in result.output, (name, result.output)
        assert result.exit_code == exp[0], (name, text, result.exception)
        if exp[0] == 0:
            rep = assert_complete(out)
            assert (rep["rows_in"], rep["kept"], rep["quarantined"]) == exp[1:], (name, rep)
            q = [json.loads(line) for line in (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()]
            assert len(q) == sum(exp[3].values()) and all(r["source_file"].endswith(name) and r["row"] >= 1 for r in q)
        else:
            assert str(corpus / name) in text and exp[1] in text, (name, text)
            assert "nothing was written" in text and not out.exists() and not lock_path(out).exists(), name


def test_keep_partial_keeps_the_rows_read_before_the_damage(tmp_path: Path):
    corpus = tmp_path / "corpus"
    _corpus(corpus)
    out = tmp_path / "out"
    result = runner.invoke(app, ["ingest", str(corpus / "utf8.jsonl"), str(corpus / "truncated.jsonl.gz"),
                                 str(corpus / "nul.jsonl"), "--out", str(out), "--keep-partial"])
    assert result.exit_code == 0, result.output
    rep = assert_complete(out)
    (fault,) = rep["file_faults"]
    assert fault["file"] == str(corpus / "truncated.jsonl.gz") and fault["last_good_row"] > 0
    assert rep["per_source"]["corpus/truncated"]["rows_in"] == fault["last_good_row"]
    assert rep["rows_in"] == 5 + fault["last_good_row"] + 3  # the file after the damaged one was read too


def test_same_file_twice_relative_absolute_symlink_is_one_source(tmp_path: Path, monkeypatch):
    d = tmp_path / "data"
    d.mkdir()
    (d / "x.jsonl").write_text(jsonl([rec(i) for i in range(4)]))
    (d / "link.jsonl").symlink_to(d / "x.jsonl")
    monkeypatch.chdir(tmp_path)
    rep = ingest(["data/x.jsonl", str(d / "x.jsonl"), "data/../data/x.jsonl", str(d / "link.jsonl"), "data"], tmp_path / "out")
    assert rep.totals().rows_in == 4 and rep.totals().kept == 4
    assert len(rep.info["duplicate_sources"]) == 5  # the folder lists x.jsonl and its symlink once more
    ids = [p.id for p in read_pairs(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == 4


def test_ids_are_unique_across_files_that_share_a_name(tmp_path: Path):
    for top in ("a", "b"):
        (tmp_path / top / "data").mkdir(parents=True)
        (tmp_path / top / "data" / "train.jsonl").write_text(jsonl([rec(i) for i in range(3)]))
    ingest([tmp_path / "a" / "data" / "train.jsonl", tmp_path / "b" / "data" / "train.jsonl"], tmp_path / "out")
    ids = sorted(p.id for p in read_pairs(tmp_path / "out"))
    assert len(set(ids)) == 6 and {i.rsplit(":", 1)[0] for i in ids} == {"a/data/train", "b/data/train"}


def test_ingest_into_its_own_input_is_refused_before_anything_is_touched(tmp_path: Path):
    src = tmp_path / "src.jsonl"
    src.write_text(jsonl([rec(i) for i in range(3)]))
    ingest([src], tmp_path / "ds")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()}
    for out in (tmp_path / "ds", tmp_path / "ds" / "inner"):
        result = runner.invoke(app, ["ingest", str(tmp_path / "ds"), "--out", str(out)])
        assert result.exit_code == 2 and "refusing to write it (nothing was changed)" in " ".join(result.output.split())
    result = runner.invoke(app, ["ingest", str(tmp_path / "ds" / "part-00000.parquet"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "contains the input" in " ".join(result.output.split())
    assert {p.name: p.read_bytes() for p in (tmp_path / "ds").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src.jsonl"]


def _hostile_pairs() -> list[PreferencePair]:
    def p(i, conv, chosen="a good one", rejected="a bad one", **kw):
        return PreferencePair(id=f"h{i}", source="h", conversation=[Message(r, c) for r, c in conv], chosen=chosen,
                              rejected=rejected, **kw)

    U, A, S = "user", "assistant", "system"
    return [
        p(0, [(U, "fine")]),
        p(1, [(S, "sys"), (U, "fine")]),
        p(2, [(U, "q"), (A, "a"), (U, "q2")]),  # a clean multi-turn conversation
        p(3, []),  # empty conversation
        p(4, [(S, "only a system turn")]),
        p(5, [(A, "forged assistant first"), (U, "q")]),
        p(6, [(U, "q"), (S, "late system"), (U, "q")]),
        p(7, [("tool", "x"), (U, "q")]),
        p(8, [("System", "x"), (U, "q")]),
        p(9, [(U, "q"), (A, "a")]),  # ends with the assistant
        p(10, [(U, "q"), (U, "q again")]),
        p(11, [(U, "   \u3000\x0b")]),  # whitespace only (Unicode)
        p(12, [(U, "q")], chosen="same", rejected="same"),
        p(13, [(U, "q")], chosen="\x85\xa0"),
        p(14, [(U, "nul\x00")]),
        p(15, [(U, "q")], rejected="nul \x00 here"),
        p(16, [(U, "q")], meta={"deep": json.loads("[" * 80 + "]" * 80)}),
        p(17, [(U, "q")], chosen="\u2003x\u2003"),  # not blank
        p(18, [(U, "ok")], task_category="math\x00"),
    ]


def _write_unchecked(pairs: list[PreferencePair], out: Path) -> None:
    """A dataset written by code that skipped the checks (any writer outside the data area)."""
    write_pairs(pairs, out)


def _check_pair_reasons(pairs) -> dict[int, str]:
    """Row index -> the reason `check_pair` (ingest's check) refuses it."""
    reasons = {}
    for i, pair in enumerate(pairs):
        try:
            check_pair(pair)
        except RowError as e:
            reasons[i] = e.reason
    return reasons


def test_preprocess_applies_the_same_structural_check_as_ingest(tmp_path: Path):
    pairs = _hostile_pairs()
    table = pa.Table.from_pylist([p.to_row() for p in pairs], schema=PAIR_SCHEMA)
    vectorised = {i: e.reason for i, e in check_table(table)}
    exact = _check_pair_reasons(pairs)
    assert vectorised == exact
    assert set(exact) == set(range(19)) - {0, 1, 2, 17}  # every hostile row is caught, the clean ones pass
    _write_unchecked(pairs, tmp_path / "in")
    rep = preprocess(tmp_path / "in", tmp_path / "pp")
    assert rep.totals().kept == 4 and sum(rep.totals().quarantined.values()) == 15
    assert_complete(tmp_path / "pp")
    q = [json.loads(line) for line in (tmp_path / "pp" / "quarantine.jsonl").read_text().splitlines()]
    assert {r["row"] - 1: r["reason"] for r in q} == {i: r.value for i, r in exact.items()}


def test_no_consumer_accepts_an_incomplete_folder(tmp_path: Path):
    write_pairs([p for p in _hostile_pairs()[:2]], tmp_path / "ds")
    (tmp_path / "ds" / MANIFEST).unlink()  # as a writer killed before its last step would leave it
    for consume in (lambda: list(read_pairs(tmp_path / "ds")), lambda: shard_paths(tmp_path / "ds"),
                    lambda: preprocess(tmp_path / "ds", tmp_path / "pp"), lambda: ingest([tmp_path / "ds"], tmp_path / "ing")):
        with pytest.raises(IncompleteOutputError, match=r"ds: not a complete output.*re-running"):
            consume()
    result = runner.invoke(app, ["preprocess", str(tmp_path / "ds"), "--out", str(tmp_path / "pp")])
    assert result.exit_code == 2 and "not a complete output" in " ".join(result.output.split())
    assert not (tmp_path / "pp").exists() and not (tmp_path / "ing").exists()


# ------------------------------------------------------------------------------ SIGKILL

def _big_jsonl(path: Path, n: int, tag: str) -> None:
    rows = [rec(i, prompt=f"{tag} question {i} " + "words " * 20) for i in range(n)]
    rows += [rec(i, chosen="dup", rejected="dup") for i in range(n // 50)]  # some quarantined rows
    path.write_text(jsonl(rows))


def _kill_on_progress(args: list[str], out: Path, staged: int) -> None:
    """Run `rewardops ARGS` and SIGKILL it once it has made the given progress: `staged == 0`, the
    moment it holds the output's lock; otherwise once its staging folder (`.<out>.tmp-*`) holds
    `staged` shards. The kill must land while it runs (staged is below what the run writes)."""
    proc = cli(*args)
    lock = lock_path(out)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if staged == 0:
            if lock.exists():
                break
        elif sum(len(list(tmp.glob("part-*.parquet"))) for tmp in out.parent.glob(f".{out.name}.tmp-*")) >= staged:
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill point (staged={staged}): {err[-500:]}"


@pytest.mark.slow  # `rewardops` subprocesses
@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_during_ingest_never_leaves_a_half_trusted_folder(tmp_path: Path, seed: int):
    rng = random.Random(seed)
    v1, v2 = tmp_path / "v1.jsonl", tmp_path / "v2.jsonl"
    _big_jsonl(v1, 1500, "first")
    _big_jsonl(v2, 2500, "second")
    out = tmp_path / "out"
    first = cli("ingest", str(v1), "--out", str(out), "--shard-size", "500")
    assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
    old = assert_complete(out)
    assert old["rows_in"] == 1530
    for staged in (0, rng.randint(1, 4)):  # the second run writes 5 shards (2,500 kept rows)
        _kill_on_progress(["ingest", str(v2), "--out", str(out), "--shard-size", "500"], out, staged)
        rep = assert_complete(out)  # the old output, untouched
        assert rep["rows_in"] == 1530, rep
    done = cli("ingest", str(v2), "--out", str(out), "--shard-size", "500")
    assert done.wait(timeout=300) == 0
    rep = assert_complete(out)
    assert rep["rows_in"] == 2550 and rep["kept"] == 2500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "v1.jsonl", "v2.jsonl"]  # no temp or lock left


@pytest.mark.slow  # `rewardops` subprocesses
@pytest.mark.parametrize("seed", [7])
def test_sigkill_during_preprocess_never_leaves_a_half_trusted_folder(tmp_path: Path, seed: int):
    rng = random.Random(seed)
    src = tmp_path / "src.jsonl"
    _big_jsonl(src, 2000, "pp")
    ingest([src], tmp_path / "ing", shard_size=500)
    out = tmp_path / "pp"
    first = cli("preprocess", str(tmp_path / "ing"), "--out", str(out), "--shard-size", "300")
    assert first.wait(timeout=300) == 0
    ref = assert_complete(out)
    ids = [p.id for p in read_pairs(out)]
    for staged in (0, *rng.sample(range(1, 6), 2)):  # a run writes 7 shards (2,000 rows)
        _kill_on_progress(["preprocess", str(tmp_path / "ing"), "--out", str(out), "--shard-size", "300"], out, staged)
        rep = assert_complete(out)
        assert (rep["rows_in"], rep["kept"]) == (ref["rows_in"], ref["kept"])
        assert [p.id for p in read_pairs(out)] == ids
    # a consumer never sees the killed run's temporary folder as data
    for tmpdir in tmp_path.glob(".pp.tmp-*"):
        with pytest.raises(IncompleteOutputError):
            list(read_pairs(tmpdir))


# ------------------------------------------------------------------------------ concurrent writers

@pytest.mark.slow  # `rewardops` subprocesses
def test_a_second_ingest_into_the_same_output_fails_at_once(tmp_path: Path):
    src = tmp_path / "src.jsonl"
    _big_jsonl(src, 3000, "conc")
    small = tmp_path / "small.jsonl"
    small.write_text(jsonl([rec(i) for i in range(3)]))
    out = tmp_path / "out"
    first = cli("ingest", str(src), "--out", str(out))
    lock = lock_path(out)
    deadline = time.monotonic() + 120
    holder = None
    while first.poll() is None and time.monotonic() < deadline:
        try:
            holder = json.loads(lock.read_text()).get("pid")
        except (OSError, ValueError):
            holder = None
        if holder == first.pid:
            break
        time.sleep(0.005)
    assert holder == first.pid, "the first writer never held the lock"
    first.send_signal(signal.SIGSTOP)  # frozen while it holds the lock: the overlap is certain
    try:
        assert lock.exists(), "the first writer released the lock before it could be paused"
        second = cli("ingest", str(small), "--out", str(out))
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2
        text = " ".join(err.split())
        assert f"pid {first.pid}" in text and "another writer is producing this output" in text
        assert not out.exists() or verify_output(out)  # the refused writer touched nothing
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0
    rep = assert_complete(out)
    assert rep["inputs"] == [str(src)] and rep["rows_in"] == 3060


@pytest.mark.slow  # `rewardops` subprocesses
def test_two_preprocess_runs_race_and_exactly_one_wins(tmp_path: Path):
    src = tmp_path / "src.jsonl"
    _big_jsonl(src, 1000, "race")
    ingest([src], tmp_path / "ing")
    procs = [cli("preprocess", str(tmp_path / "ing"), "--out", str(tmp_path / "pp")) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    errs = " ".join(" ".join(p.stderr.read().split()) for p in procs)
    assert codes in ([0, 0], [0, 2]), errs  # both may succeed one after the other, never a mix
    if codes == [0, 2]:
        assert "another writer is producing this output" in errs
    rep = assert_complete(tmp_path / "pp")
    assert rep["kept"] == 1000


def test_preprocess_refuses_unreadable_or_foreign_shards_with_one_message(tmp_path: Path):
    (tmp_path / "junk.parquet").write_bytes(b"PAR1" + bytes(range(200)))
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "other.parquet")
    for name, words in (("junk.parquet", "unreadable Parquet shard"), ("other.parquet", "not a pair shard")):
        result = runner.invoke(app, ["preprocess", str(tmp_path / name), "--out", str(tmp_path / "pp")])
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and str(tmp_path / name) in text and words in text, text
        assert "Traceback" not in result.output and not (tmp_path / "pp").exists()


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_check_flags_exactly_what_check_pair_rejects_on_random_pairs(seed: int):
    rng = random.Random(seed)
    roles = ["system", "user", "assistant", "tool", "User", "", None]
    texts = ["fine text", "", "   ", "\u3000\x0b", "a\x00b", "\x85", "x\u2003", "same", None]
    pairs = []
    for i in range(400):
        conv = [Message(rng.choice(roles[:3] * 4 + roles), rng.choice(texts[:1] * 10 + texts)) for _ in range(rng.randint(0, 4))]
        chosen = rng.choice(["good", "same"] * 4 + texts)
        rejected = rng.choice(["bad", "same"] * 4 + texts)
        pairs.append(PreferencePair(id=rng.choice([f"r{i}"] * 9 + ["", "x\x00"]), source="s", conversation=conv,
                                    chosen=chosen, rejected=rejected))
    table = pa.Table.from_pylist([p.to_row() for p in pairs], schema=pa.schema(
        [f.with_nullable(True) for f in PAIR_SCHEMA], metadata=PAIR_SCHEMA.metadata))
    exact = _check_pair_reasons(pairs)
    assert {i: e.reason for i, e in check_table(table)} == exact
    assert 0 < len(exact) < len(pairs)
