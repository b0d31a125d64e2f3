"""The version of a dataset, for content-aware pipeline caching.

KFP's cache key covers parameter values, artifact names, the image and the command, but not the
bytes of the data a step reads from a path or a bucket. Every RewardOps component therefore takes
a `data_version` parameter: when the data changes, the version changes, the cache key changes,
and the step runs again; when it does not, the step is a cache hit.

`data_version(path)` is, in order:
- the DVC hash when the folder is DVC-tracked (`dvc:<md5>` from `<path>.dvc` or `dvc.lock`, the
  same value `rewardops.tracking.lineage` tags MLflow runs with);
- otherwise a content hash of the folder (`sha256:<hex>` over every file's relative path and
  bytes, in sorted order), with per-file digests cached by (size, mtime, inode) so a second call
  on an unchanged folder of large shards reads nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CHUNK = 1 << 20
IGNORED = {".DS_Store", "__pycache__", ".rewardops-digests.json"}


def _cache_file() -> Path:
    root = Path(os.environ.get("REWARDOPS_CACHE", Path.home() / ".cache" / "rewardops"))
    return root / "file-digests.json"


def _load_cache() -> dict[str, list]:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache: dict[str, list]) -> None:
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs the next call a re-read


def _file_digest(path: Path, cache: dict[str, list]) -> str:
    st = path.stat()
    signature = [st.st_size, st.st_mtime_ns, st.st_ino]
    key = str(path.resolve())
    hit = cache.get(key)
    if hit and hit[:3] == signature:
        return hit[3]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    digest = h.hexdigest()
    cache[key] = [*signature, digest]
    return digest


def content_hash(path: str | os.PathLike[str]) -> str:
    """sha256 over (relative path, file digest) of every file under `path` (or of the file)."""
    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or folder to version")
    files = [root] if root.is_file() else sorted(
        p for p in root.rglob("*") if p.is_file() and not any(part in IGNORED for part in p.relative_to(root).parts))
    cache = _load_cache()
    h = hashlib.sha256()
    for file in files:
        rel = file.name if file == root else file.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + _file_digest(file, cache).encode() + b"\n")
    _save_cache(cache)
    return f"sha256:{h.hexdigest()}"


def dvc_version(path: str | os.PathLike[str], repo: str | os.PathLike[str] | None = None) -> str | None:
    """`dvc:<md5>` when `path` is a DVC-tracked output, else None."""
    from rewardops.tracking.lineage import data_dvc_hash

    digest = data_dvc_hash(path, repo)
    return f"dvc:{digest}" if digest else None


def data_version(path: str | os.PathLike[str], repo: str | os.PathLike[str] | None = None) -> str:
    """The DVC hash of `path` when it is tracked, else its content hash."""
    return dvc_version(path, repo) or content_hash(path)
