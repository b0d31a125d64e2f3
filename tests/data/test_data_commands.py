"""The `generate`, `ingest` and `preprocess` commands, run through the real `rewardops` CLI (which
reports bad input: exit code 2 and one error line)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.data.report import read_report
from rewardops.data.shards import count_pairs

runner = CliRunner()


def test_ingest_then_preprocess_on_fixtures(shared_data: Path, tmp_path: Path) -> None:
    ing, pp = tmp_path / "ing", tmp_path / "pp"
    result = runner.invoke(app, ["ingest", str(shared_data / "ultrafeedback-sample"),
                                 str(shared_data / "llama-factory" / "dpo_en_demo.json"), "--out", str(ing)])
    assert result.exit_code == 0, result.output
    assert "identical_responses" in result.output and "total" in result.output  # the summary tables
    rep = read_report(ing)
    assert rep["rows_in"] == 1500 and count_pairs(ing) == rep["kept"]

    result = runner.invoke(app, ["preprocess", str(ing), "--out", str(pp),
                                 "--decontaminate", str(shared_data / "llmbar"),
                                 "--decontaminate", str(shared_data / "rm-bench" / "chat_filtered.json")])
    assert result.exit_code == 0, result.output
    rep = read_report(pp)
    assert rep["rows_in"] == count_pairs(ing)
    assert rep["duplicates"] == 5 and rep["contaminated"] >= 1
    assert rep["decontamination"]["n"] == 13 and rep["decontamination"]["prompts"] > 400
    assert count_pairs(pp) == rep["kept"]


def test_ingest_strict_exits_nonzero_naming_file_row_reason(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n"
                   + json.dumps({"prompt": "p", "chosen": "same", "rejected": "same"}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "out"), "--strict"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "bad.jsonl" in text and "row 2" in text and "identical_responses" in text


def test_ingest_format_flag(tmp_path: Path) -> None:
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "o1"), "--format", "bogus"])
    assert result.exit_code == 2 and "unknown format" in result.output
    result = runner.invoke(app, ["ingest", str(src), "--out", str(tmp_path / "o2"), "--format", "sharegpt"])
    assert result.exit_code == 0, result.output
    assert read_report(tmp_path / "o2")["quarantined"] == {"missing_content": 1}


def test_generate(tmp_path: Path) -> None:
    """`generate` writes n pairs and a report (the preference world is part of the package)."""
    out = tmp_path / "gen"
    result = runner.invoke(app, ["generate", "--n", "60", "--noise", "0.2", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rep = read_report(out)
    assert rep["rows_in"] == rep["kept"] == count_pairs(out) == 60
    assert (rep["n"], rep["noise"], rep["seed"]) == (60, 0.2, 3)
    # the generated shards go through ingest and preprocess unchanged
    assert runner.invoke(app, ["ingest", str(out), "--out", str(tmp_path / "ing")]).exit_code == 0
    assert read_report(tmp_path / "ing")["kept"] == 60
