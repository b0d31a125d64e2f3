"""Checkpoints: nothing in them can run code, and a run resumes only a checkpoint of its own.

Layout under the location (a local folder or an s3:// URI):

    step-00000010/
        checkpoint.json          the completion record, written last: format, step, fingerprint, files
        model.safetensors        weights (plain runs; DeepSpeed keeps its own files under ds/)
        optimizer.safetensors    optimizer tensors   + optimizer.json (the rest of its state dict)
        scheduler.json           LR scheduler state
        rng-rank<r>.json         python + numpy RNG state of rank r (lists and ints)
        rng-rank<r>.safetensors  torch (and CUDA) generator state of rank r (uint8 tensors)
        state.json, config.json  data position / counts, the resolved config
    latest                       names the newest complete step; written after checkpoint.json

No pickle: every file we write is safetensors or JSON, and the state-dict codec below refuses any
value that is not a tensor, a number, a string, a bool, None, a list, a tuple or a dict.
DeepSpeed writes its own `torch.save` files (ds/); they are read back through DeepSpeed's loader
with its checkpoint engine replaced by a weights-only one (`harden_deepspeed`: torch.load(weights_only=True)
plus an allowlist of DeepSpeed's plain-data classes), so a crafted file is refused, not run.

Atomic: locally every rank writes into `.partial-step-.../`; after a barrier rank 0 fsyncs every
file, writes checkpoint.json (sizes, sha256 of files up to HASH_LIMIT), renames the folder to
`step-...` and only then rewrites `latest` (temp + fsync + rename). On S3 each rank uploads its
staged files, then rank 0 lists them (with their sizes) into checkpoint.json, then `latest`. A folder without a valid
checkpoint.json (killed while saving, truncated, tampered) is never resumed.

Resume (`resume_checkpoint`): the `latest` checkpoint if it is complete, else the newest complete
one, saying what was skipped and why; a checkpoint whose fingerprint (data manifest hash,
backbone and every setting that changes the math) differs from this run's is refused unless
`resume=force`. If the store records progress (a `latest` marker or completed checkpoints) but
nothing usable is left, the run stops instead of silently starting over (`resume=false` starts over).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import struct
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import numpy as np
import torch

from rewardops.outputs import fsync_path, write_bytes_atomic
from rewardops.training.config import ConfigError
from rewardops.errors import RewardOpsError

FORMAT = "rewardops-checkpoint/2"
MANIFEST = "checkpoint.json"
LATEST = "latest"
PARTIAL = ".partial-"
HASH_LIMIT = 64 * 2**20  # files up to this size also get a sha256 in the completion record


class CheckpointError(RewardOpsError, ValueError):
    """A checkpoint that must not be resumed (foreign run, nothing valid left); the message says what to do."""


def step_tag(step: int) -> str:
    return f"step-{step:08d}"


FAILPOINT_ENV = "REWARDOPS_FAILPOINT"


def failpoint(name: str, step: int) -> None:
    """Fault-injection hook: with REWARDOPS_FAILPOINT=<name>@<step> set, this process SIGKILLs
    itself here (tests/faults); a no-op otherwise."""
    if os.environ.get(FAILPOINT_ENV) == f"{name}@{step}":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _say(message: str) -> None:
    print(f"checkpoint: {message}", file=sys.stderr, flush=True)


# --- atomic local files --------------------------------------------------------------------------

def write_json(path: Path, value: Any) -> None:
    write_bytes_atomic(path, (json.dumps(value, indent=1, sort_keys=True, allow_nan=True) + "\n").encode())


def _save_tensors(tensors: Mapping[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save

    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    write_bytes_atomic(path, data)


def _load_tensors(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path), device=str(device))


def safetensors_problem(path: Path) -> str | None:
    """Why `path` is not a whole safetensors file (cheap: the header and the data size), or None."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                return "shorter than a safetensors header"
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100 * 2**20:
                return "not a safetensors file (header length out of range)"
            header = json.loads(f.read(n))
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        if 8 + n + end != size:
            return f"truncated or padded: {size} bytes, the header describes {8 + n + end}"
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        return f"unreadable safetensors ({type(exc).__name__}: {exc})"
    return None


# --- state dicts without pickle ------------------------------------------------------------------

