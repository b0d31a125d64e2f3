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


def test_identical_data_written_again_is_the_identical_dvc_version(tmp_path):
    """The same rows written by another command at another time (a fresh demo-out): the output
    manifests differ in when and how, the DVC md5 and the registry commit do not."""
    import json

    from rewardops.outputs import MANIFEST, atomic_output

    def write(folder, command):
        with atomic_output(folder, kind="dataset", command=command) as tmp:
            write_pairs(pairs(6, "c"), tmp)
        manifest = json.loads((folder / MANIFEST).read_text())
        return manifest

    one, two = tmp_path / "one" / "curated", tmp_path / "two" / "curated"
    first_manifest = write(one, "rewardops run demo --workdir one")
    import time

    time.sleep(1.1)  # the manifests' created_at differ
    second_manifest = write(two, "rewardops run demo --workdir two")
    assert first_manifest["created_at"] != second_manifest["created_at"]
    assert first_manifest["command"] != second_manifest["command"]

    registry, remote = tmp_path / "registry", tmp_path / "remote"
    first = version_datasets(registry, {"curated": one}, remote, "from one")
    second = version_datasets(registry, {"curated": two}, remote, "from two")
    assert second == first  # same md5, no new commit
    kept = json.loads((registry / "curated" / MANIFEST).read_text())
    assert "created_at" not in kept and "command" not in kept and kept["files"] == first_manifest["files"]
