"""Atomic outputs: one writer per output folder, a manifest every consumer verifies.

A command that writes an output folder does it inside `atomic_output(final, inputs=...)`:

    with atomic_output(out, inputs=[src], kind="dataset") as tmp:
        ...write files under tmp...
    # here `out` is complete: it holds _manifest.json (every file, its bytes and sha256)

- Before anything is touched, an output that is, contains or sits inside one of `inputs` is refused.
- One writer per output: an advisory lock (`fcntl.flock`, non-blocking) on the sibling file
  `.<name>.lock`; a second writer fails at once with a message naming the first writer's pid.
- Everything is written into a temporary sibling folder `.<name>.tmp-<random>`; on success the
  manifest is written last, everything is fsynced and the folder is swapped into place in one
  `renameat2(RENAME_EXCHANGE)` (two renames where the kernel lacks it); the old folder is removed
  only after the swap. On an exception (or a kill) `final` is left exactly as it was.
- `verify_output(path)` is what consumers call before reading: a missing or invalid manifest, a
  missing, extra, truncated or changed file raises `IncompleteOutputError`, saying what happened and
  the command that repairs it (re-running the producing command).

Only standard-library code; no pickle; JSON only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shlex
import shutil
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from rewardops.errors import RewardOpsError

MANIFEST = "_manifest.json"
MANIFEST_FORMAT = "rewardops-output/1"
# what differs between two writes of identical content: left out of a versioned copy's manifest
# (`reproducible_manifests`), so identical data gets the identical DVC md5
MANIFEST_VOLATILE = ("created_at", "command")
_HASH_CHUNK = 1 << 20
# Files a pre-manifest version of our own writers left in a dataset folder; such a folder may be
# replaced. Any other non-empty folder without a manifest is refused (it is not ours to delete).
_LEGACY_NAMES = ("report.json", "quarantine.jsonl", "dropped.jsonl", MANIFEST)
_LEGACY_PREFIX, _LEGACY_SUFFIX = "part-", ".parquet"


class OutputError(RewardOpsError):
    """An output cannot be written (it overlaps an input, another writer holds it, ...)."""


class OutputLockedError(OutputError):
    """Another process is writing the same output."""


class IncompleteOutputError(OutputError):
    """An output folder is not a complete, verified output (no/invalid manifest, files differ)."""


# Staging folders of the atomic_output blocks open in this process: writers that are handed one
# (or a folder inside one) write straight into it; anywhere else they open their own atomic_output.
_STAGING: set[Path] = set()


def is_staging(path: str | Path) -> bool:
    """True when `path` is the temporary folder of an open `atomic_output` of this process: a writer
    handed it writes straight into it (the enclosing block seals it). A folder *inside* one is an
    output of its own (a nested `atomic_output` gives it its own manifest)."""
    return Path(os.path.abspath(path)) in _STAGING


def default_command() -> str:
    """The command line of this process, as a user would retype it."""
    argv = list(sys.argv) or ["?"]
    if Path(argv[0]).name in ("rewardops", "__main__.py"):
        argv[0] = "rewardops"
    return shlex.join(argv)


def _overlap(final: Path, inputs: Iterable[str | Path]) -> str | None:
    for raw in inputs:
        inp = Path(raw).expanduser().resolve()
        if inp == final:
            return f"the output {final} is the input {raw}"
        if inp in final.parents:
            return f"the output {final} sits inside the input {raw}"
        if final in inp.parents:
            return f"the output {final} contains the input {raw}"
    return None


def fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    """Every regular file under root (recursively, sorted), the top-level manifest excluded."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.parent == root and name == MANIFEST:
                continue
            out.append(p)
    return out


def _parquet_rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    except Exception:  # noqa: BLE001 - not a readable Parquet file: no row count, the hash still covers it
        return None


