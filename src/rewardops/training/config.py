"""The training configuration: a catalog entry plus overrides, checked before the first step.

`load_config(size, overrides, profile)` reads the catalog (`rewardops/training/catalog.yaml`) and
returns a `TrainConfig`. Precedence, lowest first (the torchtune way: YAML values, then dotted
keys from the command line):

    catalog `defaults` < catalog `profiles[profile]` < the size's entry
      < the size's own `profiles[profile]` < `overrides` (a mapping)

so a profile (`dev`: linear decay with warmup, global batch 256, LR 4e-6) sets `lr` explicitly,
a size that needs another dev LR says so under its own `profiles:`, and the demo sizes, whose
entries set their own `lr`, need not repeat it per profile.

Overrides are a mapping everywhere (the KFP pipelines' `overrides: dict` parameter, curation, the
pod). `parse_overrides(["lr=1e-5"])` turns the CLI's `--set key=value` strings into that mapping
once. A resolved config travels to a pod once, as JSON (`TrainConfig.to_json()` ->
`rewardops train --config-json ...` -> `config_from_dict`). `validate(config, world_size)` turns
every impossible setting into a `ConfigError` whose message says what to change.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from rewardops.training.errors import ConfigError  # noqa: F401 - raised here, imported from here by callers

# The catalog and the DeepSpeed configs are package data of this module (REWARDOPS_CATALOG overrides).
PACKAGE_DIR = Path(__file__).resolve().parent
CATALOG_PATH = Path(os.environ.get("REWARDOPS_CATALOG", PACKAGE_DIR / "catalog.yaml"))
DEEPSPEED_DIR = PACKAGE_DIR / "deepspeed"
SCHEDULES = ("constant", "linear")
TRUNCATION = ("truncate", "drop")
ATTENTION = ("auto", "segments", "varlen", "flex")


@dataclass
class TrainConfig:
    size: str
    backbone: str
    data: str = ""
    out: str = ""
    lr: float = 3e-6
    schedule: str = "constant"  # constant (final runs) | linear (decay with warmup, dev runs)
    warmup_ratio: float = 0.0
    global_batch: int = 10240  # preference pairs per optimizer step, over all ranks
    micro_batch_size: int | None = None  # pairs per micro-batch; None = token-budget micro-batches
    micro_batch_tokens: int = 32768  # token budget of one packed micro-batch (per rank)
    deepspeed: bool = False
    zero_stage: int = 0
    nodes: int = 1
    gpus_per_node: int = 1
    max_length: int = 16384
    truncation: str = "truncate"  # over-length sequences: truncate (keep the end) | drop the pair
    drop_identical: bool = True  # a pair whose responses are identical carries no preference
    data_subset: str = "26M"
    epochs: int = 1
    max_steps: int | None = None
    seed: int = 42
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    gradient_checkpointing: bool = True
    # Partial fine-tuning for CPU demos: train only the top N decoder layers, the final norm and
    # the score head (None = the whole model, as the paper does).
    trainable_layers: int | None = None
    dtype: str = "auto"  # auto = bf16 on GPU, fp32 on CPU
    attention: str = "auto"  # auto: CUDA varlen (plain) / flex (shared prefix); sdpa segments on CPU
    # Encode each pair's prompt once: [prompt | chosen | rejected], each response seeing the prompt
    # and itself (rewardops.training.packing). auto = on where the backbone supports it; true on a
    # backbone that cannot is an error; false = the plain layout. Exact either way.
    shared_prefix: bool | str = "auto"
    margin_key: str | None = None  # BT with margin: pair.scores[margin_key] (off by default)
    center_rewards_coef: float = 0.0  # TRL-style reward centering (off by default)
    checkpoint_every: int = 0  # optimizer steps; 0 = only at the end
    checkpoint_dir: str | None = None  # local path or s3://bucket/prefix; default <out>/checkpoints
    keep_checkpoints: int = 2
    # true: continue from the newest complete checkpoint of this run (same data and math settings);
    # "force": even if its fingerprint differs; false: start over (rewardops.training.checkpoint)
    resume: bool | str = True
    log_every: int = 1
    eval_data: str | None = None
    eval_pairs: int = 512
    export: bool = True
    mlflow: bool = True
    tracking_uri: str | None = None  # default: MLFLOW_TRACKING_URI or sqlite:///<out>/mlflow.db
    experiment: str = "rewardops-training"
    register_name: str | None = None  # default: rewardops-rm-<size>
    num_threads: int | None = None
    released_as: str | None = None
    demo: bool = False
    profile: str = "final"
    run_tags: dict[str, str] = field(default_factory=dict)  # extra MLflow tags (KFP run id, TrainJob name)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint_location(self) -> str:
        return self.checkpoint_dir or str(Path(self.out) / "checkpoints")

    @property
    def model_name(self) -> str:
        from rewardops.naming import registered_model_name

        return self.register_name or registered_model_name(self.size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def load_catalog(path: str | Path | None = None) -> dict[str, Any]:
    path = Path(path or CATALOG_PATH)
    try:
        catalog = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: the training catalog is missing (set REWARDOPS_CATALOG)") from exc
    if not isinstance(catalog, dict) or "sizes" not in catalog:
        raise ConfigError(f"{path}: a catalog needs a top-level 'sizes' mapping")
    return catalog


def catalog_sizes(catalog: dict[str, Any] | None = None) -> list[str]:
    return list((catalog or load_catalog())["sizes"])


_FIELD_TYPES = {f.name: f for f in fields(TrainConfig)}


def _coerce(key: str, value: Any) -> Any:
    """A `--set key=value` string (or a YAML value) as the field's type."""
    if key not in _FIELD_TYPES:
        known = ", ".join(sorted(_FIELD_TYPES))
        raise ConfigError(f"unknown training setting {key!r}; known settings: {known}")
    kind = str(_FIELD_TYPES[key].type)
    if not isinstance(value, str):
        return _typed(key, value, kind)
    text = value.strip()
    if text.lower() in ("none", "null", "") and "None" in kind:
        return None
    try:
        if kind.startswith("bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            if key == "resume" and text.lower() == "force":
                return "force"
            if key == "shared_prefix" and text.lower() == "auto":
                return "auto"
            raise ValueError(text)
        if kind.startswith("int"):
            return int(float(text)) if "e" in text.lower() else int(text)
        if kind.startswith("float"):
            return float(text)
    except ValueError as exc:
        if key == "shared_prefix":
            raise ConfigError(f"setting shared_prefix={value!r}: use auto, true or false") from exc
        raise ConfigError(f"setting {key}={value!r}: expected {kind}") from exc
    if kind.startswith("dict"):
        return json.loads(text)
    return text


def _typed(key: str, value: Any, kind: str) -> Any:
    """A JSON / YAML value as the field's type. KFP's dict parameters arrive as protobuf Structs,
    whose numbers are all floats: 8.0 for an int setting is 8; 8.5 is an error."""
    if value is None:
        if "None" in kind:
            return None
        raise ConfigError(f"setting {key}=null: expected {kind}")
    if kind.startswith("bool"):
        if isinstance(value, bool):
            return value
    elif kind.startswith("int"):
        if isinstance(value, bool):
            pass
        elif isinstance(value, int):
            return value
        elif isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind.startswith("float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind.startswith("dict"):
        if isinstance(value, Mapping):
            return dict(value)
    else:  # str fields
        return value if isinstance(value, str) else str(value)
    raise ConfigError(f"setting {key}={value!r}: expected {kind}")


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """The CLI's `--set key=value` strings as one typed mapping; a dotted key sets one entry of a
    mapping setting (`--set run_tags.team=rm` -> {"run_tags": {"team": "rm"}})."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: write overrides as key=value, e.g. --set lr=1e-5")
        key, value = (part.strip() for part in item.split("=", 1))
        if "." in key:
            head, sub = key.split(".", 1)
            if head not in _FIELD_TYPES or not str(_FIELD_TYPES[head].type).startswith("dict"):
                raise ConfigError(f"--set {item!r}: only mapping settings take a dotted key "
                                  f"({', '.join(n for n, f in _FIELD_TYPES.items() if str(f.type).startswith('dict'))})")
            out.setdefault(head, {})[sub] = value
            continue
        out[key] = _coerce(key, value)
    return out


# Settings that say where credentials are sent or where results land. On a shared cluster they
# come from the cluster (the chart's client ConfigMap env: MLFLOW_TRACKING_URI, AWS_ENDPOINT_URL,
# the pipeline's output_root) and from rewardops.naming, never from a pipeline parameter: the pod
# would otherwise send its MLflow / S3 credentials to whatever host a parameter names.
CLUSTER_SETTINGS: dict[str, str] = {
    "tracking_uri": "the MLflow endpoint is the cluster's (MLFLOW_TRACKING_URI from the chart's client ConfigMap)",
    "checkpoint_dir": "checkpoints go under the pipeline's output folder (output_root on the cluster)",
    "register_name": "the registered model name is rewardops-rm-<size> (rewardops.naming)",
    "experiment": "the MLflow experiment is the pipeline's (rewardops-training)",
}


def _host_values(value: Any, path: str) -> list[str]:
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in _host_values(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in _host_values(v, f"{path}[{i}]")]
    if isinstance(value, str) and ("://" in value or value.lstrip().startswith("//")):
        return [path]
    return []


def refuse_cluster_settings(overrides: Mapping[str, Any] | None, setting: str = "overrides") -> None:
    """Refuse, before any request, pipeline-parameter overrides that name a host, a registry name
    or a checkpoint destination (`CLUSTER_SETTINGS`, or any value holding a URL); the
    `ConfigError` names each setting and where its value comes from instead. The local CLI's
    `--set` (a person's own machine and credentials) is not a pipeline parameter and is not
    checked here."""
    if not overrides:
        return
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"{setting} must be a mapping of setting -> value, got {type(overrides).__name__}")
    problems = [f"{setting}.{key}: not a pipeline parameter; {why}" for key, why in CLUSTER_SETTINGS.items()
                if key in overrides]
    problems += [f"{setting}.{path.removeprefix('.')}: names a host or URL; endpoints and destinations come from the "
                 "cluster, not from parameters" for key, value in overrides.items() if key not in CLUSTER_SETTINGS
                 for path in _host_values(value, str(key))]
    if problems:
        raise ConfigError("refused: " + "; ".join(problems))


def load_config(
    size: str,
    overrides: Mapping[str, Any] | None = None,
    profile: str = "final",
    catalog: dict[str, Any] | None = None,
) -> TrainConfig:
    """The catalog entry `size` with the profile and the overrides mapping applied (see the module docstring)."""
    catalog = catalog or load_catalog()
    sizes = catalog["sizes"]
    if size not in sizes:
        raise ConfigError(f"unknown size {size!r}; the catalog has: {', '.join(sizes)}")
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ConfigError(f"overrides must be a mapping of setting -> value, got {type(overrides).__name__}: {overrides!r}")
    entry = dict(sizes[size] or {})
    own_profiles = entry.pop("profiles", None) or {}
    merged: dict[str, Any] = dict(catalog.get("defaults", {}))
    if profile != "final":
        profiles = catalog.get("profiles", {})
        if profile not in profiles:
            raise ConfigError(f"unknown profile {profile!r}; use final or one of: {', '.join(profiles)}")
        merged.update(profiles[profile] or {})
    merged.update(entry)
    merged.update(own_profiles.get(profile) or {})
    merged.update(overrides or {})
    for fixed in ("size", "profile"):
        if fixed in (overrides or {}):
            raise ConfigError(f"overrides set {fixed}={overrides[fixed]!r}; choose the {fixed} with --{fixed} instead")
    merged["size"], merged["profile"] = size, profile
    values = {k: _coerce(k, v) for k, v in merged.items()}
    if "backbone" not in values:
        raise ConfigError(f"catalog entry {size!r} has no backbone")
    return TrainConfig(**values)


def config_from_dict(values: Mapping[str, Any], source: str = "--config-json") -> TrainConfig:
    """A resolved config (as `TrainConfig.to_dict()` wrote it) back into a `TrainConfig`, every key checked."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: expected a JSON object of training settings, got {type(values).__name__}")
    missing = [k for k in ("size", "backbone") if k not in values]
    if missing:
        raise ConfigError(f"{source}: a resolved training config needs {', '.join(missing)}; write it with "
                          "rewardops.training.load_config(...).to_json()")
    try:
        return TrainConfig(**{k: _coerce(k, v) for k, v in values.items()})
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def config_from_json(text: str, source: str = "--config-json") -> TrainConfig:
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc}); pass the output of TrainConfig.to_json()") from exc
    return config_from_dict(values, source)


