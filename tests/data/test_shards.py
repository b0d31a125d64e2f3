"""The pair schema and Parquet shards: round trips, rolling shards, streaming."""

from __future__ import annotations

import pyarrow.parquet as pq

from rewardops.data.schema import PAIR_SCHEMA, Message, PreferencePair
from rewardops.data.shards import ShardWriter, count_pairs, read_pairs, shard_paths, write_pairs


def make_pair(i: int) -> PreferencePair:
    return PreferencePair(
        id=f"p{i}",
        source="unit",
        conversation=[Message("user", f"question {i}")],
        chosen=f"good {i}",
        rejected=f"bad {i}",
        task_category="math",
        truth_chosen_better=i % 2 == 0,
        scores={"rm_prob": 0.25 * (i % 4)},
        lineage=["ingest"],
        meta={"row": i},
    )


def test_round_trip_keeps_every_field(tmp_path):
    pairs = [make_pair(i) for i in range(10)]
    write_pairs(pairs, tmp_path)
    back = list(read_pairs(tmp_path))
    assert back == pairs
    assert pq.read_schema(shard_paths(tmp_path)[0]).equals(PAIR_SCHEMA, check_metadata=False)


def test_writer_rolls_shards_and_counts(tmp_path):
    with ShardWriter(tmp_path, shard_size=7, batch_size=3) as w:
        w.write_all(make_pair(i) for i in range(20))
    assert [pq.ParquetFile(p).metadata.num_rows for p in shard_paths(tmp_path)] == [7, 7, 6]
    assert count_pairs(tmp_path) == 20
    assert [p.id for p in read_pairs(tmp_path)] == [f"p{i}" for i in range(20)]


def test_empty_dataset_is_valid(tmp_path):
    write_pairs([], tmp_path)
    assert count_pairs(tmp_path) == 0
    assert list(read_pairs(tmp_path)) == []


def test_flip_swaps_and_records():
    p = make_pair(0)
    f = p.flipped()
    assert (f.chosen, f.rejected) == (p.rejected, p.chosen)
    assert f.label_source == "flipped" and f.truth_chosen_better is False
    assert f.lineage[-1] == "flipped" and p.lineage == ["ingest"]