def build_manifest(root: str | Path, kind: str, command: str | None = None, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    root = Path(root)
    files = []
    for p in _files(root):
        entry: dict[str, Any] = {"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": _sha256(p)}
        if p.suffix == ".parquet":
            rows = _parquet_rows(p)
            if rows is not None:
                entry["rows"] = rows
        files.append(entry)
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "kind": kind,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else default_command(),
        "files": files,
        "bytes": sum(f["bytes"] for f in files),
    }
    rows = [f["rows"] for f in files if "rows" in f]
    if rows:
        manifest["rows"] = sum(rows)
    if meta:
        manifest["meta"] = meta
    return manifest


def write_json_atomic(path: str | Path, value: Any) -> Path:
    """Write `value` as JSON to `path`: a temporary sibling, fsync, rename, fsync of the folder."""
    # a lone surrogate (an undecodable file name, say) becomes the JSON escape "\udc80"
    data = (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8", errors="backslashreplace")
    return write_bytes_atomic(path, data)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `path`: a temporary sibling, fsync, rename, fsync of the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent, directory=True)
    return path


# --- the lock -------------------------------------------------------------------------------------

def lock_path(final: str | Path) -> Path:
    final = Path(final)
    return final.parent / f".{final.name}.lock"


def _read_lock_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


@contextmanager
def output_lock(final: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold the advisory lock of `final` (non-blocking). The lock file records pid and command, and is
    removed on release; one left behind by a killed writer is taken over (flock died with it)."""
    path = lock_path(final)
    for _ in range(20):  # bounded: each retry means the lock file was replaced under us
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputError(f"{final}: cannot write next to it ({e.strerror}: {path}); choose an output folder "
                              "you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            info = _read_lock_info(path)
            who = f"pid {info.get('pid', '?')}"
            if info.get("command"):
                who += f", `{info['command']}`"
            if info.get("started_at"):
                who += f", since {info['started_at']}"
            raise OutputLockedError(
                f"{final}: another writer is producing this output ({who}); wait for it to finish "
                "or choose another output folder"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder we raced with removed the file: lock the new one
            os.close(fd)
            continue
        break
    else:  # pragma: no cover - needs 20 lost races in a row
        raise OutputLockedError(f"{final}: could not take the lock {path}")
    try:
        info = {"pid": os.getpid(), "command": command if command is not None else default_command(),
                "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        yield path
    finally:
        path.unlink(missing_ok=True)  # still holding the lock: nobody else can have replaced it
        os.close(fd)  # releases the flock (a killed writer's file stays, naming it, until the next writer)


# --- swapping a folder into place -----------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _renameat2():  # noqa: ANN202
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2() if sys.platform.startswith("linux") else None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two existing paths; False when the kernel/filesystem cannot."""
    if _RENAMEAT2 is None:
        return False
    rc = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE): {os.strerror(err)}")


def _is_replaceable(final: Path) -> bool:
    if not final.exists():
        return True
    if not final.is_dir():
        return False
    entries = list(final.iterdir())
    if not entries or (final / MANIFEST).is_file():
        return True
    return all(
        e.is_file() and (e.name in _LEGACY_NAMES or (e.name.startswith(_LEGACY_PREFIX) and e.name.endswith(_LEGACY_SUFFIX)))
        for e in entries
    )


def _clean_stale(final: Path) -> None:
    """Temporary siblings a killed writer left behind (we hold the lock: no live writer owns them)."""
    for pattern in (f".{final.name}.tmp-*", f".{final.name}.old-*"):
        for p in final.parent.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)


