"""Each loader on a file in the official format: the real fixtures for RM-Bench, JudgeBench and
RMB; hand-written records in the official schema for the hub-only benchmarks. Bad records are
quarantined with file and row, never dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from official_records import (
    ppe_correctness,
    ppe_preference,
    rewardbench_v1,
    rewardbench_v2,
)

from rewardops.evaluation.benchmarks import get, load_world, parse_names
from rewardops.evaluation.items import MissingBenchmarkData
from rewardops.evaluation.loaders import dump_records


def test_rm_bench_real_files(shared_data: Path):
    loaded = get("rm-bench").load(shared_data / "rm-bench")
    by_domain: dict[str, int] = {}
    for item in loaded.items:
        by_domain[item.subset] = by_domain.get(item.subset, 0) + 1
        assert len(item.responses) == 6
    assert by_domain == {"chat": 129, "code": 228, "safety-refuse": 284, "safety-response": 157}
    assert loaded.quarantined == []
    assert len(loaded.files) == 4


def test_judgebench_real_files(shared_data: Path):
    loaded = get("judgebench").load(shared_data / "judgebench")
    splits = {}
    for item in loaded.items:
        splits[item.meta["split"]] = splits.get(item.meta["split"], 0) + 1
        assert item.meta["label"] in ("A>B", "B>A")
        assert item.prompt[0]["role"] == "user" and len(item.responses) == 2
    assert splits == {"gpt": 350, "claude": 270}


def test_rmb_real_files(shared_data: Path):
    loaded = get("rmb").load(shared_data / "rmb")
    kinds: dict[tuple[str, str], int] = {}
    for item in loaded.items:
        key = (item.meta["kind"], item.meta["goal"])
        kinds[key] = kinds.get(key, 0) + 1
        if item.meta["kind"] == "bon":
            assert len(item.responses) >= 3  # best + at least two losers
    assert kinds[("pairwise", "harmlessness")] == 459
    assert kinds[("bon", "harmlessness")] == 111
    assert kinds[("pairwise", "helpfulness")] == 293 + 306 + 114
    assert kinds[("bon", "helpfulness")] == 59 + 71 + 25
    assert loaded.quarantined == []
    # the conversation keeps role/content only (RMB adds `language`)
    assert set(loaded.items[0].prompt[0]) == {"role", "content"}


def test_rewardbench_v1_jsonl(tmp_path: Path):
    path = dump_records(rewardbench_v1(), tmp_path / "rb" / "filtered.jsonl")
    loaded = get("rewardbench").load(path.parent)
    assert [it.subset for it in loaded.items] == ["alpacaeval-easy", "mt-bench-hard", "xstest-should-refuse", "math-prm", "hep-python"]
    first = loaded.items[0]
    assert first.prompt == ({"role": "user", "content": "Question 0: what is 0 + 0?"},)
    assert first.responses == ("The answer is 0.", "It is 1, I think.")


def test_rewardbench_v2_parquet_and_ties_ids(tmp_path: Path):
    path = dump_records(rewardbench_v2(), tmp_path / "rb2" / "test.parquet")
    loaded = get("rewardbench2").load(path)
    ties = [it for it in loaded.items if it.subset == "Ties"]
    assert [it.id for it in ties] == ["ref:0", "tied:0"]
    assert ties[1].meta["num_correct"] == 3 and len(ties[1].responses) == 5
    assert loaded.items[0].responses[0] == "7 is prime."  # the chosen comes first


def test_rewardbench_v2_saved_dataset_folder(tmp_path: Path):
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_list(rewardbench_v2())}).save_to_disk(tmp_path / "saved")
    loaded = get("rewardbench2").load(tmp_path / "saved")
    assert len(loaded.items) == 5 and loaded.quarantined == []


def test_ppe_files(tmp_path: Path):
    pref = get("ppe-preference").load(dump_records(ppe_preference(), tmp_path / "pref.jsonl"))
    assert [it.meta["winner"] for it in pref.items] == ["model_a", "model_b", "tie"]
    folder = tmp_path / "corr"
    for task in ("mmlu-pro", "mbpp-plus"):
        dump_records(ppe_correctness(task), folder / f"{task}.parquet")
    corr = get("ppe-correctness").load(folder)
    assert {it.subset for it in corr.items} == {"MMLU-Pro", "MBPP-Plus"}
    assert all(len(it.responses) == len(it.meta["correct"]) == 4 for it in corr.items)
    assert all(it.meta["sampled_conflict_pairs"] == [[0, 1], [0, 3]] or it.meta["sampled_conflict_pairs"] == [[0, 1], [1, 2]]
               for it in corr.items)


def test_ppe_correctness_ids_include_the_generator_model(tmp_path: Path):
    # the same question_id answered by two generator models is two items, not a duplicate
    path = dump_records(ppe_correctness("math", models=("gen-a", "gen-b")), tmp_path / "math.jsonl")
    corr = get("ppe-correctness").load(path)
    assert not corr.quarantined
    assert sorted(it.id for it in corr.items) == ["MATH/gen-a/math-0", "MATH/gen-a/math-1", "MATH/gen-b/math-0", "MATH/gen-b/math-1"]


def test_ppe_correctness_bad_conflict_pairs_are_quarantined(tmp_path: Path):
    rows = ppe_correctness("math")
    rows[0]["sampled_conflict_pairs"] = [[0, 9]]
    corr = get("ppe-correctness").load(dump_records(rows, tmp_path / "math.jsonl"))
    assert len(corr.items) == 1 and len(corr.quarantined) == 1
    assert "sampled_conflict_pairs" in corr.quarantined[0].reason


def test_malformed_records_are_quarantined_with_file_and_row(tmp_path: Path, caplog):
    rows = rewardbench_v1()
    rows[1] = {**rows[1], "chosen": None}  # wrong type
    rows[3] = {**rows[3], "subset": ""}  # empty subset
    path = tmp_path / "rb" / "filtered.jsonl"
    dump_records(rows, path)
    with open(path, "a") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps(rows[0]) + "\n")  # a duplicate id
    loaded = get("rewardbench").load(path)
    assert len(loaded.items) == 3
    got = [(q.row, q.reason) for q in loaded.quarantined]
    assert [r for r, _ in got] == [1, 3, 5, 6]
    assert "'chosen' must be a string" in got[0][1]
    assert "not valid JSON" in got[2][1]
    assert "duplicate id" in got[3][1]
    assert all(q.file == str(path) for q in loaded.quarantined)
    assert f"{path}: row 1:" in caplog.text  # logged, not silent


def test_judgebench_bad_label_and_rmb_bad_path_quarantined(tmp_path: Path, shared_data: Path):
    lines = (shared_data / "judgebench" / "judgebench_gpt-4o.jsonl").read_text().splitlines()[:3]
    bad = json.loads(lines[1])
    bad["label"] = "A=B"
    (tmp_path / "jb.jsonl").write_text("\n".join([lines[0], json.dumps(bad), lines[2]]) + "\n")
    jb = get("judgebench").load(tmp_path / "jb.jsonl")
    assert len(jb.items) == 2 and jb.quarantined[0].row == 1 and "A=B" in jb.quarantined[0].reason

    rec = json.loads((shared_data / "rmb" / "BoN_set" / "Harmlessness" / "S1.json").read_text())[0]
    broken = {**rec, "bon_uid": "x", "category_path": "Other/Thing"}
    no_losers = {**rec, "bon_uid": "y", "loser_list": []}
    dump_records([rec, broken, no_losers], tmp_path / "rmb" / "BoN_set" / "x.json")
    rmb = get("rmb").load(tmp_path / "rmb")
    assert len(rmb.items) == 1
    assert [q.row for q in rmb.quarantined] == [1, 2]


def test_missing_benchmark_names_the_path_and_the_source(tmp_path: Path):
    with pytest.raises(MissingBenchmarkData) as err:
        get("rewardbench2").locate(tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "reward-bench-2") in msg and "allenai/reward-bench-2" in msg


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="allenai/reward-bench-2"):
        get("rewardbench2").load("allenai/reward-bench-2")


def test_benchmark_name_parsing():
    assert parse_names("all") == ["rewardbench", "rewardbench2", "ppe-preference", "ppe-correctness", "rmb", "rm-bench", "judgebench"]
    assert parse_names("rmb, world") == ["rmb", "world"]
    with pytest.raises(ValueError, match="unknown benchmark"):
        parse_names("rmb,nope")


def test_world_reads_a_pair_dataset_folder(tmp_path: Path):
    from rewardops.data.schema import Message, PreferencePair
    from rewardops.data.shards import write_pairs

    pairs = [
        PreferencePair(id=f"w{i}", source="world", conversation=[Message("user", f"q{i}")], chosen=f"good {i}",
                       rejected=f"bad {i}", task_category=cat, truth_chosen_better=truth)
        for i, (cat, truth) in enumerate([("math", True), ("code", False), ("math", None)])
    ]
    write_pairs(pairs, tmp_path / "world")
    loaded = load_world(tmp_path / "world")
    assert [(it.subset, it.meta["truth"]) for it in loaded.items] == [("math", True), ("code", False), ("math", None)]
    assert loaded.items[1].responses == ("good 1", "bad 1")


def test_world_generated_pairs_come_from_the_held_out_split():
    from rewardops.data.world import world_pair, world_split
    from rewardops.evaluation.benchmarks import WORLD_EVAL_SEED

    loaded = load_world(None, n=25)
    assert len(loaded.items) == 25 and "world_split" in loaded.notes[0]
    for item in loaded.items[:10]:
        index = int(item.id.rsplit("-", 1)[1])
        pair = world_pair(WORLD_EVAL_SEED, index, noise=0.0)
        assert world_split(pair) == "eval"
        assert item.responses == (pair.chosen, pair.rejected) and item.subset == pair.task_category
