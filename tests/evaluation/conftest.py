from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from official_records import (
    write_hub_only_benchmarks,  # tests/evaluation is on sys.path (rootdir conftest)
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One thread: the machine is shared; restored afterwards for other areas' tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from rewardops.backbones import resolve_backbone

    return resolve_backbone("tiny-qwen3")


def _slice_json(src: Path, dst: Path, n: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(json.loads(src.read_text(encoding="utf-8"))[:n]), encoding="utf-8")


@pytest.fixture()
def small_data_dir(tmp_path: Path, shared_data: Path) -> Path:
    """A --data-dir with all seven benchmarks, small: slices of the real RM-Bench, JudgeBench and
    RMB files (written to tmp, never into the repo) plus hand-written hub-only ones."""
    data = tmp_path / "data"
    _slice_json(shared_data / "rm-bench" / "chat_filtered.json", data / "rm-bench" / "chat_filtered.json", 2)
    _slice_json(shared_data / "rm-bench" / "safety-refuse_filtered.json", data / "rm-bench" / "safety-refuse_filtered.json", 2)
    jb = (shared_data / "judgebench" / "judgebench_gpt-4o.jsonl").read_text(encoding="utf-8").splitlines()
    picked = [line for line in jb if '"livebench-math"' in line][:2] + [line for line in jb if '"mmlu-pro' in line][:2]
    (data / "judgebench").mkdir(parents=True)
    (data / "judgebench" / "judgebench_gpt-4o.jsonl").write_text("\n".join(picked) + "\n", encoding="utf-8")
    for kind in ("Pairwise_set", "BoN_set"):
        for rel in ("Harmlessness/S1.json", "Helpfulness/Chat/Discussion.json"):
            _slice_json(shared_data / "rmb" / kind / rel, data / "rmb" / kind / rel, 2)
    write_hub_only_benchmarks(data)
    return data
