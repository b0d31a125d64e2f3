"""The curation step functions the components call: seeding, ordering checks, merging, settings.

The stage-1 loop and the stage-2 filter themselves are the curation area's (and tested there);
here we test what the pipeline adds around them. A whole curation run is exercised by
`rewardops run demo --local` (see pipelines/README.md), which takes minutes on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rewardops.data.shards import read_pairs, shard_paths, write_pairs
from rewardops.data.world import generate_world
from rewardops.curation.steps import (
    CurationSettings,
    make_judges,
    merge_curated,
    merge_shards,
    seed_split,
    stage1_iteration,
)


def test_seed_split_verifies_the_gold_seed_and_shards_the_pool(tmp_path: Path):
    pairs = list(generate_world(60, noise=0.2, seed=3))
    write_pairs(pairs, tmp_path / "in")
    settings = CurationSettings(annotator_error=0.0)
    counts = seed_split(tmp_path / "in", tmp_path / "state", gold_n=10, silver_n=20, settings=settings, pool_shards=3)
    gold = list(read_pairs(tmp_path / "state" / "gold"))
    assert counts["gold"] + counts["undecidable"] == 10 and counts["silver"] == 20 and counts["pool"] == 30
    assert len(gold) == counts["gold"]
    # an error-free annotator puts the truly better response first, and says who verified it
    assert all(p.truth_chosen_better for p in gold)
    assert all(str(getattr(p.label_source, "value", p.label_source)) == "human" for p in gold)
    assert len(shard_paths(tmp_path / "state" / "pool")) == 3
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["iteration"] == 0 and state["settings"]["annotator_error"] == 0.0
    with pytest.raises(ValueError, match="cannot seed 50 gold"):
        seed_split(tmp_path / "in", tmp_path / "s2", gold_n=50, silver_n=20, settings=settings)


def test_stage1_iterations_must_come_in_order(tmp_path: Path):
    write_pairs(list(generate_world(40, seed=1)), tmp_path / "in")
    seed_split(tmp_path / "in", tmp_path / "state", 8, 8, CurationSettings())
    with pytest.raises(ValueError, match="the next iteration is 1, not 2"):
        stage1_iteration(tmp_path / "state", tmp_path / "next", 2, CurationSettings())
    with pytest.raises(ValueError, match="count from 1"):
        stage1_iteration(tmp_path / "state", tmp_path / "next", 0, CurationSettings())


def test_merge_shards_concatenates_each_parts_output(tmp_path: Path):
    pairs = list(generate_world(9, seed=2))
    for i in range(3):
        write_pairs(pairs[3 * i:3 * i + 3], tmp_path / f"part{i}" / "kept")
    write_pairs(pairs[:1], tmp_path / "part0" / "recycled")
    assert merge_shards([tmp_path / f"part{i}" for i in range(3)], tmp_path / "kept") == {"shards": 3}
    assert [p.id for p in read_pairs(tmp_path / "kept")] == [p.id for p in pairs]
    assert merge_shards([tmp_path / f"part{i}" for i in range(3)], tmp_path / "rec", "recycled") == {"shards": 1}


def test_merge_curated_is_stage1_sets_plus_new_stage2_pairs(tmp_path: Path):
    pairs = list(generate_world(12, seed=4))
    latest = tmp_path / "state" / "stage1" / "iter-02"
    (tmp_path / "state" / "stage1" / "iter-01").mkdir(parents=True)
    (tmp_path / "state" / "stage1" / "iter-01" / "metrics.json").write_text("{}")
    write_pairs(pairs[:2], latest / "gold")
    write_pairs(pairs[2:5], latest / "silver")
    (latest / "metrics.json").write_text("{}")
    write_pairs(pairs[4:8], tmp_path / "p0" / "kept")  # pairs[4] was already labelled in stage 1
    write_pairs(pairs[8:10], tmp_path / "p1" / "kept")
    counts = merge_curated(tmp_path / "state", [tmp_path / "p0", tmp_path / "p1"], tmp_path / "out")
    assert counts == {"gold": 2, "silver": 3, "stage2_kept": 5, "stage2_already_in_stage1": 1}
    assert [p.id for p in read_pairs(tmp_path / "out")] == [p.id for p in pairs[:10]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"judges": "gpt"}', "judges 'gpt'"),
        ('{"annotator": "alice"}', "Label Studio round trip"),
        ('{"judge_error": 1.5}', "a rate between 0 and 1"),
        ('{"temperature": 1}', "unknown curation settings ['temperature']"),
        ('[1, 2]', "must be a JSON object"),
    ],
)
def test_settings_reject_what_cannot_work(text, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        CurationSettings.from_json(text)
    assert CurationSettings.from_json(CurationSettings(n_judges=3).to_json()).n_judges == 3


def test_local_judges_are_smollm2_voting_by_likelihood():
    """The demo's judge: SmolLM2 in-process, one deterministic vote per pair."""
    ensemble = make_judges(CurationSettings(judges="local"))
    assert [m.name for m in ensemble.models] == ["local-hf:smollm2-135m"] and ensemble.n_samples == 1
    pairs = list(generate_world(2, noise=0.0, seed=3))
    verdicts = ensemble.judge([(p, []) for p in pairs])
    assert len(verdicts) == 2 and all(v.agrees in (True, False) for v in verdicts)