def encode_tree(value: Any, tensors: dict[str, torch.Tensor], where: str = "") -> Any:
    """A state dict as JSON-able data; tensors move into `tensors` under generated keys.

    Refuses (TypeError) anything that is not plain data: a checkpoint we write never needs pickle."""
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value
        return {"__tensor__": key}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [encode_tree(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_tree(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"state dict key {k!r} at {where or '/'}: only str and int keys are stored")
            items.append([k, encode_tree(v, tensors, f"{where}/{k}")])
        return {"__map__": items}
    raise TypeError(f"state dict value at {where or '/'} is a {type(value).__name__}; checkpoints store plain data only")


def decode_tree(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [decode_tree(v, tensors) for v in value]
    if isinstance(value, dict):
        if set(value) == {"__tensor__"}:
            return tensors[value["__tensor__"]]
        if set(value) == {"__tuple__"}:
            return tuple(decode_tree(v, tensors) for v in value["__tuple__"])
        if set(value) == {"__map__"}:
            return {k: decode_tree(v, tensors) for k, v in value["__map__"]}
        raise ValueError(f"unknown node {sorted(value)} in a checkpoint state file")
    return value


def save_state_dict(state: Mapping[str, Any], folder: Path, name: str) -> None:
    """`<name>.json` (+ `<name>.safetensors` when it holds tensors)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = encode_tree(state, tensors, name)
    if tensors:
        _save_tensors(tensors, folder / f"{name}.safetensors")
    write_json(folder / f"{name}.json", tree)


def load_state_dict(folder: Path, name: str, device: torch.device | str = "cpu") -> Any:
    tpath = folder / f"{name}.safetensors"
    tensors = _load_tensors(tpath, device) if tpath.exists() else {}
    return decode_tree(json.loads((folder / f"{name}.json").read_text()), tensors)


# --- RNG state as lists, ints and uint8 tensors ----------------------------------------------------

def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    plain = {
        "python": [version, list(mt), gauss],
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    return plain, tensors


def set_rng_state(plain: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> None:
    version, mt, gauss = plain["python"]
    random.setstate((int(version), tuple(int(x) for x in mt), gauss))
    name, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((str(name), np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(tensors["torch"].to(torch.uint8).cpu())
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.to(torch.uint8).cpu() for t in cuda])


def save_rng(folder: Path, rank: int) -> None:
    plain, tensors = rng_state()
    _save_tensors(tensors, folder / f"rng-rank{rank}.safetensors")
    write_json(folder / f"rng-rank{rank}.json", plain)


def load_rng(folder: Path, rank: int) -> bool:
    jpath, tpath = folder / f"rng-rank{rank}.json", folder / f"rng-rank{rank}.safetensors"
    if not (jpath.exists() and tpath.exists()):
        return False
    set_rng_state(json.loads(jpath.read_text()), _load_tensors(tpath))
    return True


# --- DeepSpeed: its own loader, weights_only --------------------------------------------------------

def deepspeed_safe_globals() -> list[Any]:
    """The plain-data classes DeepSpeed (0.19) puts into its checkpoint files; nothing callable."""
    out: list[Any] = []
    try:
        from deepspeed.runtime.zero.config import ZeroStageEnum

        out.append(ZeroStageEnum)
    except ImportError:
        pass
    try:
        from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler

        out += [LossScaler, DynamicLossScaler]
    except ImportError:
        pass
    try:
        from deepspeed.utils.tensor_fragment import fragment_address

        out.append(fragment_address)
    except ImportError:
        pass
    return out


def weights_only_load(path: str | Path, map_location: Any = None) -> Any:
    """torch.load that unpickles only tensors, containers and DeepSpeed's allowlisted data classes."""
    with torch.serialization.safe_globals(deepspeed_safe_globals()):
        return torch.load(path, map_location=map_location, weights_only=True)


def harden_deepspeed(engine: Any) -> None:
    """Make `engine.load_checkpoint` read every file with weights_only=True (see the module docstring).

    Only DeepSpeed's default TorchCheckpointEngine is supported. Any other checkpoint engine (fast,
    decoupled, datastates writers) and universal-checkpoint loading (whose ZeRO-3 reader calls
    torch.load with weights_only off, itself) are refused: those loaders would unpickle freely."""
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

    if getattr(engine, "load_universal_checkpoint", lambda: False)():
        raise ConfigError("DeepSpeed 'load_universal' checkpoints are read with pickle; remove checkpoint.load_universal "
                          "from the DeepSpeed config")
    current = engine.checkpoint_engine
    if type(current) is TorchCheckpointEngine:
        current.__class__ = weights_only_engine_class()
    elif not getattr(current, "weights_only", False):
        raise ConfigError(
            f"DeepSpeed checkpoint engine {type(current).__name__} loads with pickle; remove the "
            "checkpoint 'writer'/'datastates' settings from the DeepSpeed config"
        )


_WEIGHTS_ONLY_ENGINE: type | None = None


def weights_only_engine_class() -> type:
    """TorchCheckpointEngine whose load is `weights_only_load` (built lazily: deepspeed is optional to import)."""
    global _WEIGHTS_ONLY_ENGINE
    if _WEIGHTS_ONLY_ENGINE is None:
        from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import TorchCheckpointEngine

        class WeightsOnlyCheckpointEngine(TorchCheckpointEngine):
            weights_only = True

            def load(self, path: str, map_location: Any = None) -> Any:
                return weights_only_load(path, map_location)

        _WEIGHTS_ONLY_ENGINE = WeightsOnlyCheckpointEngine
    return _WEIGHTS_ONLY_ENGINE


# --- the run fingerprint ----------------------------------------------------------------------------

# Settings that change what the run computes; resuming with any of them changed is refused.
MATH_SETTINGS = (
    "backbone", "lr", "global_batch", "schedule", "warmup_ratio", "max_length", "truncation", "drop_identical",
    "seed", "deepspeed", "zero_stage", "weight_decay", "adam_beta1", "adam_beta2", "adam_eps", "grad_clip",
    "trainable_layers", "margin_key", "center_rewards_coef",
)


def data_fingerprint(path: str | Path) -> str:
    """sha256 over the data: its output manifest's file list (sizes + sha256) for a dataset folder,
    the bytes of the file for a single Parquet file."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        from rewardops.outputs import verify_output

        manifest = verify_output(p, hashes=False)
        files = sorted((f["path"], f["bytes"], f.get("sha256")) for f in manifest["files"])
        h.update(json.dumps(files).encode())
    else:
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def run_fingerprint(config: Any, *, total_steps: int, world: int, dtype: str, data_hash: str | None = None) -> dict[str, Any]:
    fp: dict[str, Any] = {k: getattr(config, k) for k in MATH_SETTINGS}
    fp["data"] = data_hash if data_hash is not None else data_fingerprint(config.data)
    fp["dtype"] = dtype
    if config.schedule != "constant":  # the decay is laid out over the planned steps
        fp["total_steps"] = total_steps
    if config.deepspeed and config.zero_stage > 0:  # ZeRO partitions are per rank
        fp["world"] = world
    return fp


def fingerprint_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: checkpoint {old.get(k)!r}, this run {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


# --- stores -------------------------------------------------------------------------------------------

class CheckpointStore(Protocol):
    def latest(self) -> str | None: ...
    def write_dir(self, tag: str) -> Path: ...
    def commit(self, tag: str) -> None: ...
    def finalize(self, tag: str, record: dict[str, Any]) -> None: ...
    def mark_latest(self, tag: str) -> None: ...
    def read_record(self, tag: str) -> dict[str, Any] | None: ...
    def fetch(self, tag: str) -> Path: ...
    def tags(self) -> list[str]: ...
    def delete(self, tag: str) -> None: ...
    def clean_partial(self) -> None: ...
    def describe(self, tag: str) -> str: ...


def _file_entries(root: Path, hashes: bool = True) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not (p.parent == root and p.name == MANIFEST):
            entry: dict[str, Any] = {"bytes": p.stat().st_size}
            if hashes and entry["bytes"] <= HASH_LIMIT:
                entry["sha256"] = _sha256(p)
            out[p.relative_to(root).as_posix()] = entry
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class LocalStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def latest(self) -> str | None:
        marker = self.root / LATEST
        if not marker.exists():
            return None
        return marker.read_text().strip() or None

    def write_dir(self, tag: str) -> Path:
        path = self.root / f"{PARTIAL}{tag}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self, tag: str) -> None:
        pass  # every rank wrote straight into the shared partial folder

    def finalize(self, tag: str, record: dict[str, Any]) -> None:
        partial, final = self.root / f"{PARTIAL}{tag}", self.root / tag
        for p in sorted(partial.rglob("*")):
            if p.is_file():
                fsync_path(p)
        record = {**record, "files": _file_entries(partial)}
        write_json(partial / MANIFEST, record)
        for d in sorted({p.parent for p in partial.rglob("*")} | {partial}):
            fsync_path(d, directory=True)
        if final.exists():  # the same step saved again (a resumed run re-saving its last step)
            old = self.root / f"{PARTIAL}old-{tag}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(partial, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(partial, final)
        fsync_path(self.root, directory=True)

    def mark_latest(self, tag: str) -> None:
        write_bytes_atomic(self.root / LATEST, tag.encode())

    def read_record(self, tag: str) -> dict[str, Any] | None:
        try:
            record = json.loads((self.root / tag / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def fetch(self, tag: str) -> Path:
        return self.root / tag

    def tags(self) -> list[str]:
        return sorted(p.name for p in self.root.glob("step-*") if p.is_dir())

    def delete(self, tag: str) -> None:
        shutil.rmtree(self.root / tag, ignore_errors=True)

    def clean_partial(self) -> None:
        for p in self.root.glob(f"{PARTIAL}*"):
            shutil.rmtree(p, ignore_errors=True)

    def describe(self, tag: str) -> str:
        return str(self.root / tag)


class S3Store:
    """Every rank stages its own files locally and uploads them; rank 0 writes the record and `latest`
    (endpoint from AWS_ENDPOINT_URL as boto3 reads it)."""

    def __init__(self, uri: str, staging: str | Path) -> None:
        import boto3

        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"{uri}: not an s3://bucket/prefix URI")
        self.bucket, self.prefix = parsed.netloc, parsed.path.strip("/")
        self.staging = Path(staging)
        self.client = boto3.client("s3")
        self._written: dict[str, Path] = {}

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _get(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:  # botocore ClientError 404 on some S3 implementations
            if "404" in str(exc) or "NoSuchKey" in str(exc):
                return None
            raise

    def latest(self) -> str | None:
        body = self._get(self._key(LATEST))
        return (body.decode(errors="replace").strip() or None) if body is not None else None

    def write_dir(self, tag: str) -> Path:
        # the same step saved again: its old record goes first, so a save killed half-way is never complete
        self.client.delete_object(Bucket=self.bucket, Key=self._key(tag, MANIFEST))
        path = self.staging / tag
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
        self._written[tag] = path
        return path

    def commit(self, tag: str) -> None:
        local = self._written.pop(tag, self.staging / tag)
        for f in sorted(local.rglob("*")):
            if f.is_file():
                self.client.upload_file(str(f), self.bucket, self._key(tag, f.relative_to(local).as_posix()))
        shutil.rmtree(local, ignore_errors=True)

    def _objects(self, tag: str) -> dict[str, int]:
        prefix = self._key(tag) + "/"
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"][len(prefix):]] = int(obj["Size"])
        return out

    def finalize(self, tag: str, record: dict[str, Any]) -> None:
        files = {k: {"bytes": v} for k, v in sorted(self._objects(tag).items()) if k != MANIFEST}
        body = json.dumps({**record, "files": files}, indent=1, sort_keys=True).encode()
        self.client.put_object(Bucket=self.bucket, Key=self._key(tag, MANIFEST), Body=body)

    def mark_latest(self, tag: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(LATEST), Body=tag.encode())

    def read_record(self, tag: str) -> dict[str, Any] | None:
        body = self._get(self._key(tag, MANIFEST))
        try:
            record = json.loads(body) if body is not None else None
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def fetch(self, tag: str) -> Path:
        local = self.staging / f"fetched-{tag}"
        if local.exists():
            shutil.rmtree(local)
        prefix = self._key(tag) + "/"
        found = False
        for key in self._objects(tag):
            found = True
            dest = local / key
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, prefix + key, str(dest))
        if not found:
            raise FileNotFoundError(f"s3://{self.bucket}/{prefix}: checkpoint has no files")
        return local

    def tags(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        out = set()
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key("step-"), Delimiter="/"):
            for cp in page.get("CommonPrefixes", []):
                out.add(cp["Prefix"].rstrip("/").rsplit("/", 1)[-1])
        return sorted(out)

    def delete(self, tag: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(tag) + "/"):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys})

    def clean_partial(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def describe(self, tag: str) -> str:
        return f"s3://{self.bucket}/{self._key(tag)}"


def open_store(location: str, staging: str | Path) -> CheckpointStore:
    if location.startswith("s3://"):
        return S3Store(location, staging)
    return LocalStore(location)


# --- validation -------------------------------------------------------------------------------------

def checkpoint_problems(folder: Path, record: Mapping[str, Any] | None) -> list[str]:
    """Why the fetched checkpoint `folder` must not be resumed (empty list: it is whole)."""
    if record is None:
        legacy = sorted(p.name for p in folder.glob("*.pt")) if folder.is_dir() else []
        if legacy:
            return [f"no {MANIFEST}; it holds pickle files ({', '.join(legacy[:3])}) from an older format, never loaded"]
        return [f"no valid {MANIFEST} (the save did not finish)"]
    if record.get("format") != FORMAT:
        return [f"{MANIFEST} has format {record.get('format')!r}, expected {FORMAT!r}"]
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return [f"{MANIFEST} lists no files"]
    problems = []
    for rel, entry in sorted(files.items()):
        p = folder / rel
        if not p.is_file():
            problems.append(f"{rel} is missing")
            continue
        size = p.stat().st_size
        if size != entry.get("bytes"):
            problems.append(f"{rel} has {size} bytes, the record says {entry.get('bytes')} (truncated or changed)")
            continue
        if entry.get("sha256") and _sha256(p) != entry["sha256"]:
            problems.append(f"{rel} does not match its sha256 (changed or corrupt)")
            continue
        if p.suffix == ".safetensors":
            why = safetensors_problem(p)
            if why:
                problems.append(f"{rel}: {why}")
    for name in ("state.json", "config.json"):
        if name not in files:
            problems.append(f"{name} is missing")
    extra = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                   if p.is_file() and p.name != MANIFEST and p.relative_to(folder).as_posix() not in files)
    if extra:
        problems.append(f"{', '.join(extra[:3])} not in its {MANIFEST} (written after the checkpoint was completed)")
    return problems


# --- save and resume --------------------------------------------------------------------------------

@dataclass
class Parts:
    """What a checkpoint holds, and who this process is."""

    model: torch.nn.Module
    optimizer: Any
    scheduler: Any
    engine: Any = None  # a DeepSpeed engine (then model/optimizer/scheduler live in it)
    rank: int = 0
    is_main: bool = True
    barrier: Callable[[], None] = lambda: None
    device: torch.device | str = "cpu"


def save_checkpoint(store: CheckpointStore, step: int, parts: Parts, *, state: Mapping[str, Any],
                    config: Mapping[str, Any], fingerprint: Mapping[str, Any], keep: int = 2) -> str:
    """Write step `step` on every rank, make it complete, then mark it latest and rotate old ones."""
    tag = step_tag(step)
    path = store.write_dir(tag)
    if parts.engine is not None:
        parts.engine.save_checkpoint(str(path), tag="ds")
    elif parts.is_main:
        from safetensors.torch import save_model

        tmp = path / ".model.safetensors.tmp"
        save_model(parts.model, str(tmp))
        os.replace(tmp, path / "model.safetensors")
        save_state_dict(parts.optimizer.state_dict(), path, "optimizer")
        save_state_dict(parts.scheduler.state_dict(), path, "scheduler")
    save_rng(path, parts.rank)
    if parts.is_main:
        write_json(path / "state.json", dict(state))
        failpoint("save:written", step)
        write_json(path / "config.json", dict(config))
    store.commit(tag)
    parts.barrier()
    if parts.is_main:
        store.finalize(tag, {"format": FORMAT, "step": step, "fingerprint": dict(fingerprint)})
        failpoint("save:finalized", step)
        store.mark_latest(tag)
        failpoint("save:latest", step)
        older = [t for t in store.tags() if t < tag]  # never this one, never a newer one of an earlier run
        for old in older[: max(len(older) - (max(keep, 1) - 1), 0)]:
            store.delete(old)
    parts.barrier()
    return tag


def _candidates(store: CheckpointStore) -> tuple[str | None, list[str]]:
    latest, tags = store.latest(), store.tags()
    order = sorted(tags, reverse=True)
    if latest in order:
        order.remove(latest)
        order.insert(0, latest)
    return latest, order


def resume_checkpoint(store: CheckpointStore, parts: Parts, fingerprint: Mapping[str, Any], *,
                      force: bool = False, say: Callable[[str], None] | None = None) -> tuple[str, dict[str, Any]] | None:
    """Load the newest usable checkpoint into `parts`; (tag, state.json) or None to start at step 1."""
    say = say or (_say if parts.is_main else (lambda m: None))
    latest, order = _candidates(store)
    if latest is not None and latest not in order:
        say(f"'latest' names {latest}, which is not in {store.describe('')}; looking for an older complete checkpoint")
    skipped: list[str] = []
    completed_once = latest is not None
    for tag in order:
        record = store.read_record(tag)
        completed_once |= record is not None
        try:
            folder = store.fetch(tag)
        except FileNotFoundError as exc:
            skipped.append(f"{tag}: {exc}")
            continue
        problems = checkpoint_problems(folder, record)
        if problems:
            skipped.append(f"{store.describe(tag)}: {'; '.join(problems)}")
            say(f"skipping {store.describe(tag)}: {'; '.join(problems)}")
            continue
        assert record is not None
        diff = fingerprint_diff(record.get("fingerprint") or {}, fingerprint)
        if diff:
            if not force:
                raise CheckpointError(
                    f"{store.describe(tag)} belongs to another run; it differs in:\n  - " + "\n  - ".join(diff)
                    + "\nUse the settings and data it was made with, give this run its own --out / checkpoint_dir, "
                    "or --set resume=force to continue from it anyway (resume=false starts over)"
                )
            say(f"resume=force: continuing from {store.describe(tag)} although it differs in: {'; '.join(diff)}; "
                "this run's optimizer settings apply from here on")
        fresh = _hyperparameters(parts)
        state = _load(folder, parts)
        if diff:
            _restore_hyperparameters(parts, fresh)
        if tag != latest:
            say(f"resumed from {store.describe(tag)}, the newest complete checkpoint"
                + (f" ('latest' named {latest})" if latest else ""))
        else:
            say(f"resumed from {store.describe(tag)}")
        return tag, state
    if completed_once:
        raise CheckpointError(
            f"{store.describe('')} records a finished checkpoint, but none is usable:\n  - "
            + "\n  - ".join(skipped or [f"'latest' names {latest}, which does not exist"])
            + "\nRestore the checkpoints, point checkpoint_dir at a good copy, or --set resume=false to start over "
            "(new checkpoints then replace these)"
        )
    if skipped:
        say("no complete checkpoint (only unfinished saves); starting at step 1")
    return None


def trim_metrics(path: Path, step: int) -> int:
    """Drop the lines of a `metrics.jsonl` after `step` (steps a killed run did past its last
    checkpoint, which the resumed run redoes), atomically; returns how many were dropped."""
    if not path.exists():
        return 0
    keep, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row_step = int(json.loads(line).get("step", 0))
        except (ValueError, AttributeError, TypeError):
            row_step = step + 1  # a line torn by the kill
        if row_step <= step:
            keep.append(line)
        else:
            dropped += 1
    if dropped:
        write_bytes_atomic(path, "".join(f"{line}\n" for line in keep).encode())
    return dropped


_HYPER = ("initial_lr", "betas", "eps", "weight_decay")


def _hyperparameters(parts: Parts) -> list[dict[str, Any]]:
    return [{k: g[k] for k in _HYPER if k in g} for g in parts.optimizer.param_groups]


def _restore_hyperparameters(parts: Parts, fresh: list[dict[str, Any]]) -> None:
    """After a forced resume: this run's LR / betas / eps / weight decay, at the restored schedule position."""
    sched = parts.scheduler
    for i, (group, values) in enumerate(zip(parts.optimizer.param_groups, fresh)):
        group.update(values)
        if "initial_lr" in values and sched is not None and hasattr(sched, "base_lrs"):
            sched.base_lrs[i] = values["initial_lr"]
            factor = sched.lr_lambdas[i](sched.last_epoch) if hasattr(sched, "lr_lambdas") else 1.0
            group["lr"] = values["initial_lr"] * factor
    if sched is not None and hasattr(sched, "_last_lr"):
        sched._last_lr = [g["lr"] for g in parts.optimizer.param_groups]


def _load(folder: Path, parts: Parts) -> dict[str, Any]:
    if parts.engine is not None:
        harden_deepspeed(parts.engine)
        load_path, _ = parts.engine.load_checkpoint(str(folder), tag="ds", load_optimizer_states=True,
                                                    load_lr_scheduler_states=True)
        if load_path is None:
            raise CheckpointError(f"{folder}/ds: DeepSpeed found no checkpoint to load")
    else:
        from safetensors.torch import load_model

        missing, unexpected = load_model(parts.model, str(folder / "model.safetensors"), strict=True,
                                         device=str(parts.device))
        parts.optimizer.load_state_dict(load_state_dict(folder, "optimizer", parts.device))
        parts.scheduler.load_state_dict(load_state_dict(folder, "scheduler"))
    if not load_rng(folder, parts.rank):
        _say(f"{folder}: no RNG state for rank {parts.rank} (world size changed?); keeping the seeded RNG")
    return json.loads((folder / "state.json").read_text())
