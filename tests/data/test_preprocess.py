"""Dedup across shards, 13-gram decontamination (hit and 12-gram near-miss), conservation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from rewardops.data.decontaminate import Decontaminator, first_turn_prompt, load_prompts, tokenize
from rewardops.data.dedup import DigestSet, normalize_text, pair_digest
from rewardops.data.ingest import ingest
from rewardops.data.preprocess import preprocess
from rewardops.data.report import read_report
from rewardops.data.schema import PAIR_SCHEMA, Message, PreferencePair
from rewardops.data.shards import read_pairs, write_pairs
from rewardops.outputs import OutputError

BENCH_PROMPT = ("Explain why the quick brown fox jumps over the lazy dog while the "
                "farmer counts seven sleepy sheep near the old red barn at dawn")
BENCH_WORDS = tokenize(BENCH_PROMPT)


def pair(i: int, prompt: str, chosen: str = "yes", rejected: str = "no", source: str = "s") -> PreferencePair:
    return PreferencePair(id=f"{source}-{i}", source=source, conversation=[Message("user", prompt)],
                          chosen=chosen, rejected=rejected, lineage=["ingest"])


def test_normalisation_makes_spacing_and_unicode_variants_equal() -> None:
    assert normalize_text("  Ｈｅｌｌｏ\u00a0 world \n") == "Hello world"
    a = pair_digest([("user", "café  time")], "yes", "no")
    b = pair_digest([("user", "cafe\u0301 time ")], "yes", "no")  # NFKC composes e + accent
    assert a == b
    assert pair_digest([("user", "q")], "a", "b") != pair_digest([("user", "q")], "b", "a")
    assert pair_digest([("user", "q")], "a", "b") != pair_digest([("assistant", "q")], "a", "b")


def test_digest_set_matches_a_python_set_through_growth() -> None:
    rng = np.random.default_rng(0)
    seen_py: set[int] = set()
    ds = DigestSet(capacity=16)
    for _ in range(30):
        batch = rng.integers(0, 5_000, size=400).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        batch[:3] = 0  # the empty-slot marker must still work as a key
        new = ds.add_batch(batch)
        expected = []
        for k in batch.tolist():
            k = k or 1
            expected.append(k not in seen_py)
            seen_py.add(k)
        assert new.tolist() == expected
    assert len(ds) == len(seen_py)
    assert ds.nbytes <= 4 * 8 * len(seen_py)  # the documented bound: at most 32 bytes per digest
    assert all(k in ds for k in list(seen_py)[:100])
    assert 12345678901 not in ds


def test_dedup_across_shards_keeps_first_occurrence(tmp_path: Path) -> None:
    a = [pair(i, f"prompt number {i}") for i in range(10)]
    b = [pair(100 + i, f"prompt  number {i}\n", source="t") for i in range(0, 10, 2)]  # 5 whitespace variants
    b.append(pair(200, "prompt number 3", chosen="other"))  # same prompt, other answer: kept
    write_pairs(a, tmp_path / "in1", shard_size=3)  # 4 shards
    write_pairs(b, tmp_path / "in2", shard_size=2)  # 3 shards
    report = preprocess([tmp_path / "in1", tmp_path / "in2"], tmp_path / "out", batch_size=2)
    rep = read_report(tmp_path / "out")
    assert (rep["rows_in"], rep["kept"], rep["duplicates"]) == (16, 11, 5)
    assert rep["per_source"]["t"]["duplicates"] == 5 and rep["per_source"]["s"]["duplicates"] == 0
    kept = list(read_pairs(tmp_path / "out"))
    assert [p.id for p in kept] == [p.id for p in a] + ["s-200"]
    assert all(p.lineage == ["ingest", "preprocess"] for p in kept)
    dropped = [json.loads(x) for x in open(tmp_path / "out" / "dropped.jsonl", encoding="utf-8")]
    assert sorted(d["id"] for d in dropped) == [f"t-{100 + i}" for i in range(0, 10, 2)]
    assert report.info["shards_in"] == 7
    assert pq.read_schema(tmp_path / "out" / "part-00000.parquet").equals(PAIR_SCHEMA, check_metadata=False)


def test_decontamination_13gram_hit_and_12gram_near_miss(tmp_path: Path) -> None:
    assert len(BENCH_WORDS) >= 14
    hit13 = "Sure! " + " ".join(BENCH_WORDS[1:14]) + " and more"
    miss12 = "Sure! " + " ".join(BENCH_WORDS[1:13]) + " and more"
    broken = " ".join(BENCH_WORDS[1:8]) + " UNRELATED " + " ".join(BENCH_WORDS[8:16])
    pairs = [
        pair(0, hit13),  # in the prompt
        pair(1, "tell me a story", chosen=hit13.upper()),  # in a response, other case
        pair(2, miss12),
        pair(3, broken),  # 13 words in all, but not contiguous
        pair(4, "tell me a story", chosen=" ".join(BENCH_WORDS[1:7]), rejected=" ".join(BENCH_WORDS[7:14])),  # split across messages
        pair(5, "nothing to see"),
    ]
    write_pairs(pairs, tmp_path / "in")
    prompts = tmp_path / "bench.txt"
    prompts.write_text("short prompt\n" + BENCH_PROMPT + "\n", encoding="utf-8")
    preprocess(tmp_path / "in", tmp_path / "out", prompts=load_prompts([prompts]))
    rep = read_report(tmp_path / "out")
    assert (rep["contaminated"], rep["kept"]) == (2, 4)
    assert [p.id for p in read_pairs(tmp_path / "out")] == ["s-2", "s-3", "s-4", "s-5"]
    dropped = [json.loads(x) for x in open(tmp_path / "out" / "dropped.jsonl", encoding="utf-8")]
    assert [(d["id"], d["reason"], d["prompt_index"]) for d in dropped] == [("s-0", "contaminated", 1), ("s-1", "contaminated", 1)]

    # n is a parameter: at 12 the near-miss is a hit
    assert Decontaminator([BENCH_PROMPT], n=12).contaminated([[miss12]]).tolist() == [True]


def test_decontaminator_agrees_with_the_sklearn_reference() -> None:
    """RewardBench's method: CountVectorizer 13-gram vectors, flagged on a nonzero overlap."""
    from sklearn.feature_extraction.text import CountVectorizer

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(60)]
    prompts = [" ".join(rng.choices(vocab, k=rng.randint(5, 40))) for _ in range(30)]
    texts = []
    for _ in range(300):
        words = rng.choices(vocab, k=rng.randint(5, 60))
        if rng.random() < 0.3:  # paste a slice of a prompt
            src = rng.choice(prompts).split()
            k = rng.randint(10, 16)
            start = rng.randint(0, max(0, len(src) - k))
            pos = rng.randint(0, len(words))
            words[pos:pos] = src[start : start + k]
        texts.append(" ".join(words))
    vec = CountVectorizer(ngram_range=(13, 13)).fit(prompts)
    ref = (vec.transform(texts) @ vec.transform(prompts).T).getnnz(axis=1) > 0
    ours = Decontaminator(prompts).contaminated([[t] for t in texts])
    assert ref.sum() > 10 and (~ref).sum() > 10
    assert ours.tolist() == ref.tolist()


