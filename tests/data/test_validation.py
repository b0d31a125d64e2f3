"""Every quarantine reason, the quarantine file, strict mode and the report's conservation sum."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardops.data.ingest import ingest
from rewardops.data.report import RunReport, SourceCounts, read_report
from rewardops.data.shards import read_pairs
from rewardops.data.validation import Reason, ValidationError


def U(text: str) -> dict:  # noqa: N802
    return {"role": "user", "content": text}


def A(text: str) -> dict:  # noqa: N802
    return {"role": "assistant", "content": text}


DEEP: object = 0
for _ in range(70):
    DEEP = [DEEP]

# (line in the JSONL file, the reason it must be quarantined for; None = a good row)
CONVERSATIONAL_ROWS: list[tuple[object, str | None]] = [
    ({"chosen": [U("q"), A("good")], "rejected": [U("q"), A("bad")]}, None),
    ({"chosen": [U("q"), A(None)], "rejected": [U("q"), A("bad")]}, "missing_content"),
    ({"chosen": None, "rejected": [U("q"), A("bad")]}, "missing_content"),
    ({"chosen": [U("q"), A("   ")], "rejected": [U("q"), A("bad")]}, "empty_content"),
    ({"chosen": [U(""), A("a")], "rejected": [U(""), A("b")]}, "empty_content"),
    ({"chosen": [U("q"), A("same")], "rejected": [U("q"), A("same")]}, "identical_responses"),
    ({"chosen": [{"role": "tool", "content": "x"}, U("q"), A("a")], "rejected": [{"role": "tool", "content": "x"}, U("q"), A("b")]}, "unknown_role"),
    ({"chosen": [U("q"), U("q2"), A("a")], "rejected": [U("q"), U("q2"), A("b")]}, "broken_turn_order"),
    ({"chosen": [A("hi"), U("q"), A("a")], "rejected": [A("hi"), U("q"), A("b")]}, "broken_turn_order"),
    ({"chosen": [U("q"), {"role": "system", "content": "late"}, U("q"), A("a")], "rejected": [U("q"), {"role": "system", "content": "late"}, U("q"), A("b")]}, "broken_turn_order"),
    ({"chosen": [U("q"), A("a"), U("more?")], "rejected": [U("q"), A("b"), U("more?")]}, "final_turn_not_assistant"),
    ({"chosen": [U("q1"), A("a")], "rejected": [U("q2"), A("b")]}, "prompt_mismatch"),
    ({"chosen": "not a list", "rejected": [U("q"), A("b")]}, "malformed_record"),
    ({"chosen": [U("q"), A("\udc80 lone surrogate")], "rejected": [U("q"), A("b")]}, "invalid_utf8"),
    ([1, 2, 3], "malformed_record"),
    ({"chosen": [U("q"), A("nul \x00 inside")], "rejected": [U("q"), A("b")]}, "nul_character"),
    ({"chosen": [U("q"), A("a")], "rejected": [U("q"), A("b")], "x": DEEP}, "too_deeply_nested"),
]


def _write_bad_file(path: Path, max_row_bytes: int) -> dict[int, str | None]:
    """The rows above plus raw-level defects; returns line number -> expected reason."""
    expected: dict[int, str | None] = {}
    lines: list[bytes] = []
    for rec, reason in CONVERSATIONAL_ROWS:
        lines.append(json.dumps(rec).encode())
        expected[len(lines)] = reason
    lines.append(b'{"chosen": [{"role": "user", "content": "caf\xe9"}], "rejected": []}')  # latin-1 byte
    expected[len(lines)] = "invalid_utf8"
    lines.append(b'{"chosen": [ this is not json')
    expected[len(lines)] = "unparseable_line"
    lines.append(b"")  # a blank line is no row
    big = {"chosen": [U("q"), A("x" * max_row_bytes)], "rejected": [U("q"), A("y")]}
    lines.append(json.dumps(big).encode())
    expected[len(lines)] = "row_too_large"
    lines.append(json.dumps({"chosen": [U("q"), A("last good")], "rejected": [U("q"), A("meh")]}).encode())
    expected[len(lines)] = None
    path.write_bytes(b"\n".join(lines) + b"\n")
    return expected


def test_every_reason_is_quarantined_with_file_row_and_reason(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    expected = _write_bad_file(src, max_row_bytes=2_000)
    report = ingest([src], tmp_path / "out", max_row_bytes=2_000)

    q = [json.loads(line) for line in open(tmp_path / "out" / "quarantine.jsonl", encoding="utf-8")]
    got = {r["row"]: r["reason"] for r in q}
    assert got == {row: reason for row, reason in expected.items() if reason is not None}
    assert all(r["source_file"] == str(src) and r["detail"] for r in q)
    # every reason is exercised (duplicate_id needs two sources: test_duplicate_ids_across_sources...)
    assert {r.value for r in Reason} - {"duplicate_id"} == set(got.values())
    too_large = next(r for r in q if r["reason"] == "row_too_large")
    assert too_large["raw"] is not None and len(too_large["raw"]) <= 4096  # kept, truncated

    kept = list(read_pairs(tmp_path / "out"))
    assert [p.chosen for p in kept] == ["good", "last good"]
    rep = read_report(tmp_path / "out")
    assert rep["rows_in"] == len(expected) == rep["kept"] + sum(rep["quarantined"].values())
    assert rep["quarantined"]["broken_turn_order"] == 3
    assert report.totals().rows_in == len(expected)


def test_strict_mode_names_file_row_and_reason(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    _write_bad_file(src, max_row_bytes=2_000)
    with pytest.raises(ValidationError) as err:
        ingest([src], tmp_path / "out", strict=True, max_row_bytes=2_000)
    assert (err.value.source_file, err.value.row, err.value.reason) == (str(src), 2, Reason.MISSING_CONTENT)
    assert str(src) in str(err.value) and "row 2" in str(err.value) and "missing_content" in str(err.value)


def test_strict_mode_passes_clean_data(tmp_path: Path) -> None:
    src = tmp_path / "ok.jsonl"
    src.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n", encoding="utf-8")
    report = ingest([src], tmp_path / "out", strict=True)
    assert report.totals().kept == 1


def test_hh_and_sharegpt_specific_defects(tmp_path: Path) -> None:
    hh = tmp_path / "hh.jsonl"
    hh.write_text("\n".join(json.dumps(r) for r in [
        {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: go"},
        {"chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: and?", "rejected": "\n\nHuman: hi\n\nAssistant: go"},
        {"chosen": "preamble\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"},
    ]) + "\n", encoding="utf-8")
    sg = tmp_path / "sg.jsonl"
    turn = [{"from": "human", "value": "hi"}]
    sg.write_text("\n".join(json.dumps(r) for r in [
        {"conversations": turn, "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}},
        {"conversations": turn, "chosen": {"from": "human", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}},
        {"conversations": [{"from": "observation", "value": "x"}], "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}},
    ]) + "\n", encoding="utf-8")
    ingest([hh, sg], tmp_path / "out")
    rep = read_report(tmp_path / "out")
    assert rep["per_source"][f"{tmp_path.name}/hh"]["quarantined"] == {"final_turn_not_assistant": 1, "malformed_record": 1}
    assert rep["per_source"][f"{tmp_path.name}/sg"]["quarantined"] == {"final_turn_not_assistant": 1, "unknown_role": 1}
    assert rep["kept"] == 2


def test_unparseable_json_list_is_a_clear_file_error(tmp_path: Path) -> None:
    src = tmp_path / "broken.json"
    src.write_text('[{"prompt": "p", "chosen": "a", "rejected": "b"},\n {"prompt": ', encoding="utf-8")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON \(line 2"):
        ingest([src], tmp_path / "out")


def test_report_refuses_counts_that_do_not_add_up(tmp_path: Path) -> None:
    report = RunReport(stage="x", per_source={"s": SourceCounts(rows_in=3, kept=1, duplicates=1)})
    with pytest.raises(AssertionError, match="does not add up"):
        report.write(tmp_path)
    report.per_source["s"].quarantined["empty_content"] = 1
    assert json.loads(report.write(tmp_path).read_text())["quarantined"] == {"empty_content": 1}


def test_duplicate_ids_across_sources_are_quarantined_not_written_twice(tmp_path: Path) -> None:
    from rewardops.data.schema import Message, PreferencePair
    from rewardops.data.shards import write_pairs

    pairs = [PreferencePair(id=f"p{i}", source="s", conversation=[Message("user", f"q{i}")], chosen="a", rejected="b")
             for i in range(4)]
    write_pairs(pairs, tmp_path / "one")
    write_pairs(pairs[2:], tmp_path / "two")  # a different dataset holding two of the same ids
    report = ingest([tmp_path / "one", tmp_path / "two"], tmp_path / "out")
    assert report.totals().kept == 4 and report.totals().quarantined == {"duplicate_id": 2}
    assert sorted(p.id for p in read_pairs(tmp_path / "out")) == ["p0", "p1", "p2", "p3"]
