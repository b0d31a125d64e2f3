"""The DVC data registry the demo versions its subsets in (real git + DVC, a local-folder remote)."""

from __future__ import annotations

import subprocess
import sys

from rewardops.data.schema import Message, PreferencePair
from rewardops.data.shards import read_pairs, write_pairs
from rewardops.tracking.data_registry import version_datasets


def pairs(n: int, tag: str) -> list[PreferencePair]:
    return [PreferencePair(f"{tag}{i}", "unit", [Message("user", f"q{i}")], f"good {tag}{i}", f"bad {i}") for i in range(n)]


def test_versions_commits_only_changes_and_old_versions_come_back(tmp_path):
    data, registry, remote = tmp_path / "curated", tmp_path / "registry", tmp_path / "remote"
    write_pairs(pairs(5, "a"), data)
    first = version_datasets(registry, {"curated": data}, remote, "v1")
    again = version_datasets(registry, {"curated": data}, remote, "v1 again")
    assert again == first  # unchanged data: same hash, no new commit

    write_pairs(pairs(7, "b"), data)
    second = version_datasets(registry, {"curated": data}, remote, "v2")
    assert second["curated"] != first["curated"] and second["rev"] != first["rev"]
    assert any(remote.rglob("*")), "dvc push wrote nothing to the remote"

    out = tmp_path / "old"
    subprocess.run([sys.executable, "-m", "dvc", "get", str(registry), "curated", "--rev", first["rev"], "-o", str(out)],
                   check=True, capture_output=True, cwd=tmp_path)
    assert [p.id for p in read_pairs(out)] == [f"a{i}" for i in range(5)]
