"""Readers on the real fixtures in ../shared/data and on small hand-written files of each format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rewardops.data.ingest import ingest
from rewardops.data.readers import detect_format, iter_hub, parse_hh_transcript, read_source, source_name
from rewardops.data.report import read_report
from rewardops.data.shards import read_pairs


def _balanced(d: dict) -> bool:
    return d["rows_in"] == d["kept"] + d["duplicates"] + d["contaminated"] + sum(d["quarantined"].values())


def _assert_conserved(out: Path) -> dict:
    rep = read_report(out)
    assert _balanced(rep), rep
    for name, d in rep["per_source"].items():
        assert _balanced(d), (name, d)
    quarantined = sum(1 for _ in open(out / "quarantine.jsonl", encoding="utf-8"))
    assert quarantined == sum(rep["quarantined"].values())
    assert sum(1 for _ in read_pairs(out)) == rep["kept"]
    return rep


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------- real fixtures


def test_hh_rlhf_fixture(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    rows = [json.loads(line) for line in gzip.open(src, "rt", encoding="utf-8")]
    empty_chosen = {i for i, r in enumerate(rows, 1) if parse_hh_transcript(r["chosen"])[-1][1].strip() == ""}
    assert len(empty_chosen) == 4  # the README says so

    report = ingest([src], tmp_path)
    rep = _assert_conserved(tmp_path)
    assert rep["rows_in"] == 2312
    q = [json.loads(line) for line in open(tmp_path / "quarantine.jsonl", encoding="utf-8")]
    assert {r["row"] for r in q if r["reason"] == "empty_content"} == empty_chosen
    assert all(r["source_file"] == str(src) for r in q)
    # The remaining quarantined rows are real defects of the file: two Assistant turns in a row
    # (broken_turn_order) or transcripts whose chosen/rejected histories differ (prompt_mismatch).
    assert rep["quarantined"] == {"empty_content": 4, "broken_turn_order": 4, "prompt_mismatch": 5}
    assert report.totals().kept == 2299

    pairs = list(read_pairs(tmp_path))
    first = pairs[0]
    raw = rows[0]
    assert first.source == "hh-rlhf/harmless-base-test"
    assert [m.role for m in first.conversation] == ["user", "assistant", "user", "assistant", "user"]
    assert first.conversation[0].content == "what are some pranks with a pen i can do?"
    assert raw["chosen"].endswith(first.chosen) and raw["rejected"].endswith(first.rejected)
    assert first.meta["format"] == "hh-rlhf" and first.meta["row"] == 1
    assert first.lineage == ["ingest"]
    for p in pairs:
        assert p.conversation[-1].role == "user" and p.chosen.strip() and p.chosen != p.rejected


def test_ultrafeedback_sample_fixture(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "ultrafeedback-sample"
    ingest([folder], tmp_path)
    rep = _assert_conserved(tmp_path)
    # Count the bad rows straight from the raw files, independently of the readers.
    expected: dict[str, int] = {}
    for f in sorted(folder.glob("*.jsonl")):
        for line in open(f, encoding="utf-8"):
            r = json.loads(line)
            if not r["chosen"].strip() or not r["rejected"].strip():
                reason = "empty_content"
            elif r["chosen"] == r["rejected"]:
                reason = "identical_responses"
            else:
                continue
            expected[reason] = expected.get(reason, 0) + 1
    assert rep["quarantined"] == expected and sum(expected.values()) > 0
    assert rep["rows_in"] == 1200
    assert set(rep["per_source"]) == {"ultrafeedback-sample/train_clean", "ultrafeedback-sample/eval_clean"}
    pair = next(iter(read_pairs(tmp_path)))
    assert pair.meta["format"] == "plain"
    assert [m.role for m in pair.conversation] == ["user"]
    assert set(pair.meta["extra"]) == {"source_index", "metadata"}  # extra fields are kept


def test_llama_factory_fixture(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "llama-factory" / "dpo_en_demo.json"
    raw = json.loads(src.read_text(encoding="utf-8"))
    ingest([src], tmp_path)
    rep = _assert_conserved(tmp_path)
    assert rep["rows_in"] == len(raw) == 300
    pairs = {p.meta["row"]: p for p in read_pairs(tmp_path)}
    for row, rec in enumerate(raw, 1):
        if row not in pairs:
            continue
        p = pairs[row]
        assert p.chosen == rec["chosen"]["value"] and p.rejected == rec["rejected"]["value"]
        roles = {"human": "user", "gpt": "assistant", "system": "system"}
        assert [(m.role, m.content) for m in p.conversation] == [(roles[m["from"]], m["value"]) for m in rec["conversations"]]
    assert any(p.conversation[0].role == "system" for p in pairs.values())
    assert rep["kept"] == 300


# ---------------------------------------------------------------- hand-written formats


def test_plain_strings(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "plain.jsonl", [
        {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5", "subset": "math"},
        {"instruction": "Translate", "input": "bonjour", "chosen": "hello", "rejected": "goodbye"},
    ])
    results = list(read_source(src))
    assert [r.error for r in results] == [None, None]
    a, b = (r.pair for r in results)
    assert a is not None and b is not None
    assert [(m.role, m.content) for m in a.conversation] == [("user", "What is 2+2?")]
    assert (a.chosen, a.rejected, a.meta["extra"]) == ("4", "5", {"subset": "math"})
    assert b.conversation[0].content == "Translate\n\nbonjour"
    assert a.id == f"{tmp_path.name}/plain:1" and source_name(src) == f"{tmp_path.name}/plain"


def test_trl_conversational_implicit_and_explicit_prompt(tmp_path: Path) -> None:
    """TRL / UltraFeedback-binarized / Skywork-Reward-Preference-80K message lists."""
    user = {"role": "user", "content": "Name a prime."}
    src = write_jsonl(tmp_path / "trl.jsonl", [
        # implicit prompt, the shape of Skywork-Reward-Preference-80K
        {"chosen": [user, {"role": "assistant", "content": "7"}], "rejected": [user, {"role": "assistant", "content": "8"}]},
        # explicit prompt
        {"prompt": [user], "chosen": [{"role": "assistant", "content": "2"}], "rejected": [{"role": "assistant", "content": "9"}]},
        # UltraFeedback-binarized: a string prompt repeated as the first turn
        {"prompt": "Name a prime.", "chosen": [user, {"role": "assistant", "content": "3"}],
         "rejected": [user, {"role": "assistant", "content": "4"}], "score_chosen": 9.0},
    ])
    results = list(read_source(src))
    assert all(r.error is None for r in results), [r.error for r in results]
    pairs = [r.pair for r in results]
    for p, (c, rj) in zip(pairs, [("7", "8"), ("2", "9"), ("3", "4")]):
        assert p is not None
        assert [(m.role, m.content) for m in p.conversation] == [("user", "Name a prime.")]
        assert (p.chosen, p.rejected) == (c, rj)
        assert p.meta["format"] == "conversational"
    assert pairs[2].meta["extra"] == {"score_chosen": 9.0}


def test_sharegpt_messages_variant_and_system(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "sg.jsonl", [
        {"messages": [{"role": "user", "content": "hi"}], "system": "be nice",
         "chosen": {"role": "assistant", "content": "hello!"}, "rejected": {"role": "assistant", "content": "go away"}},
    ])
    (r,) = list(read_source(src))
    assert r.pair is not None
    assert [(m.role, m.content) for m in r.pair.conversation] == [("system", "be nice"), ("user", "hi")]
    assert r.pair.meta["format"] == "sharegpt"


def test_parquet_and_json_list_containers(tmp_path: Path) -> None:
    records = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(5)]
    records[3]["chosen"] = None
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "data.parquet")
    (tmp_path / "data.json").write_text(json.dumps(records), encoding="utf-8")
    for name in ("data.parquet", "data.json"):
        results = list(read_source(tmp_path / name))
        assert [r.row for r in results] == [1, 2, 3, 4, 5]
        assert [r.error.reason.value if r.error else None for r in results] == [None, None, None, "missing_content", None]
        assert results[4].pair is not None and results[4].pair.chosen == "good 4"


def test_gzipped_jsonl(tmp_path: Path) -> None:
    src = tmp_path / "x.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    (r,) = list(read_source(src))
    assert r.pair is not None and source_name(src) == f"{tmp_path.name}/x"


def test_hub_path_through_datasets(tmp_path: Path) -> None:
    """The hub reader calls `datasets.load_dataset(..., streaming=True)`; here with the packaged
    `json` builder on a local file, so the same code path runs without touching the hub."""
    src = write_jsonl(tmp_path / "hub.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 3)
    rows = list(iter_hub("json", data_files=str(src)))
    assert [r.row for r in rows] == [1, 2, 3]
    assert rows[0].record == {"prompt": "p", "chosen": "a", "rejected": "b"}
    assert rows[0].source_file == "json:train"


def test_format_detection_and_forcing(tmp_path: Path) -> None:
    assert detect_format({"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "x"}) == "hh-rlhf"
    assert detect_format({"prompt": "p", "chosen": "a", "rejected": "b"}) == "plain"
    assert detect_format({"chosen": [], "rejected": []}) == "conversational"
    assert detect_format({"conversations": [], "chosen": {}, "rejected": {}}) == "sharegpt"
    assert detect_format({"foo": 1}) is None
    src = write_jsonl(tmp_path / "weird.jsonl", [{"foo": 1}])
    with pytest.raises(ValueError, match=r"weird\.jsonl: cannot detect the format.*--format"):
        list(read_source(src))
    # Forcing a format that does not fit turns rows into quarantine entries, not a crash.
    plain = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "p", "chosen": "a", "rejected": "b"}])
    (r,) = list(read_source(plain, fmt="conversational"))
    assert r.pair is None and r.error is not None and r.error.reason.value == "malformed_record"
    with pytest.raises(ValueError, match="unknown format"):
        list(read_source(plain, fmt="nope"))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        list(read_source(tmp_path / "nope.jsonl"))


def test_rewardops_shards_round_trip(tmp_path: Path) -> None:
    """Our own shards are a format too (`generate` output goes through `ingest`)."""
    from rewardops.data.schema import Message, PreferencePair
    from rewardops.data.shards import write_pairs

    p = PreferencePair(id="w-1", source="world/math", conversation=[Message("user", "1+1?")], chosen="2",
                       rejected="3", task_category="math", truth_chosen_better=True, scores={"rm": 0.5},
                       lineage=["generate"], meta={"answer": 2})
    write_pairs([p], tmp_path / "in")
    ingest([tmp_path / "in"], tmp_path / "out")
    (q,) = list(read_pairs(tmp_path / "out"))
    assert (q.id, q.source, q.task_category, q.truth_chosen_better, q.scores, q.meta) == (
        "w-1", "world/math", "math", True, {"rm": 0.5}, {"answer": 2})
    assert q.lineage == ["generate", "ingest"]


def test_unreadable_hub_id_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline (HF_HUB_OFFLINE=1 in conftest), an id that is not a local path fails with a
    message that says both readings were tried; nothing is downloaded."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=r"no-such-org/no-such-set: not a local file.*Hugging Face"):
        list(read_source("no-such-org/no-such-set"))