def world_size_from_env() -> int:
    """The world size the launcher variables describe (rewardops.training.distributed.discover)."""
    from rewardops.training.distributed import discover

    return discover().world_size


def validate(config: TrainConfig, world_size: int | None = None, check_paths: bool = True) -> None:
    """Raise ConfigError for anything that would fail later; cheap checks first."""
    world = world_size or world_size_from_env()
    problems: list[str] = []
    if config.schedule not in SCHEDULES:
        problems.append(f"schedule={config.schedule!r}: use one of {SCHEDULES}")
    if config.truncation not in TRUNCATION:
        problems.append(f"truncation={config.truncation!r}: use one of {TRUNCATION}")
    if config.attention not in ATTENTION:
        problems.append(f"attention={config.attention!r}: use one of {ATTENTION}")
    if config.dtype not in ("auto", "fp32", "bf16"):
        problems.append(f"dtype={config.dtype!r}: use auto, fp32 or bf16")
    if config.lr <= 0:
        problems.append(f"lr={config.lr}: the learning rate must be positive")
    if config.global_batch < 1:
        problems.append(f"global_batch={config.global_batch}: must be at least 1")
    elif config.micro_batch_size is not None:
        per_step = config.micro_batch_size * world
        if config.micro_batch_size < 1 or config.global_batch % per_step:
            problems.append(
                f"global_batch={config.global_batch} is not divisible by micro_batch_size "
                f"({config.micro_batch_size}) x world size ({world}) = {per_step}: set global_batch to a "
                f"multiple of {per_step}, or change micro_batch_size"
            )
    elif config.global_batch % world:
        problems.append(
            f"global_batch={config.global_batch} is not divisible by the world size {world}: "
            f"set global_batch to a multiple of {world}"
        )
    if config.micro_batch_tokens < 2 * config.max_length and config.micro_batch_size is None:
        problems.append(
            f"micro_batch_tokens={config.micro_batch_tokens} cannot hold one pair of max_length="
            f"{config.max_length} (needs {2 * config.max_length}): raise micro_batch_tokens or lower max_length"
        )
    if config.zero_stage not in (0, 1, 2, 3):
        problems.append(f"zero_stage={config.zero_stage}: use 0, 1, 2 or 3")
    elif config.zero_stage > 0 and not config.deepspeed:
        problems.append(
            f"ZeRO stage {config.zero_stage} needs DeepSpeed: set deepspeed=true, or zero_stage=0 for plain DDP"
        )
    if config.deepspeed:
        try:
            import deepspeed  # noqa: F401
        except Exception as exc:  # ImportError, or a broken build raising anything at import
            problems.append(f"deepspeed=true but DeepSpeed cannot be imported ({exc}); pip install deepspeed or set deepspeed=false")
    if config.trainable_layers is not None and config.trainable_layers < 0:
        problems.append(f"trainable_layers={config.trainable_layers}: use a count >= 0, or none to train everything")
    if config.max_steps is not None and config.max_steps < 1:
        problems.append(f"max_steps={config.max_steps}: must be at least 1")
    if config.shared_prefix not in (True, False, "auto"):
        problems.append(f"shared_prefix={config.shared_prefix!r}: use auto, true or false")
    if config.resume not in (True, False, "force"):
        problems.append(f"resume={config.resume!r}: use true, false or force")
    if not config.out:
        problems.append("no output folder: pass --out DIR")
    if problems:
        raise ConfigError("invalid training config:\n  - " + "\n  - ".join(problems))
    if check_paths:
        _check_data(config.data, "data")
        if config.eval_data:
            _check_data(config.eval_data, "eval_data")
        _check_backbone(config.backbone)


