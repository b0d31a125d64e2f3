"""Catalog resolution and the bad-config errors raised before the first step."""

from __future__ import annotations

from pathlib import Path

import pytest

from rewardops.training.config import (
    ConfigError,
    catalog_sizes,
    deepspeed_config,
    parse_overrides,
    load_config,
    validate,
)

PAPER = {
    "qwen3-0.6b": "Qwen/Qwen3-0.6B",
    "qwen3-1.7b": "Qwen/Qwen3-1.7B",
    "qwen3-4b": "Qwen/Qwen3-4B",
    "qwen3-8b": "Qwen/Qwen3-8B",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B-Instruct",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B-Instruct",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
    "llama-3.1-8b-40m": "meta-llama/Llama-3.1-8B-Instruct",
}


@pytest.mark.parametrize("size", sorted(PAPER))
def test_paper_sizes_resolve_to_the_final_recipe(size):
    c = load_config(size)
    assert c.backbone == PAPER[size]
    assert (c.lr, c.schedule, c.global_batch) == (3e-6, "constant", 10240)
    assert (c.deepspeed, c.zero_stage, c.nodes * c.gpus_per_node) == (True, 1, 64)
    assert c.max_length == 16384
    assert c.data_subset == ("40M" if size.endswith("40m") else "26M")
    validate(c.__class__(**{**c.__dict__, "out": "/tmp/x"}), world_size=64, check_paths=False)


@pytest.mark.parametrize("size", sorted(PAPER))
def test_dev_profile_uses_development_hyperparameters(size):
    c = load_config(size, profile="dev")
    assert c.schedule == "linear" and c.global_batch == 256 and c.warmup_ratio > 0
    assert c.lr == (1e-6 if "8b" in size else 4e-6)


def test_demo_ladder_is_in_the_catalog():
    sizes = catalog_sizes()
    assert set(PAPER) <= set(sizes)
    for name, backbone in [("demo-tiny-qwen3", "tiny-qwen3"), ("demo-smollm2-135m", "smollm2-135m")]:
        c = load_config(name)
        assert c.backbone == backbone and not c.deepspeed and c.zero_stage == 0 and c.demo


def test_overrides_are_typed():
    o = parse_overrides(["lr=1e-5", "zero_stage=3", "deepspeed=true", "max_steps=none", "truncation=drop"])
    assert o == {"lr": 1e-5, "zero_stage": 3, "deepspeed": True, "max_steps": None, "truncation": "drop"}
    c = load_config("demo-tiny-qwen3", o)
    assert c.zero_stage == 3 and c.lr == 1e-5
    with pytest.raises(ConfigError, match="unknown training setting 'lr_rate'"):
        parse_overrides(["lr_rate=1"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])
    with pytest.raises(ConfigError, match="expected int"):
        parse_overrides(["global_batch=many"])


def test_unknown_size_lists_the_catalog():
    with pytest.raises(ConfigError, match="qwen3-0.6b"):
        load_config("qwen9-1t")


def _demo(tmp_path: Path, pairs_dir: Path, **kw):
    return load_config("demo-tiny-qwen3", {"data": str(pairs_dir), "out": str(tmp_path), **kw})


def test_global_batch_not_divisible_names_the_fix(tmp_path, pairs_dir):
    c = _demo(tmp_path, pairs_dir, global_batch=10, micro_batch_size=4)
    with pytest.raises(ConfigError, match=r"global_batch=10 is not divisible by micro_batch_size \(4\) x world size \(2\) = 8"):
        validate(c, world_size=2)
    with pytest.raises(ConfigError, match="not divisible by the world size 4"):
        validate(_demo(tmp_path, pairs_dir, global_batch=10), world_size=4)


def test_zero3_without_deepspeed(tmp_path, pairs_dir):
    with pytest.raises(ConfigError, match="ZeRO stage 3 needs DeepSpeed: set deepspeed=true"):
        validate(_demo(tmp_path, pairs_dir, zero_stage=3, deepspeed=False), world_size=1)


def test_missing_backbone(tmp_path, pairs_dir):
    with pytest.raises(ConfigError, match="backbone '/nonexistent/rm' cannot be loaded"):
        validate(_demo(tmp_path, pairs_dir, backbone="/nonexistent/rm"), world_size=1)
    with pytest.raises(ConfigError, match="cannot be loaded"):  # a hub id, offline
        validate(_demo(tmp_path, pairs_dir, backbone="nobody/no-such-reward-model"), world_size=1)


def test_unreadable_data(tmp_path, pairs_dir):
    with pytest.raises(ConfigError, match="no such dataset folder"):
        validate(_demo(tmp_path, tmp_path / "missing"), world_size=1)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="data=.*empty: not a complete output, it has no _manifest.json"):
        validate(_demo(tmp_path, empty), world_size=1)
    bad = tmp_path / "bad.parquet"  # a single file is read as it is (no manifest to vouch for it)
    bad.write_text("not parquet")
    with pytest.raises(ConfigError, match="bad.parquet: unreadable Parquet shard"):
        validate(_demo(tmp_path, bad), world_size=1)


def test_token_budget_must_hold_a_pair(tmp_path, pairs_dir):
    with pytest.raises(ConfigError, match="raise micro_batch_tokens"):
        validate(_demo(tmp_path, pairs_dir, micro_batch_tokens=100), world_size=1)


