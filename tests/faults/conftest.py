"""Fixtures of the fault-injection suite: small real datasets (Parquet shards with manifests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultdata import arithmetic_pairs  # tests/faults is on sys.path (no package)

from rewardops.data.shards import write_pairs


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fault-pairs") / "pairs"
    write_pairs(arithmetic_pairs(48, seed=1), path, shard_size=20)
    return path
