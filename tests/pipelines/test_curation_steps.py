"""The curation step layer the KFP components, the DVC stages and the CLI all call.

The main test runs one small pool through both routes (the compiled curation pipeline under
kfp.local's SubprocessRunner, and the `rewardops curate` commands dvc.yaml runs) and compares
every published set row for row. Cheap parts keep it fast: the hashed BT RM, the offline hashed
embedder, simulated people and judges on the generated world (whose truth they read).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.curation.settings import CurationSettings
from rewardops.curation.steps import SETS, merge, seed_split, stage1_iteration
from rewardops.data.shards import read_pairs, shard_paths, write_pairs
from rewardops.data.world import generate_world
from rewardops.outputs import IncompleteOutputError, verify_output

SMALL = {"profile": "demo", "judges": ["simulated:0.2", "simulated:0.3"], "judge_samples": 1, "judge_budget": 0,
         "embedder": "hashed", "gold_n": 24, "silver_n": 60, "pool_shards": 2, "human_per_iteration": 4,
         "iterations": 1, "noise_gold_n": 16, "stage2_judges": True, "band": 0.2, "recycle_confidence": 0.6,
         # 7 held-out gold pairs cannot show an RM beats chance: apply the paper's rule as is, so that
         # every set (discarded, recycled) has rows for the two routes to agree on
         "keep_all_if_rms_untrusted": False}


pytestmark = pytest.mark.slow  # kfp.local: every step a real subprocess


def _rows(folder: Path) -> list[dict]:
    return [p.to_row() for p in read_pairs(folder)]


def test_kfp_local_and_cli_routes_publish_the_same_sets_row_for_row(tmp_path: Path, monkeypatch):
    from rewardops.pipelines.commands import build_pipeline, prepare_params, run_local

    monkeypatch.setenv("REWARDOPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    write_pairs(list(generate_world(240, noise=0.25, seed=5)), tmp_path / "pre")
    (tmp_path / "settings.yaml").write_text(yaml.safe_dump(SMALL))

    # the DVC/CLI route (what dvc.yaml runs)
    cli = CliRunner()
    s = ["--settings", str(tmp_path / "settings.yaml")]
    for args in (["curate", "seed", str(tmp_path / "pre"), "--out", str(tmp_path / "seed")],
                 ["curate", "stage1", "--state", str(tmp_path / "seed"), "--out", str(tmp_path / "s1")],
                 ["curate", "final-rms", str(tmp_path / "s1"), str(tmp_path / "rms")],
                 ["curate", "stage2", "--state", str(tmp_path / "s1"), "--models", str(tmp_path / "rms"),
                  "--out", str(tmp_path / "s2")],
                 ["curate", "merge", "--state", str(tmp_path / "s1"), "--models", str(tmp_path / "rms"),
                  "--stage2", str(tmp_path / "s2"), "--out", str(tmp_path / "data")]):
        result = cli.invoke(app, args + s)
        assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "data" / "subsets.json").read_text())

    # the KFP route: the compiled curation pipeline, 1 stage-1 iteration, under kfp.local
    func = build_pipeline("curation", iterations=1)
    params = prepare_params("curation", func, {"dataset_uri": str(tmp_path / "pre"), "data_version": "test:1",
                                               "settings": json.dumps(SMALL)}, [], [], local=True)
    run_local("curation", params, tmp_path / "kfp", cache=False, iterations=1)
    merged = next((tmp_path / "kfp" / "kfp").glob("rewardops-curation-*/merge-shards"))

    published = {"curated": "curated", "recycled": "flipped", "no_verdict": "no_verdict", "discarded": "discarded"}
    sizes = {}
    for name in SETS:
        kfp_rows, cli_rows = _rows(merged / name), _rows(tmp_path / "data" / published[name])
        assert kfp_rows == cli_rows, name
        sizes[name] = len(cli_rows)
    # curated = stage-1 final gold + silver + stage-2 kept, deduplicated; the report says the same
    assert sizes["curated"] == report["curated"] == report["sets"]["gold"] + report["sets"]["silver"] + report["sets"]["stage2_kept"]
    assert sizes["curated"] > 84 and sizes["discarded"] > 0
    ids = [r["id"] for r in _rows(tmp_path / "data" / "curated")]
    assert len(ids) == len(set(ids))
    counts = report["stage2"]["counts"]
    assert counts["kept"] + counts["discarded"] + counts["no_verdict"] == 240 - 84  # the whole pool, nothing dropped
    print("sizes", sizes, "counters", report["stage2"]["counters"])
    assert report["stage2"]["true_noise"]["pool"] > 0  # the world's truth gives each set's true noise
    # recycled pairs: both RMs confidently reversed them; none contradicts or repeats stage 1's pairs
    stage1_ids = {r["id"] for name in ("gold", "silver") for r in _rows(next((tmp_path / "s1" / "stage1").glob("iter-01")) / name)}
    assert not stage1_ids & {r["id"] for r in _rows(tmp_path / "data" / "flipped")}
    assert all(r["label_source"] == "flipped" for r in _rows(tmp_path / "data" / "flipped"))
    verify_output(tmp_path / "s1", "curation-state")
    verify_output(tmp_path / "rms", "curation-models")


def test_seed_split_verifies_the_gold_seed_and_shards_the_pool(tmp_path: Path):
    write_pairs(list(generate_world(60, noise=0.2, seed=3)), tmp_path / "in")
    settings = CurationSettings.parse({"profile": "demo", "annotator": "simulated:0", "gold_n": 10, "silver_n": 20,
                                       "pool_shards": 3})
    counts = seed_split(tmp_path / "in", tmp_path / "state", settings)
    gold = list(read_pairs(tmp_path / "state" / "gold"))
    assert counts["gold"] + counts["undecidable"] == 10 and counts["silver"] == 20 and counts["pool"] == 30
    assert len(gold) == counts["gold"] and all(p.truth_chosen_better for p in gold)
    assert all(p.label_source == "human" for p in gold)
    assert len(shard_paths(tmp_path / "state" / "pool")) == 3
    state = json.loads((tmp_path / "state" / "state.json").read_text())
    assert state["iteration"] == 0 and state["settings"]["annotator"] == "simulated:0"
    with pytest.raises(ValueError, match="cannot seed 50 gold"):
        seed_split(tmp_path / "in", tmp_path / "s2", settings.with_overrides(gold_n=50))
    # the output is atomic and verified: a tampered state is refused by the next step
    (tmp_path / "state" / "gold" / "extra.txt").write_text("x")
    with pytest.raises(IncompleteOutputError, match="not in its manifest"):
        stage1_iteration(tmp_path / "state", tmp_path / "next", 1, settings)


def test_stage1_iterations_must_come_in_order(tmp_path: Path):
    write_pairs(list(generate_world(40, seed=1)), tmp_path / "in")
    settings = CurationSettings.parse({"profile": "demo", "gold_n": 8, "silver_n": 8, "embedder": "hashed"})
    seed_split(tmp_path / "in", tmp_path / "state", settings)
    with pytest.raises(ValueError, match="the next iteration is 1, not 2"):
        stage1_iteration(tmp_path / "state", tmp_path / "next", 2, settings)
    with pytest.raises(ValueError, match="count from 1"):
        stage1_iteration(tmp_path / "state", tmp_path / "next", 0, settings)


def test_merge_refuses_missing_outputs_and_incomplete_parts(tmp_path: Path):
    with pytest.raises(IncompleteOutputError):
        merge(tmp_path / "nothing", tmp_path / "m", [], {n: tmp_path / n for n in SETS}, CurationSettings())


def test_the_demo_profile_is_compiled_into_the_demo_pipeline(compiled):
    """No CLI-only special cases: the compiled demo YAML carries the demo settings as its default."""
    demo, e2e = compiled["demo"], compiled["end-to-end"]
    params = demo["root"]["inputDefinitions"]["parameters"]
    assert params["settings"]["defaultValue"] == "demo"
    assert e2e["root"]["inputDefinitions"]["parameters"]["settings"].get("defaultValue", "") == ""
    assert "gold_n" not in params and "pool_shards" not in params  # settings, not extra parameters
    demo_settings = CurationSettings.parse("demo")
    assert demo_settings.annotator.startswith("simulated") and demo_settings.judges == ("local",)


def test_pipeline_checks_refuse_a_terminal_annotator():
    from rewardops.pipelines.checks import check

    problems = check("curation", {"data_version": "x:1", "settings": ""}, local=True)
    assert any("annotator 'terminal'" in p and "labelstudio" in p for p in problems)
    assert not check("curation", {"data_version": "x:1", "settings": "demo"}, local=True)


def test_stage2_verifies_its_inputs_and_merge_its_parts(tmp_path: Path):
    from rewardops.curation.steps import final_models, stage1, stage2_shard

    write_pairs(list(generate_world(120, noise=0.2, seed=4)), tmp_path / "in")
    settings = CurationSettings.parse({**SMALL, "gold_n": 16, "silver_n": 30, "stage2_judges": False})
    seed_split(tmp_path / "in", tmp_path / "seed", settings)
    stage1(tmp_path / "seed", tmp_path / "s1", settings)
    info = final_models(tmp_path / "s1", tmp_path / "rms", settings)
    assert info["from"] == "iter-01" and info["best_rm_temperature"] > 0
    with pytest.raises(ValueError, match="the settings ask for 2"):
        final_models(tmp_path / "s1", tmp_path / "rms2", settings.with_overrides(iterations=2))
    stage2_shard(tmp_path / "s1", tmp_path / "rms", 0, tmp_path / "part0", settings)
    verify_output(tmp_path / "part0", "curation-stage2")
    # a models folder changed after it was written is refused before anything is read or written
    rm_json = tmp_path / "rms" / "best_rm" / "rm.json"
    rm_json.write_text(rm_json.read_text().replace('"temperature"', '"temperature" ', 1))
    with pytest.raises(IncompleteOutputError, match="rms"):
        stage2_shard(tmp_path / "s1", tmp_path / "rms", 1, tmp_path / "part1", settings)
    assert not (tmp_path / "part1").exists()
    # a half-written shard folder (no manifest) is refused by merge
    (tmp_path / "half").mkdir()
    with pytest.raises(IncompleteOutputError, match="half"):
        merge(tmp_path / "s1", tmp_path / "rms", [tmp_path / "part0", tmp_path / "half"],
              {n: tmp_path / "sets" / n for n in SETS}, settings)
    assert not (tmp_path / "sets").exists()


def test_the_pool_shard_count_follows_the_pool_size():
    from rewardops.curation.steps import pool_layout

    s = CurationSettings.parse({"pool_shards": 2, "pool_shard_size": 250_000})
    assert pool_layout(80_000, s) == (2, 40_000)  # small pools still fan out over pool_shards
    assert pool_layout(1_280_000, s) == (6, 213_334)
    assert pool_layout(40_000_000, s) == (160, 250_000)  # the paper's pool
    assert pool_layout(1, s) == (1, 1)


def test_seed_streams_the_pool_into_prepared_shards_and_stage1_reads_it_in_place(tmp_path: Path):
    from rewardops.curation.steps import pool_root, prepare_shard, split_dataset, stage2_shard, final_models

    write_pairs(list(generate_world(130, noise=0.2, seed=6)), tmp_path / "in")
    settings = CurationSettings.parse({**SMALL, "gold_n": 10, "silver_n": 20, "pool_shards": 2, "pool_shard_size": 30,
                                       "stage2_judges": False})
    # a crash after the split and one prepared shard: the rerun reuses both
    split_dataset(tmp_path / "in", tmp_path / ".seed.split", settings)
    prepare_shard(tmp_path / ".seed.split", 0, tmp_path / ".seed.prepared" / "shard-00000", settings)
    done = (tmp_path / ".seed.prepared" / "shard-00000" / "pool" / "part-00000.parquet").stat().st_mtime_ns
    counts = seed_split(tmp_path / "in", tmp_path / "seed", settings)
    assert counts["pool"] == 100 and counts["pool_shards"] == 4  # shards of <= 30 pairs, not a fixed count
    assert (tmp_path / "seed" / "pool" / "part-00000.parquet").stat().st_mtime_ns == done
    assert not (tmp_path / ".seed.split").exists() and not (tmp_path / ".seed.prepared").exists()
    shards = shard_paths(tmp_path / "seed" / "pool")
    assert [p.name for p in shards] == [f"part-0000{i}.parquet" for i in range(4)]
    assert sum(1 for _ in read_pairs(tmp_path / "seed" / "pool")) == 100
    assert all(p.task_category for p in read_pairs(tmp_path / "seed" / "pool"))  # attributes on every pool pair
    assert len(list((tmp_path / "seed" / "pool_vectors").glob("part-*.npy"))) == 4
    verify_output(tmp_path / "seed", "curation-state")

    # stage 1 names the seed's pool instead of copying it; stage 2 follows the name (or takes --pool)
    stage1_iteration(tmp_path / "seed", tmp_path / "s1", 1, settings)
    assert not (tmp_path / "s1" / "pool").exists() and not (tmp_path / "s1" / "pool_vectors").exists()
    assert pool_root(tmp_path / "s1") == (tmp_path / "seed").resolve()
    assert (tmp_path / "s1" / "stage1" / "iter-01" / "moved.json").is_file()
    final_models(tmp_path / "s1", tmp_path / "rms", settings)
    summary = stage2_shard(tmp_path / "s1", tmp_path / "rms", 3, tmp_path / "part3", settings)
    assert summary["input_rows"] == 25  # 100 pairs in 4 even shards of <= 30
    (tmp_path / "seed").rename(tmp_path / "moved-seed")
    with pytest.raises(FileNotFoundError, match="--pool"):
        stage2_shard(tmp_path / "s1", tmp_path / "rms", 0, tmp_path / "part0", settings)
    assert stage2_shard(tmp_path / "s1", tmp_path / "rms", 0, tmp_path / "part0", settings,
                        pool=tmp_path / "moved-seed")["input_rows"] == 25


def test_plan_prints_shards_pods_memory_and_time_for_a_pool_size():
    result = CliRunner().invoke(app, ["pipelines", "plan", "--pairs", "40000000", "--pods", "32"])
    assert result.exit_code == 0, result.output
    assert "160 shard(s) of <= 250,000" in result.output and "32 pod(s) at once" in result.output
    prepare = next(line for line in result.output.splitlines() if line.startswith("prepare"))
    assert prepare.split()[1:4] == ["160", "32", "2Gi"]
    bad = CliRunner().invoke(app, ["pipelines", "plan", "--pairs", "10", "--settings", '{"pool_shard_size": 0}'])
    assert bad.exit_code == 2 and "pool_shard_size=0" in bad.output


def test_a_fanned_out_worker_hashes_its_own_shard_only(tmp_path: Path):
    from rewardops.curation.shardrun import run_shards

    write_pairs(list(generate_world(30, seed=2)), tmp_path / "pool", shard_size=10)
    shard = shard_paths(tmp_path / "pool")[2]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content
    shard.write_bytes(bytes(data))

    def keep(pairs, counters):
        return [("kept", p) for p in pairs]

    done = run_shards(tmp_path / "pool", tmp_path / "out", ["kept"], keep, only=[0])  # shard 0 is fine
    assert done[0]["input_rows"] == 10
    with pytest.raises(IncompleteOutputError, match="part-00002.parquet: content differs"):
        run_shards(tmp_path / "pool", tmp_path / "out", ["kept"], keep, only=[2])


def test_merge_filters_only_when_the_evidence_shows_it_helps(tmp_path: Path):
    """The same stage-2 outputs published by the decision: with a clear gold replay the pool's own
    mirror counts (every non-stage-1 pool pair, from the shards) have the last word; a replay that
    cannot tell right from wrong labels keeps every pool pair as labelled (nothing discarded or
    recycled, lineage `stage2:kept_all`) and says why; the paper's rule as is publishes the sets."""
    from rewardops.curation.steps import final_models, stage1, stage2

    write_pairs(list(generate_world(120, noise=0.25, seed=6)), tmp_path / "in")
    settings = CurationSettings.parse({**SMALL, "gold_n": 16, "silver_n": 30, "stage2_judges": False,
                                       "keep_all_if_rms_untrusted": True})
    seed_split(tmp_path / "in", tmp_path / "seed", settings)
    stage1(tmp_path / "seed", tmp_path / "s1", settings)
    final_models(tmp_path / "s1", tmp_path / "rms", settings)
    replay = json.loads((tmp_path / "rms" / "replay.json").read_text())
    assert replay["pairs"] == len(replay["outcomes"]) >= 16  # every gold pair, both ways
    parts = stage2(tmp_path / "s1", tmp_path / "rms", tmp_path / "s2", settings)
    pool = sum(1 for part in parts for name in ("kept", "discarded", "no_verdict") for _ in read_pairs(part / name))

    def publish(outcomes: list, name: str, how: CurationSettings = settings) -> dict:
        (tmp_path / "rms" / "replay.json").write_text(json.dumps({**replay, "outcomes": outcomes}))
        return merge(tmp_path / "s1", tmp_path / "rms", parts, {n: tmp_path / name / n for n in SETS}, how)

    ids = [o["id"] for o in replay["outcomes"]] * 10  # 10x the gold: a clear signal
    clear = publish([{"id": i, "right": ["kept"], "wrong": ["discarded"]} for i in ids], "clear")
    # the gold is clear; the pool's own evidence (each pool pair decided both ways) has the last word
    mirror = clear["stage2"]["decision"]["pool_mirror"]
    in_stage1 = clear["sets"]["stage2_already_in_stage1"]
    assert mirror["pairs"] == pool - in_stage1 and clear["stage2"]["filtered"] == mirror["shows_skill"]
    assert f"on {mirror['pairs']} pool pairs" in clear["stage2"]["decision"]["why"]
    forced = publish([{"id": i, "right": ["kept"], "wrong": ["discarded"]} for i in ids], "filtered",
                     dataclasses.replace(settings, keep_all_if_rms_untrusted=False))
    assert forced["stage2"]["filtered"] and forced["sets"]["discarded"] == forced["stage2"]["counts"]["discarded"] > 0
    coin = publish([{"id": i, "right": ["kept" if k % 2 else "discarded"], "wrong": ["kept" if k % 2 else "discarded"]}
                    for k, i in enumerate(ids)], "kept_all")
    decision = coin["stage2"]["decision"]
    assert not coin["stage2"]["filtered"] and decision["why"].startswith("keep every pool pair as labelled")
    assert coin["sets"]["discarded"] == coin["sets"]["recycled"] == coin["sets"]["no_verdict"] == 0
    assert coin["sets"]["stage2_kept"] + coin["sets"]["stage2_already_in_stage1"] == pool  # nothing lost
    kept_all = [p for p in read_pairs(tmp_path / "kept_all" / "curated") if "stage2:kept_all" in p.lineage]
    assert len(kept_all) == coin["sets"]["stage2_kept"] > forced["sets"]["stage2_kept"]
    # on the world, each set's estimated noise sits next to its true noise in the report
    assert forced["stage2"]["decision"]["noise"]["pool"]["true"] == forced["stage2"]["true_noise"]["pool"] > 0