def test_bad_config_fails_before_training_starts(tmp_path, pairs_dir):
    """Through the trainer: the error comes before any model is loaded or step taken."""
    from rewardops.training import run

    with pytest.raises(ConfigError, match="ZeRO stage 2 needs DeepSpeed"):
        run(_demo(tmp_path, pairs_dir, zero_stage=2, deepspeed=False), progress=False)
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_deepspeed_configs(stage):
    c = load_config("qwen3-0.6b", {"zero_stage": stage, "out": "/tmp/x"})
    ds = deepspeed_config(c, world_size=64)
    assert ds["zero_optimization"]["stage"] == stage
    assert ds["train_batch_size"] == 64 * ds["gradient_accumulation_steps"] * ds["train_micro_batch_size_per_gpu"]


def test_cli_reports_a_bad_config_with_exit_code_2(tmp_path, pairs_dir):
    from typer.testing import CliRunner

    from rewardops.cli import app

    result = CliRunner().invoke(app, ["train", "--size", "demo-tiny-qwen3", "--data", str(pairs_dir),
                                      "--out", str(tmp_path), "--set", "zero_stage=3"])
    assert result.exit_code == 2
    assert "ZeRO stage 3 needs DeepSpeed" in result.output
    listing = CliRunner().invoke(app, ["train-sizes"])
    assert listing.exit_code == 0 and "llama-3.1-8b-40m" in listing.output and "demo-smollm2-135m" in listing.output


def test_overrides_are_a_mapping_over_profile_and_size():
    c = load_config("qwen3-8b", {"lr": 2e-6, "zero_stage": 3}, profile="dev")
    assert (c.lr, c.zero_stage, c.global_batch, c.schedule) == (2e-6, 3, 256, "linear")
    # the demo sizes' own lr / global batch hold under the dev profile; nothing repeats them per profile
    demo = load_config("demo-tiny-qwen3", profile="dev")
    assert (demo.lr, demo.global_batch, demo.schedule) == (1e-3, 16, "linear")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config("demo-tiny-qwen3", ["lr=1e-5"])
    with pytest.raises(ConfigError, match="choose the size with --size"):
        load_config("demo-tiny-qwen3", {"size": "qwen3-8b"})
    with pytest.raises(ConfigError, match="unknown training setting 'dev_lr'"):
        load_config("demo-tiny-qwen3", {"dev_lr": 1e-5})


def test_a_resolved_config_round_trips_through_json_once():
    from rewardops.training.config import config_from_json

    c = load_config("qwen3-0.6b", {"lr": 5e-6, "out": "s3://b/o", "run_tags": {"rewardops.trainjob": "rm-x"}},
                       profile="dev")
    back = config_from_json(c.to_json())
    assert back == c
    with pytest.raises(ConfigError, match="--config-json: unknown training setting 'lr_rate'"):
        config_from_json('{"size": "x", "backbone": "y", "lr_rate": 1}')
    with pytest.raises(ConfigError, match="not valid JSON"):
        config_from_json("{lr: 1}")


def test_pipeline_overrides_arrive_as_json_numbers_and_are_typed():
    # KFP dict parameters are protobuf Structs: every number is a float
    c = load_config("qwen3-0.6b", {"global_batch": 256.0, "num_threads": 2.0, "lr": 1, "max_steps": None})
    assert (c.global_batch, c.num_threads, c.lr, c.max_steps) == (256, 2, 1.0, None)
    assert isinstance(c.global_batch, int) and isinstance(c.lr, float)
    with pytest.raises(ConfigError, match="global_batch=2.5: expected int"):
        load_config("qwen3-0.6b", {"global_batch": 2.5})
    with pytest.raises(ConfigError, match="deepspeed=1: expected bool"):
        load_config("qwen3-0.6b", {"deepspeed": 1})


def test_cli_overrides_become_one_mapping_with_dotted_keys_for_mapping_settings():
    o = parse_overrides(["lr=2e-5", "run_tags.team=rm", "run_tags.ticket=42"])
    assert o == {"lr": 2e-5, "run_tags": {"team": "rm", "ticket": "42"}}
    assert load_config("demo-tiny-qwen3", o).run_tags == {"team": "rm", "ticket": "42"}
    with pytest.raises(ConfigError, match="only mapping settings take a dotted key"):
        parse_overrides(["lr.value=1"])


def test_the_pod_command_takes_one_resolved_config_and_nothing_else(tmp_path, pairs_dir):
    from typer.testing import CliRunner

    from rewardops.cli import app

    resolved = load_config("demo-tiny-qwen3", {"data": str(pairs_dir), "out": str(tmp_path), "zero_stage": 3})
    (tmp_path / "resolved.json").write_text(resolved.to_json())
    runner = CliRunner()
    for args in (["--config-json", resolved.to_json()], ["--config", str(tmp_path / "resolved.json")]):
        result = runner.invoke(app, ["train", *args])  # the resolved config is checked like any other
        assert result.exit_code == 2 and "ZeRO stage 3 needs DeepSpeed" in result.output, result.output
    mixed = runner.invoke(app, ["train", "--config-json", resolved.to_json(), "--set", "lr=1"])
    assert mixed.exit_code == 2 and "carry the whole resolved config; drop --set" in mixed.output
    nothing = runner.invoke(app, ["train"])
    assert nothing.exit_code == 2 and "pass --size, --data, --out (or a resolved config with --config-json)" in nothing.output