def _check_data(path: str, name: str) -> None:
    from rewardops.data.shards import shard_paths

    if not path:
        raise ConfigError(f"no {name} folder: pass --data DIR (a folder of part-*.parquet shards)")
    from rewardops.outputs import OutputError

    try:
        shards = shard_paths(path)
    except (FileNotFoundError, OutputError) as exc:  # missing, or not a complete verified dataset folder
        raise ConfigError(f"{name}={path}: {exc}") from exc
    if not shards:
        raise ConfigError(f"{name}={path}: no part-*.parquet shards in this folder; write pairs with rewardops.data.shards")
    import pyarrow.parquet as pq

    for shard in shards:
        try:
            schema = pq.read_schema(shard)
        except Exception as exc:
            raise ConfigError(f"{shard}: unreadable Parquet shard ({exc}); re-write or remove it") from exc
        missing = {"conversation", "chosen", "rejected"} - set(schema.names)
        if missing:
            raise ConfigError(f"{shard}: not a preference-pair shard, missing columns {sorted(missing)}")


def _check_backbone(name: str) -> None:
    from rewardops.backbones import resolve_backbone

    try:
        path = resolve_backbone(name)
        from transformers import AutoConfig

        AutoConfig.from_pretrained(path)
    except Exception as exc:
        raise ConfigError(
            f"backbone {name!r} cannot be loaded ({type(exc).__name__}: {str(exc)[:300]}); "
            "set backbone= to a local Hugging Face folder, make the hub reachable, or pick a demo size"
        ) from exc


def deepspeed_config(config: TrainConfig, world_size: int, accumulation_steps: int = 1) -> dict[str, Any]:
    """The ZeRO config file for the stage, with the run's batch and precision filled in."""
    path = DEEPSPEED_DIR / f"zero{config.zero_stage}.json"
    ds = json.loads(path.read_text())
    # Micro-batches are token budgets of varying pair counts; DeepSpeed only needs a consistent
    # triple, and the loop marks accumulation boundaries itself.
    ds["train_micro_batch_size_per_gpu"] = 1
    ds["gradient_accumulation_steps"] = accumulation_steps
    ds["train_batch_size"] = world_size * accumulation_steps
    ds["gradient_clipping"] = config.grad_clip
    ds.setdefault("bf16", {})["enabled"] = config.dtype == "bf16"
    ds["zero_allow_untested_optimizer"] = True
    return ds
