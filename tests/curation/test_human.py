from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from rewardops.curation.human import (
    CHOICE_A, CHOICE_B, CHOICE_UNDECIDABLE, TASK_FIELDS, LabelStudioFormatError, SimulatedAnnotator, TerminalAnnotator,
    blind_task, export_label_studio, import_label_studio, label_config, label_studio_annotation, render_text,
)
from rewardops.data.schema import Message

from .conftest import toy_pairs


def test_label_studio_round_trip(tmp_path):
    pairs = toy_pairs(5)
    tasks_path, config_path = export_label_studio(pairs, tmp_path / "ls")
    root = ET.fromstring(config_path.read_text())  # valid XML
    names = {el.get("name") for el in root.iter() if el.get("name")}
    assert {"guideline", "conversation", "response_a", "response_b", "preference", "note"} <= names
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 5 and "USER" in tasks[0]["data"]["conversation"].upper()
    mapping = [blind_task(p, 0).a_is_listed_chosen for p in pairs]
    assert set(mapping) == {True, False}

    # Simulate Label Studio's export: annotators pick the truly better response for tasks 0-1,
    # the worse one for task 2, cannot decide on 3, and 4 is still unannotated.
    for n, t in enumerate(tasks):
        better = CHOICE_A if mapping[n] else CHOICE_B
        worse = CHOICE_B if better == CHOICE_A else CHOICE_A
        t["id"] = n + 1
        t["annotations"] = {0: [label_studio_annotation(better, 1), label_studio_annotation(worse, 2, cancelled=True)],
                            1: [label_studio_annotation(better, 1), label_studio_annotation(better, 2)],
                            2: [label_studio_annotation(worse, 3)],
                            3: [label_studio_annotation(CHOICE_UNDECIDABLE, 1)],
                            4: []}[n]
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    res = import_label_studio(export, pairs)
    assert [p.id for p in res.gold] == [pairs[0].id, pairs[1].id, pairs[2].id]
    assert all(p.label_source == "human" for p in res.gold)
    assert res.gold[0].chosen == pairs[0].chosen and res.gold[2].chosen == pairs[2].rejected  # relabelled
    assert "relabelled" in res.gold[2].lineage[-1] and "label-studio(1,2)" in res.gold[1].lineage[-1]
    assert [p.id for p in res.undecidable] == [pairs[3].id] and [p.id for p in res.pending] == [pairs[4].id]
    assert res.counts["cancelled_annotations"] == 1


def test_label_studio_import_errors_name_the_file_and_task(tmp_path):
    pairs = toy_pairs(2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"data": {"text": "someone else's task"}}]))
    with pytest.raises(LabelStudioFormatError, match=r"bad.json: task #0: no data.item"):
        import_label_studio(bad, pairs)
    tasks_path, _ = export_label_studio(pairs, tmp_path / "ls")
    tasks = json.loads(tasks_path.read_text())
    tasks[1]["annotations"] = [{"result": [{"from_name": "preference", "type": "choices", "value": {"choices": ["C"]}}]}]
    bad.write_text(json.dumps(tasks))
    with pytest.raises(LabelStudioFormatError, match=r"task #1 annotation #0: unexpected preference choices"):
        import_label_studio(bad, pairs)
    tasks[1]["annotations"] = []
    tasks[0]["data"]["response_a"] = "an edited response"  # edited after the export: its answers are not about the pair
    bad.write_text(json.dumps(tasks))
    with pytest.raises(LabelStudioFormatError, match=r"task #0 \(pair p00000\): the task's content differs"):
        import_label_studio(bad, pairs)
    bad.write_text("{not json")
    with pytest.raises(LabelStudioFormatError, match="not JSON"):
        import_label_studio(bad, pairs)


def test_simulated_annotator_error_and_undecidable_rates():
    pairs = toy_pairs(2000, noise=0.3)
    ann = SimulatedAnnotator(error_rate=0.1, undecidable_rate=0.05, seed=1)
    assert "simulated" in ann.name
    answers = ann.verify(pairs)
    decided = [(a, p.truth_chosen_better) for a, p in zip(answers, pairs) if a is not None]
    assert 0.03 < 1 - len(decided) / len(pairs) < 0.07
    err = sum(a != t for a, t in decided) / len(decided)
    assert 0.07 < err < 0.13
    assert ann.verify(pairs) == answers  # reproducible


def test_terminal_review_with_scripted_keys():
    from io import StringIO

    from rich.console import Console

    pairs = toy_pairs(3)
    keys = iter(["x", "a", "u", "q"])
    ann = TerminalAnnotator(console=Console(file=StringIO()), ask=lambda _: next(keys))
    answers = ann.verify(pairs)
    assert len(answers) == 2 and answers[1] is None and ann.stopped_at == 2
    assert answers[0] == blind_task(pairs[0], 0).a_is_listed_chosen