@contextmanager
def atomic_output(
    final: str | Path,
    *,
    inputs: Iterable[str | Path] = (),
    kind: str = "dataset",
    command: str | None = None,
    meta: dict[str, Any] | None = None,
    replace_unmanaged: bool = False,
) -> Iterator[Path]:
    """Write the output folder `final` atomically; yields the temporary folder to write into.

    `inputs`: paths this run reads (an output that is, contains or sits inside one is refused before
    anything is touched). `command`: how to repair the output (default: this process's command line).
    `replace_unmanaged`: allow replacing a non-empty folder that has no manifest (default: refused,
    unless it only holds files our own writers wrote before manifests existed).
    """
    final = Path(final).expanduser()
    final = final.parent.resolve() / final.name if final.name else final.resolve()
    if (why := _overlap(final, inputs)) is not None:
        raise OutputError(f"{why}: refusing to write it (nothing was changed); choose an output folder outside the inputs")
    if final.exists() and not final.is_dir():
        raise OutputError(f"{final} exists and is not a folder; choose another output path")
    if not replace_unmanaged and not _is_replaceable(final):
        raise OutputError(
            f"{final} is a non-empty folder that was not written by rewardops (no {MANIFEST}); "
            "refusing to replace it: choose a new or empty output folder"
        )
    command = command if command is not None else default_command()
    with output_lock(final, command):
        _clean_stale(final)
        tmp = final.parent / f".{final.name}.tmp-{secrets.token_hex(6)}"
        try:
            tmp.mkdir()
        except OSError as e:
            raise OutputError(f"{final}: cannot create its temporary folder {tmp} ({e.strerror})") from None
        _STAGING.add(tmp)
        try:
            yield tmp
            manifest = build_manifest(tmp, kind, command, meta)
            for p in _files(tmp):
                fsync_path(p)
            mpath = tmp / MANIFEST
            with open(mpath, "w", encoding="utf-8") as f:
                f.write(json.dumps(manifest, indent=1) + "\n")
                f.flush()
                os.fsync(f.fileno())
            for dirpath, _, _ in os.walk(tmp):
                fsync_path(Path(dirpath), directory=True)
            _swap_into_place(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            _STAGING.discard(tmp)
    _forget(final)


def _swap_into_place(tmp: Path, final: Path) -> None:
    if final.is_symlink():
        final.unlink()
    if final.exists():
        if _exchange(tmp, final):
            old = tmp  # after the exchange, tmp's name holds the old folder
        else:
            old = final.parent / f".{final.name}.old-{secrets.token_hex(6)}"
            os.rename(final, old)
            os.rename(tmp, final)
        fsync_path(final.parent, directory=True)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, final)
        fsync_path(final.parent, directory=True)