def test_prompt_files_in_every_format(tmp_path: Path, shared_data: Path) -> None:
    (tmp_path / "a.txt").write_text("one\n\ntwo\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(json.dumps({"question": "three"}) + "\n" + json.dumps("four") + "\n", encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps([{"conversation_input": [{"role": "user", "content": "five"}]},
                                                 {"input": "six"}]), encoding="utf-8")
    assert list(load_prompts([tmp_path])) == ["one", "two", "three", "four", "five", "six"]
    assert first_turn_prompt({"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}) == "u"
    # the evaluation fixtures load as prompt files as they are
    rm_bench = json.loads((shared_data / "rm-bench" / "chat_filtered.json").read_text(encoding="utf-8"))
    assert list(load_prompts([shared_data / "rm-bench" / "chat_filtered.json"])) == [r["prompt"] for r in rm_bench]
    assert len(list(load_prompts([shared_data / "judgebench"]))) == 620
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        list(load_prompts([tmp_path / "missing.txt"]))


def test_structural_check_in_preprocess(tmp_path: Path) -> None:
    """Shards written by other tools (not through ingest) still get the §2.4 structural check."""
    good, same, empty = pair(0, "q"), pair(1, "q", chosen="x", rejected="x"), pair(2, "q", chosen="  ")
    write_pairs([good, same, empty], tmp_path / "in")
    preprocess(tmp_path / "in", tmp_path / "out")
    rep = read_report(tmp_path / "out")
    assert rep["quarantined"] == {"identical_responses": 1, "empty_content": 1}
    q = [json.loads(x) for x in open(tmp_path / "out" / "quarantine.jsonl", encoding="utf-8")]
    assert [(r["row"], r["reason"]) for r in q] == [(2, "identical_responses"), (3, "empty_content")]


def test_output_folder_must_differ_from_input(tmp_path: Path) -> None:
    write_pairs([pair(0, "q")], tmp_path / "in")
    before = sorted(p.name for p in (tmp_path / "in").iterdir())
    with pytest.raises(OutputError, match="is the input"):
        preprocess(tmp_path / "in", tmp_path / "in")
    with pytest.raises(OutputError, match="sits inside the input"):
        preprocess(tmp_path / "in", tmp_path / "in" / "pp")
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == before


def test_conservation_through_ingest_and_preprocess_on_every_fixture(shared_data: Path, tmp_path: Path) -> None:
    fixtures = [shared_data / "hh-rlhf", shared_data / "ultrafeedback-sample", shared_data / "llama-factory"]
    ingest(fixtures, tmp_path / "ing")
    prompts = load_prompts([shared_data / "rm-bench", shared_data / "judgebench", shared_data / "llmbar"])
    preprocess(tmp_path / "ing", tmp_path / "pp", prompts=prompts)
    ing, pp = read_report(tmp_path / "ing"), read_report(tmp_path / "pp")
    for rep in (ing, pp):
        for d in [rep, *rep["per_source"].values()]:
            assert d["rows_in"] == d["kept"] + d["duplicates"] + d["contaminated"] + sum(d["quarantined"].values())
    assert pp["rows_in"] == ing["kept"]
    # LLaMA-Factory's demo file repeats 5 of its pairs; dedup finds them
    assert pp["per_source"]["llama-factory/dpo_en_demo"]["duplicates"] == 5
    assert pp["contaminated"] >= 1  # an UltraFeedback prompt shares 13-grams with an LLMBar prompt
    assert sum(1 for _ in read_pairs(tmp_path / "pp")) == pp["kept"]


def test_an_input_without_shards_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.txt").write_text("a prompt\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError, match=r"prompts: no part-\*\.parquet shards.*--decontaminate"):
        preprocess(tmp_path / "prompts", tmp_path / "out")