MARKUP = ["arr[i] + arr[j]", "[/bold] closes nothing", "[conceal]hidden?[/conceal]", "[link=http://x]y[/link]"]


def test_terminal_review_shows_data_as_data():
    """Rich markup in any text of a pair is shown as written: no lost `[i]`, no MarkupError, no
    concealed text (the reviewer passes data to Rich as Text objects)."""
    from io import StringIO

    from rich.console import Console

    pair = toy_pairs(1)[0]
    pair.conversation = [Message("user", "Why is `" + MARKUP[0] + "` wrong?\n" + MARKUP[3])]
    pair.chosen = "def f(arr, i, j):\n    return " + MARKUP[0] + "  # " + MARKUP[1]
    pair.rejected = MARKUP[2]
    pair.annotation_guideline = MARKUP[1] + " " + MARKUP[2]
    pair.task_category = "[bold red]code"
    out = StringIO()
    ann = TerminalAnnotator(console=Console(file=out, width=200, color_system=None), ask=lambda _: "a")
    assert len(ann.verify([pair])) == 1  # no MarkupError
    shown = out.getvalue()
    for text in (*MARKUP, "[bold red]code", "    return arr[i] + arr[j]"):
        assert text in shown, text


def test_tasks_are_blind_by_construction():
    """Every field Label Studio receives, for 200 pairs: the set of fields is exactly TASK_FIELDS,
    and each task is byte-identical to the task of the same pair with its label flipped, so no
    field can correlate with the listed label beyond what the responses themselves say (the
    content people judge); the hidden mapping is balanced."""
    pairs = toy_pairs(200, noise=0.3, seed=9)
    mapping = []
    for p in pairs:
        b = blind_task(p, seed=3)
        assert set(b.data) == set(TASK_FIELDS)
        flipped = blind_task(p.flipped(), seed=3)
        assert flipped.data == b.data and flipped.digest == b.digest  # the listed label never enters the task
        assert flipped.a_is_listed_chosen is (not b.a_is_listed_chosen)
        assert p.id not in json.dumps(b.data)  # an opaque item key, not the dataset's pair id
        for name in ("a_is_listed_chosen", "chosen", "rejected", "truth", "score", "verdict", "label_source"):
            assert name not in json.dumps(b.data), name
        mapping.append(b.a_is_listed_chosen)
    assert 0.4 < sum(mapping) / len(mapping) < 0.6


def test_rendered_text_is_escaped_and_keeps_whitespace():
    """Responses become HTML people read correctly: scripts and tags escaped, indentation kept,
    fenced code in a code block, tables as tables."""
    import html as htmllib
    import re

    two = "def f(x):\n  if x:\n    return 1"
    four = "def f(x):\n    if x:\n        return 1"
    plain = lambda h: htmllib.unescape(re.sub(r"<[^>]+>", "", h))  # noqa: E731
    assert render_text(two) != render_text(four)
    assert plain(render_text(two)) == two and plain(render_text(four)) == four  # every space kept
    evil = ("<script>alert(1)</script><img src=x onerror=alert(2)> <a href='javascript:x'>c</a>\n"
            "```python\nprint('<b>')\n    x = 1\n```\n| a | b |\n|---|---|\n| <i>1</i> | `2` |")
    out = render_text(evil)
    assert "<script" not in out and "<img" not in out and "<a " not in out and "<i>" not in out
    assert "&lt;script&gt;" in out and "onerror=alert(2)" in out  # shown, as text
    assert '<pre class="ro-code"><code>print(&#x27;&lt;b&gt;&#x27;)\n    x = 1</code></pre>' in out
    assert "<table" in out and "<td>&lt;i&gt;1&lt;/i&gt;</td>" in out
    tags = set(re.findall(r"</?([a-z]+)", out))
    assert tags <= {"div", "pre", "code", "table", "thead", "tbody", "tr", "th", "td", "b"}


def test_label_config_offers_one_key_per_choice_and_the_graded_scale():
    for graded, expected in ((False, [CHOICE_A, CHOICE_B, CHOICE_UNDECIDABLE]),
                             (True, ["A is much better", "A is slightly better", "About equal", "B is slightly better",
                                     "B is much better", CHOICE_UNDECIDABLE])):
        root = ET.fromstring(label_config(graded))
        choices = [(c.get("value"), c.get("hotkey")) for c in root.iter("Choice")]
        assert [v for v, _ in choices] == expected
        keys = [k for _, k in choices]
        assert len(set(keys)) == len(keys) and all(keys)
        headers = " ".join(h.get("value") for h in root.iter("Header"))
        assert all(f"{k} = {v}" in headers for v, k in choices) and "Ctrl+Enter" in headers  # shortcuts stated
        assert sum(1 for el in root.iter() if el.get("value") == "$guideline") == 1  # the guideline once
        assert root.find(".//Collapse//HyperText[@name='guideline']") is not None  # collapsible
