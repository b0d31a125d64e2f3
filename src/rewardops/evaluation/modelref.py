"""Which model to evaluate: a local Hugging Face folder, a backbone name, or an MLflow URI.

`runs:/<run_id>/<path>` and `models:/<name>/<version>` (or `models:/<name>@<alias>`) are
downloaded with `mlflow.artifacts.download_artifacts`; the run they belong to is where the
evaluation is logged back. The fingerprint names the exact weights, tokenizer and numeric setup,
so cached scores are reused only for the same model read the same way.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from rewardops.errors import NotFoundError

MLFLOW_PREFIXES = ("runs:/", "models:/", "mlflow-artifacts:/")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)
_FULL_HASH_LIMIT = 256 * 2**20
_EDGE = 8 * 2**20


@dataclass(frozen=True)
class ModelRef:
    spec: str  # what the user passed
    model_dir: Path
    tokenizer_dir: Path
    run_id: str | None = None  # the MLflow run the model came from, if any


def _find_hf_folder(root: Path) -> tuple[Path, Path]:
    configs = sorted(root.rglob("config.json"), key=lambda p: len(p.parts))
    model_dirs = [c.parent for c in configs if any(f.suffix in WEIGHT_SUFFIXES for f in c.parent.iterdir())]
    if not model_dirs:
        raise NotFoundError(f"{root}: no Hugging Face model folder (config.json next to weights) inside")
    model_dir = model_dirs[0]
    if (model_dir / "tokenizer_config.json").exists():
        return model_dir, model_dir
    tok = sorted(root.rglob("tokenizer_config.json"), key=lambda p: len(p.parts))
    if not tok:
        raise NotFoundError(f"{root}: no tokenizer (tokenizer_config.json) inside")
    return model_dir, tok[0].parent


def _run_id_of(uri: str) -> str | None:
    m = re.match(r"runs:/([^/]+)", uri)
    if m:
        return m.group(1)
    m = re.match(r"models:/([^/@]+)(?:/(\w+)|@(\w+))", uri)
    if not m:
        return None
    from mlflow import MlflowClient

    client = MlflowClient()
    name, version, alias = m.groups()
    mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
    return mv.run_id


def resolve_model(spec: str | Path, download_dir: Path | None = None) -> ModelRef:
    text = str(spec)
    if text.startswith(MLFLOW_PREFIXES):
        import mlflow

        dst = None
        if download_dir is not None:
            download_dir.mkdir(parents=True, exist_ok=True)
            dst = str(download_dir)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=text, dst_path=dst))
        model_dir, tok_dir = _find_hf_folder(local)
        return ModelRef(text, model_dir, tok_dir, _run_id_of(text))
    from rewardops.backbones import resolve_backbone

    path = Path(resolve_backbone(text))
    if not path.exists():
        raise NotFoundError(f"model {text!r}: no such folder (offline: hub ids are not downloaded)")
    model_dir, tok_dir = _find_hf_folder(path)
    return ModelRef(text, model_dir, tok_dir, None)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(f"{path.name}:{size}".encode())
    with open(path, "rb") as fh:
        if size <= _FULL_HASH_LIMIT:
            for chunk in iter(lambda: fh.read(2**20), b""):
                h.update(chunk)
        else:  # big checkpoints: both ends and the size (a full hash of 16 GB costs a minute)
            h.update(fh.read(_EDGE))
            fh.seek(size - _EDGE)
            h.update(fh.read(_EDGE))
    return h.hexdigest()


def model_fingerprint(ref: ModelRef, *, dtype: str, max_length: int) -> str:
    h = hashlib.sha256()
    for folder, names in ((ref.model_dir, None), (ref.tokenizer_dir, TOKENIZER_FILES)):
        for f in sorted(folder.iterdir()):
            if not f.is_file():
                continue
            if names is None and not (f.name == "config.json" or f.suffix in WEIGHT_SUFFIXES):
                continue
            if names is not None and f.name not in names:
                continue
            h.update(_file_digest(f).encode())
    h.update(f"dtype={dtype};max_length={max_length};render=v1".encode())
    return h.hexdigest()[:24]