class _Memoriser:
    """A STAND-IN reward model (not a real one) with no skill at all except on the pairs it has seen:
    trained, selected or calibrated on. It gives a seen pair 0.99 as labelled and 0.01 flipped, and
    every unseen pair 0.6 whichever way round it is shown. The worst case of an RM whose checkpoint
    selection or calibration saw the gold pairs the replay scores: any such leak shows up as skill."""

    name = "memoriser"

    def __init__(self, seen: list) -> None:
        self.seen = {(json.dumps([[m.role, m.content] for m in p.conversation]), p.chosen, p.rejected) for p in seen}

    def score_pairs(self, pairs):
        def p(q):
            convo = json.dumps([[m.role, m.content] for m in q.conversation])
            return 0.99 if (convo, q.chosen, q.rejected) in self.seen else (
                0.01 if (convo, q.rejected, q.chosen) in self.seen else 0.6)
        return [p(q) for q in pairs]


class _MemoriserTrainer:
    last_history: list = []

    def train(self, silver_dir, gold_dir, out_dir):
        seen = list(read_pairs(silver_dir)) + (list(read_pairs(gold_dir)) if gold_dir is not None else [])
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return _Memoriser(seen)


def test_the_gold_replay_never_scores_a_gold_pair_with_a_model_selected_or_calibrated_on_it(tmp_path: Path,
                                                                                               monkeypatch):
    """With an RM that knows only what it saw, a leak-free replay shows no skill (each gold pair lands
    alike as labelled and flipped) and stage 2 keeps everything; the same RM selected and calibrated on
    all the gold (the published best RM) would make the replay claim perfect skill and filter."""
    from rewardops.curation import builders
    from rewardops.curation.rms import train_rm
    from rewardops.curation.stage2 import Stage2Filter, decide, replay_outcomes
    from rewardops.curation.steps import final_models, latest_iteration, stage1, stage2_config

    write_pairs(list(generate_world(120, noise=0.25, seed=6)), tmp_path / "in")
    settings = CurationSettings.parse({**SMALL, "gold_n": 16, "silver_n": 30, "stage2_judges": False,
                                       "keep_all_if_rms_untrusted": True, "noise_gold_n": 0})
    seed_split(tmp_path / "in", tmp_path / "seed", settings)
    stage1(tmp_path / "seed", tmp_path / "s1", settings)
    monkeypatch.setattr(builders, "build_rm_trainer", lambda *a, **k: _MemoriserTrainer())
    final_models(tmp_path / "s1", tmp_path / "rms", settings)
    replay = json.loads((tmp_path / "rms" / "replay.json").read_text())
    latest = latest_iteration(tmp_path / "s1")
    gold = list(read_pairs(latest / "gold"))
    assert replay["pairs"] == len(gold) >= 16 and "neither trained, selected nor calibrated" in replay["source"]
    assert all(o["right"] == o["wrong"] for o in replay["outcomes"])  # no skill shown: nothing leaked
    counts = {"kept": 60, "discarded": 40, "no_verdict": 0, "recycled": 0}
    assert not decide(counts, replay["outcomes"], z=settings.rm_skill_z)["filter"]
    # each fold's best RM was selected and calibrated on the gold minus its fold
    for k in range(4):
        record = json.loads((tmp_path / "rms" / "best_rm" / "folds" / f"fold-{k}" / "rm.json").read_text())
        assert record["selected_on"].endswith(f"gold_rm/folds/fold-{k}/train")
    # the control: the best RM selected and calibrated on ALL gold replays as if it had skill
    from rewardops.curation.rms import train_gold_rm

    _, crossfit, pairs = train_gold_rm(settings, latest / "gold", tmp_path / "g")
    leaky = train_rm(settings, latest / "silver", latest / "gold", tmp_path / "leaky")
    leaked = replay_outcomes(Stage2Filter(leaky, crossfit, stage2_config(settings)), pairs)
    assert all(o["right"] == ["kept"] and o["wrong"] != ["kept"] for o in leaked)
    assert decide(counts, leaked, z=settings.rm_skill_z)["filter"]
