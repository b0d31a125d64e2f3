"""Decontamination follows evaluation: `rewardops preprocess --decontaminate-benchmarks NAME,...
--data-dir DIR` reads benchmark prompts through the evaluation loaders and counts hits per benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.data.preprocess import preprocess
from rewardops.data.report import read_report
from rewardops.data.schema import Message, PreferencePair
from rewardops.data.shards import count_pairs, read_pairs, write_pairs
from rewardops.evaluation.items import MissingBenchmarkData
from rewardops.evaluation.prompts import benchmark_prompts

runner = CliRunner()

RB_PROMPT = ("Explain in detail why the quick brown fox jumps over the lazy dog every single morning "
             "before the farmer wakes up and feeds the chickens")


def _pair(i: int, prompt: str) -> PreferencePair:
    return PreferencePair(id=f"t{i}", conversation=[Message("user", prompt)], chosen=f"A fine answer number {i}.",
                          rejected=f"A worse answer {i}.", source="train")


@pytest.fixture()
def data_dir(tmp_path: Path, shared_data: Path) -> Path:
    d = tmp_path / "bench"
    (d / "reward-bench").mkdir(parents=True)
    rows = [{"prompt": RB_PROMPT, "chosen": "c", "rejected": "r", "subset": "alpacaeval-easy", "id": 1},
            {"prompt": "short one", "chosen": "c", "rejected": "r", "subset": "alpacaeval-easy", "id": 2}]
    (d / "reward-bench" / "filtered.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (d / "rm-bench").symlink_to(shared_data / "rm-bench")
    (d / "judgebench").symlink_to(shared_data / "judgebench")
    return d


def _train(tmp_path: Path, shared_data: Path) -> tuple[Path, list[str]]:
    rm = json.loads((shared_data / "rm-bench" / "chat_filtered.json").read_text(encoding="utf-8"))
    long_rm = [r["prompt"] for r in rm if len(r["prompt"].split()) >= 20][:2]
    prompts = [RB_PROMPT, *long_rm] + [f"An unrelated training question about topic {i} and nothing else" for i in range(5)]
    src = tmp_path / "train"
    write_pairs([_pair(i, p) for i, p in enumerate(prompts)], src)
    return src, long_rm


def test_cli_decontaminates_against_benchmarks_read_by_the_eval_loaders(tmp_path: Path, shared_data: Path, data_dir: Path):
    src, _ = _train(tmp_path, shared_data)
    out = tmp_path / "pp"
    result = runner.invoke(app, ["preprocess", str(src), "--out", str(out),
                                 "--decontaminate-benchmarks", "rewardbench,rm-bench,judgebench", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    rep = read_report(out)
    assert rep["contaminated_by_benchmark"] == {"judgebench": 0, "rewardbench": 1, "rm-bench": 2}
    assert rep["contaminated"] == 3 and rep["kept"] == 5 == count_pairs(out)
    assert rep["rows_in"] == rep["kept"] + rep["duplicates"] + rep["contaminated"] + sum(rep["quarantined"].values())
    per = rep["decontamination"]["prompts_per_benchmark"]
    assert per["rewardbench"] == 2 and per["rm-bench"] > 100 and per["judgebench"] > 100
    assert "contaminated pairs, by benchmark" in result.output
    dropped = [json.loads(line) for line in (out / "dropped.jsonl").read_text().splitlines()]
    assert sorted(b for d in dropped for b in d["benchmarks"]) == ["rewardbench", "rm-bench", "rm-bench"]
    assert {p.id for p in read_pairs(out)} == {f"t{i}" for i in range(3, 8)}


def test_a_benchmark_without_data_is_a_clear_cli_error(tmp_path: Path, shared_data: Path, data_dir: Path):
    src, _ = _train(tmp_path, shared_data)
    result = runner.invoke(app, ["preprocess", str(src), "--out", str(tmp_path / "pp"),
                                 "--decontaminate-benchmarks", "rewardbench,ppe-preference", "--data-dir", str(data_dir)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "ppe-preference" in text and "no benchmark files at" in text and "Traceback" not in result.output
    assert not (tmp_path / "pp").exists()
    result = runner.invoke(app, ["preprocess", str(src), "--out", str(tmp_path / "pp"), "--decontaminate-benchmarks", "nope"])
    assert result.exit_code == 2 and "unknown benchmark 'nope'" in " ".join(result.output.split())


def test_sources_override_the_data_dir_and_missing_ones_are_skipped_when_not_strict(tmp_path: Path, shared_data: Path, data_dir: Path):
    found = benchmark_prompts("rewardbench,rm-bench,ppe-correctness", sources={"rewardbench": str(data_dir / "reward-bench" / "filtered.jsonl"),
                                                                               "rm-bench": str(shared_data / "rm-bench")}, strict=False)
    assert found.prompts["rewardbench"] == [RB_PROMPT, "short one"]
    assert set(found.missing) == {"ppe-correctness"}
    with pytest.raises(MissingBenchmarkData, match="ppe-correctness"):
        benchmark_prompts("ppe-correctness", data_dir=data_dir)
    # the same prompts reach the library as a mapping; a prompt shared by two benchmarks counts for both
    src, long_rm = _train(tmp_path, shared_data)
    rep = preprocess(src, tmp_path / "pp", prompts={"a": [RB_PROMPT], "b": [RB_PROMPT, long_rm[0]]})
    assert rep.info["contaminated_by_benchmark"] == {"a": 1, "b": 2}
    assert rep.totals().contaminated == 2


def test_world_prompts_follow_the_evaluations_world_n(tmp_path: Path):
    found = benchmark_prompts("world", world_n=40)
    assert 0 < len(found.prompts["world"]) <= 40 and not found.missing


def test_data_layer_imports_no_higher_layer_and_texthash_no_circle():
    code = (
        "import sys, pkgutil, importlib, rewardops.data as d\n"
        "import rewardops.data.texthash\n"
        "assert 'rewardops.data.dedup' not in sys.modules and 'rewardops.data.decontaminate' not in sys.modules, sorted(sys.modules)\n"
        "import rewardops.data.dedup\n"
        "assert 'rewardops.data.decontaminate' not in sys.modules\n"
        "for m in pkgutil.walk_packages(d.__path__, 'rewardops.data.'):\n"
        "    if m.name != 'rewardops.data.commands':\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.startswith(('rewardops.evaluation', 'rewardops.curation', 'rewardops.training',\n"
        "       'rewardops.tracking', 'rewardops.k8s', 'rewardops.pipelines'))]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
