"""Data is shown as data: model names, file names, error texts and tags planted with HTML and
Markdown markup come out escaped in the Markdown and HTML reports and in the model card."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rewardops.evaluation.report import embedded_reports, markdown_table, md_escape, summarize
from rewardops.tracking.rewardmodel import model_card

PLANTS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(2)>",
    "[click me](http://evil.example/steal)",
    "![pixel](http://evil.example/p.png)",
    "`code` | cell | break",
    "line\n# forged heading",
)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")  # literal text in Markdown


def _no_markup(text: str) -> None:
    """No planted markup outside code spans: no HTML tag, link, image or heading of the data's."""
    outside = CODE_SPAN.sub("", text)
    assert "<script" not in outside and "<img" not in outside, outside
    assert not re.search(r"(?<!\\)\]\(http", outside), outside
    assert not re.search(r"^# forged", outside, re.M), outside


def _summary(tmp_path: Path) -> dict:
    return summarize(" ".join(PLANTS), "f" * 8,
                     {"rmb": {"overall": 0.5}}, {p: p for p in PLANTS}, {})


def test_markdown_and_html_reports_escape_data(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    md = markdown_table(summary)
    _no_markup(md)
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    cells = [len(re.findall(r"(?<!\\)\|", line)) for line in table_lines]
    assert len(table_lines) == 3 and cells[0] == cells[1] == cells[2]  # a planted "|" adds no column
    assert "&lt;script&gt;" in md and "\\[click me\\](http://evil.example/steal)" in md

    (tmp_path / "plots").mkdir()
    md2, page = embedded_reports(tmp_path, summary, title=PLANTS[1])
    _no_markup(md2)
    assert "<script" not in page and "<img src=x" not in page  # Markdown syntax is inert in HTML
    assert "&lt;img src=x onerror=alert(2)&gt;" in page and "&lt;script&gt;" in page


def test_model_card_escapes_tags_and_recorded_settings(tmp_path: Path) -> None:
    (tmp_path / "rewardops_training.json").write_text(json.dumps({
        "config": {"backbone": PLANTS[1], "size": PLANTS[5], "lr": PLANTS[2]}, "state": {"step": PLANTS[0]}}))
    tags = {"rewardops.data.registry": "https://user:TOKEN-123@git.example/r.git",
            "rewardops.data.path": PLANTS[3], "rewardops.data.rev": PLANTS[4], "rewardops.data.md5": PLANTS[0]}
    card = model_card(tmp_path, tags, {"rmb": 50.0}, name=PLANTS[5])
    _no_markup(card)
    assert "TOKEN-123" not in card and "git.example/r.git" in card
    assert card.splitlines()[0].startswith("# ") and sum(line.startswith("# ") for line in card.splitlines()) == 1
    assert "- lr: `[click me](http://evil.example/steal)`" in card
    assert "- backbone: `<img src=x onerror=alert(2)>`" in card  # a code span: shown literally
    assert "- size: `line # forged heading`" in card
