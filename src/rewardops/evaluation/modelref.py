"""Which model to evaluate: a local Hugging Face folder, a backbone name, or an MLflow URI.

`runs:/<run_id>/<path>` and `models:/<name>/<version>` (or `models:/<name>@<alias>`) are
downloaded with `mlflow.artifacts.download_artifacts`; the run they belong to is where the
evaluation is logged back. The fingerprint names the exact weights, tokenizer and numeric setup,
so cached scores are reused only for the same model read the same way.

The loaded model is the registered model: registration records SHA-256 digests of the MLflow
model's code (every file outside `artifacts/`: MLmodel, the pyfunc code, requirements) and of its
weights (every file under `artifacts/`) as version tags (`model_digests`, `CODE_DIGEST_TAG`,
`WEIGHTS_DIGEST_TAG`). A `models:/` URI is resolved to one version first (an alias cannot move
in between), downloaded, and checked against those tags before anything in it is read or run
(`fetch_verified`); a mismatch is refused (`ModelIntegrityError`). A version registered without
digests (by hand, or before digests were recorded) loads with a warning. Someone who can write
the artifact store but not the version's tags cannot swap the code or weights unnoticed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from rewardops.errors import NotFoundError, RewardOpsError

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


CODE_DIGEST_TAG = "rewardops.digest.code"
WEIGHTS_DIGEST_TAG = "rewardops.digest.weights"
MODEL_ARTIFACTS = "artifacts"  # where MLflow keeps a pyfunc's artifacts (the weights) in its folder
_DOWNLOAD_EXTRAS = frozenset({"registered_model_meta"})  # written by MLflow's models:/ download


class ModelIntegrityError(RewardOpsError, RuntimeError):
    """A registered model whose downloaded code or weights differ from the digests recorded at
    registration."""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_digests(folder: str | Path) -> dict[str, str]:
    """`{"code": sha256, "weights": sha256}` of an MLflow model folder: every file's path and
    full SHA-256, weights = the files under `artifacts/`, code = every other file."""
    root = Path(folder)
    parts = {"code": hashlib.sha256(), "weights": hashlib.sha256()}
    for f in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = f.relative_to(root).as_posix()
        if rel in _DOWNLOAD_EXTRAS:
            continue
        kind = "weights" if rel.startswith(MODEL_ARTIFACTS + "/") else "code"
        content = _sha256_file(f) if not f.is_symlink() else "symlink:" + str(f.readlink())
        parts[kind].update(f"{rel}\0{content}\n".encode("utf-8", "surrogatepass"))
    return {kind: h.hexdigest() for kind, h in parts.items()}


def _registered_version(uri: str) -> tuple[str, str, dict[str, str], str | None] | None:
    """(name, version, tags, run id) of a `models:/` URI, the alias resolved once; None otherwise."""
    m = re.match(r"models:/([^/@]+)(?:/(\w+)|@([\w-]+))/?$", uri)
    if not m:
        return None
    mv = _model_version(*m.groups())
    return m.group(1), str(mv.version), dict(mv.tags or {}), mv.run_id


def _model_version(name: str, version: str | None, alias: str | None):  # noqa: ANN202 - mlflow ModelVersion
    """The registered version `name`/`version`, or the one `alias` points at now."""
    from mlflow import MlflowClient

    client = MlflowClient()
    return client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)


def fetch_verified(uri: str, dst: str | Path | None = None) -> tuple[Path, str | None]:
    """Download `uri` and, for a registered version, check its code and weights against the
    digests recorded at registration; (local folder, run id). `ModelIntegrityError` on a mismatch."""
    import warnings

    import mlflow

    found = _registered_version(uri)
    source = f"models:/{found[0]}/{found[1]}" if found else uri  # this exact version, not where an alias points later
    if dst is not None:
        Path(dst).mkdir(parents=True, exist_ok=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=None if dst is None else str(dst)))
    if found is None:
        return local, _run_id_of(uri)
    name, version, tags, run_id = found
    wanted = {"code": tags.get(CODE_DIGEST_TAG), "weights": tags.get(WEIGHTS_DIGEST_TAG)}
    if not any(wanted.values()):
        warnings.warn(f"{uri} (version {version} of {name!r}) has no recorded digests ({CODE_DIGEST_TAG}, "
                      f"{WEIGHTS_DIGEST_TAG}); it was not registered by RewardOps and is loaded unverified",
                      stacklevel=2)
        return local, run_id
    got = model_digests(local)
    bad = [kind for kind in ("code", "weights") if got[kind] != wanted[kind]]
    if bad:
        raise ModelIntegrityError(
            f"{uri} (version {version} of {name!r}): the downloaded {' and '.join(bad)} differ from the digests "
            f"recorded at registration ({', '.join(f'{k}: {wanted[k]} != {got[k]}' for k in bad)}); refusing to "
            "load it. Someone changed the artifacts after registration: register the model again from its training "
            "output, and check who can write the artifact store")
    return local, run_id


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
    return _model_version(*m.groups()).run_id


def resolve_model(spec: str | Path, download_dir: Path | None = None) -> ModelRef:
    text = str(spec)
    if text.startswith(MLFLOW_PREFIXES):
        local, run_id = fetch_verified(text, download_dir)
        model_dir, tok_dir = _find_hf_folder(local)
        return ModelRef(text, model_dir, tok_dir, run_id)
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


def main(argv: list[str] | None = None) -> int:
    """`python -m rewardops.evaluation.modelref MODEL_URI DEST`: download a registered model into
    DEST and verify its digests (the serving chart's init container runs this before the scoring
    server loads DEST; exit 1 with the reason on a mismatch)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m rewardops.evaluation.modelref MODEL_URI DEST", file=sys.stderr)
        return 2
    try:
        local, _ = fetch_verified(args[0], args[1])
    except ModelIntegrityError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print(f"verified {args[0]} -> {local}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