def seal_output(path: str | Path, *, kind: str = "dataset", command: str | None = None,
                meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the manifest of a folder whose files were put in place by other means (for example
    by per-shard workers that each moved their file in): call it once, after the last file landed,
    while no one else writes there. Until then readers refuse the folder."""
    path = Path(path)
    if not path.is_dir():
        raise OutputError(f"{path}: no such folder to seal")
    manifest = build_manifest(path, kind, command, meta)
    write_json_atomic(path / MANIFEST, manifest)
    _forget(path)
    return manifest


# --- verification ---------------------------------------------------------------------------------

# Verified folders of this process, keyed by what the check saw (sizes and mtimes of every file):
# a folder read many times is hashed once, and any change on disk invalidates the entry.
_VERIFIED: dict[Path, tuple[Any, bool, dict[str, Any]]] = {}


def _forget(path: Path) -> None:
    _VERIFIED.pop(Path(os.path.abspath(path)), None)


def _repair_hint(path: Path, manifest: dict[str, Any] | None) -> str:
    cmd = (manifest or {}).get("command")
    if not cmd:
        cmd = _read_lock_info(lock_path(path)).get("command")
    if cmd:
        return f"repair it by re-running the command that produces it: `{cmd}`"
    return "repair it by re-running the command that produced it (it rewrites the folder atomically)"


def verify_output(path: str | Path, kind: str | None = None, *, hashes: bool = True) -> dict[str, Any]:
    """The manifest of the complete output folder `path`; `IncompleteOutputError` otherwise.

    Checks: the manifest exists and is valid, its kind matches `kind` (when given), every listed
    file exists with its recorded size (and sha256 unless `hashes=False`), and no other file is there.
    """
    path = Path(path)
    if not path.is_dir():
        raise IncompleteOutputError(f"{path}: no such output folder; {_repair_hint(path, None)}")
    mpath = path / MANIFEST
    key = Path(os.path.abspath(path))
    try:
        stats = tuple((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in [mpath, *_files(path)])
    except FileNotFoundError:
        stats = None
    cached = _VERIFIED.get(key)
    if stats is not None and cached is not None and cached[0] == stats and (cached[1] or not hashes):
        manifest = cached[2]
        if kind is None or manifest.get("kind") == kind:
            return manifest
    if not mpath.is_file():
        lock = lock_path(path)
        writer = ""
        if lock.exists():
            info = _read_lock_info(lock)
            if info.get("pid"):
                writer = f" (a writer, pid {info['pid']}, started it{' at ' + info['started_at'] if info.get('started_at') else ''} and did not finish)"
        raise IncompleteOutputError(
            f"{path}: not a complete output, it has no {MANIFEST}{writer}; it may be half-written or "
            f"written by something else, so it is not read; {_repair_hint(path, None)}"
        )
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("files"), list):
            raise ValueError("not a rewardops output manifest")
        listed = {}
        for f in manifest["files"]:
            if not isinstance(f, dict) or not isinstance(f.get("path"), str) or not isinstance(f.get("bytes"), int):
                raise ValueError(f"bad file entry {f!r}")
            listed[f["path"]] = f
    except (OSError, ValueError) as e:
        raise IncompleteOutputError(f"{mpath}: invalid manifest ({e}); {_repair_hint(path, None)}") from None
    hint = _repair_hint(path, manifest)
    if kind is not None and manifest.get("kind") != kind:
        raise IncompleteOutputError(
            f"{path}: holds a {manifest.get('kind')!r} output, not a {kind!r} one; pass a {kind} folder"
        )
    present = {p.relative_to(path).as_posix(): p for p in _files(path)}
    missing = sorted(set(listed) - set(present))
    extra = sorted(set(present) - set(listed))
    if missing:
        raise IncompleteOutputError(f"{path}: {len(missing)} file(s) of its manifest are missing ({', '.join(missing[:5])}); {hint}")
    if extra:
        raise IncompleteOutputError(
            f"{path}: {len(extra)} file(s) not in its manifest ({', '.join(extra[:5])}): something else wrote "
            f"into this output after it was completed; {hint}"
        )
    for rel, entry in listed.items():
        p = present[rel]
        size = p.stat().st_size
        if size != entry["bytes"]:
            raise IncompleteOutputError(
                f"{p}: {size} bytes on disk, {entry['bytes']} in the manifest (truncated or changed); {hint}"
            )
        if hashes and entry.get("sha256") != _sha256(p):
            raise IncompleteOutputError(f"{p}: content differs from its manifest's sha256 (changed or corrupt); {hint}")
    if stats is not None:
        _VERIFIED[key] = (stats, hashes, manifest)
    return manifest


def is_complete(path: str | Path, kind: str | None = None) -> bool:
    try:
        verify_output(path, kind)
    except IncompleteOutputError:
        return False
    return True


__all__ = [
    "MANIFEST",
    "IncompleteOutputError",
    "OutputError",
    "OutputLockedError",
    "atomic_output",
    "build_manifest",
    "is_staging",
    "is_complete",
    "lock_path",
    "output_lock",
    "seal_output",
    "verify_output",
    "write_json_atomic",
]


def reproducible_manifests(root: str | Path) -> int:
    """Drop the `MANIFEST_VOLATILE` fields (when it was written, by which command) from every
    manifest under `root`, a copy about to be content-hashed (DVC): the files and their hashes
    stay. Returns how many manifests were rewritten."""
    count = 0
    for path in sorted(Path(root).rglob(MANIFEST)):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and any(k in manifest for k in MANIFEST_VOLATILE):
            for key in MANIFEST_VOLATILE:
                manifest.pop(key, None)
            path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
            count += 1
    return count
