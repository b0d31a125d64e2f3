from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from rewardops.curation.human import (
    CHOICE_A, CHOICE_B, CHOICE_UNDECIDABLE, LabelStudioFormatError, SimulatedAnnotator, TerminalAnnotator,
    export_label_studio, import_label_studio, label_studio_annotation,
)

from .conftest import toy_pairs


def test_label_studio_round_trip(tmp_path):
    pairs = toy_pairs(5)
    tasks_path, config_path = export_label_studio(pairs, tmp_path / "ls")
    root = ET.fromstring(config_path.read_text())  # valid XML
    names = {el.get("name") for el in root.iter() if el.get("name")}
    assert {"guideline", "attributes", "conversation", "response_a", "response_b", "preference"} <= names
    tasks = json.loads(tasks_path.read_text())
    assert len(tasks) == 5 and tasks[0]["data"]["conversation"][0]["role"] == "user"
    assert {t["data"]["a_is_listed_chosen"] for t in tasks} == {True, False} or len(tasks) < 4

    # Simulate Label Studio's export: annotators pick the truly better response for tasks 0-1,
    # the worse one for task 2, cannot decide on 3, and 4 is still unannotated.
    for n, t in enumerate(tasks):
        d = t["data"]
        better = CHOICE_A if d["a_is_listed_chosen"] else CHOICE_B
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
    with pytest.raises(LabelStudioFormatError, match=r"bad.json: task #0: no data.rewardops_id"):
        import_label_studio(bad, pairs)
    tasks_path, _ = export_label_studio(pairs, tmp_path / "ls")
    tasks = json.loads(tasks_path.read_text())
    tasks[1]["annotations"] = [{"result": [{"from_name": "preference", "type": "choices", "value": {"choices": ["C"]}}]}]
    bad.write_text(json.dumps(tasks))
    with pytest.raises(LabelStudioFormatError, match=r"task #1 annotation #0: unexpected preference choices"):
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
    from rewardops.curation.human import _task

    assert answers[0] == _task(pairs[0], 0)["data"]["a_is_listed_chosen"]
