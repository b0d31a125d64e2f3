"""On-disk reward cache keyed by (model fingerprint, example id).

SQLite, one row per scored response. Each row also stores a digest of the token ids that were
scored, so an example whose text changed under the same id is scored again rather than served a
stale number. Rows are committed per batch: an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path


def token_digest(ids: Sequence[int]) -> str:
    return hashlib.blake2b(b",".join(str(i).encode() for i in ids), digest_size=12).hexdigest()


class ScoreCache:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS scores (fingerprint TEXT NOT NULL, key TEXT NOT NULL, "
            "digest TEXT NOT NULL, score REAL NOT NULL, PRIMARY KEY (fingerprint, key))"
        )
        self._db.commit()

    def get_many(self, fingerprint: str, keys: Sequence[str], digests: Sequence[str]) -> dict[str, float]:
        """The cached scores whose stored digest matches, by key."""
        found: dict[str, float] = {}
        want = dict(zip(keys, digests))
        keys = list(want)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, digest, score FROM scores WHERE fingerprint = ? AND key IN ({marks})",
                [fingerprint, *chunk],
            )
            for key, digest, score in rows:
                if want.get(key) == digest:
                    found[key] = score
        return found

    def put_many(self, fingerprint: str, rows: Iterable[tuple[str, str, float]]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO scores (fingerprint, key, digest, score) VALUES (?, ?, ?, ?)",
            [(fingerprint, k, d, float(s)) for k, d, s in rows],
        )
        self._db.commit()

    def count(self, fingerprint: str | None = None) -> int:
        if fingerprint is None:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM scores WHERE fingerprint = ?", (fingerprint,)).fetchone()[0]

    def close(self) -> None:
        self._db.close()
