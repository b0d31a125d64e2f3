"""A labelling campaign against the REAL Label Studio server: blind tasks, two people per pair,
skips that do not trap a pair, answers bound to what people saw (paper §3.2's human verification).
"""

from __future__ import annotations

import html
import json
import re

import pytest
from support.labelstudio_server import labelstudio  # noqa: F401  (the session-scoped server)

from rewardops.curation.human import CHOICE_A, CHOICE_B, TASK_FIELDS, blind_task
from rewardops.curation.labelstudio import AnnotationsPending, LabelStudioAnnotator, LabelStudioError, agreement
from rewardops.data.schema import Message, PreferencePair

from .conftest import toy_pairs

ALICE, BOB, CAROL = "alice@rewardops.test", "bob@rewardops.test", "carol@rewardops.test"
GOOD_CODE = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s"
BAD_CODE = "def total(xs):\n    s = 0\n    for x in xs:\n        s += x\n        return s"  # returns inside the loop


def campaign_pairs(tag: str) -> list[PreferencePair]:
    """A pair differing only in indentation, a multi-turn pair with markup in it, a plain pair."""
    code = PreferencePair(id=f"{tag}-code", source="test",
                          conversation=[Message("user", "Sum a list in Python:\n```python\nxs = [1, 2]\n```")],
                          chosen=GOOD_CODE, rejected=BAD_CODE, annotation_guideline="Run the code in your head.")
    chat = PreferencePair(id=f"{tag}-chat", source="test", conversation=[
        Message("user", "What does <script>alert(1)</script> do?"), Message("assistant", "It runs JavaScript."),
        Message("user", "And `arr[i] + arr[j]`?")],
        chosen="It adds two elements of `arr`:\n\n| i | j |\n|---|---|\n| 0 | 1 |",
        rejected="It concatenates the arrays.")
    [plain] = toy_pairs(1)
    plain.id = f"{tag}-plain"
    pairs = [code, chat, plain]
    for p in pairs:
        p.truth_chosen_better = True
        p.lineage.append("stage1:iter-01:retrieved(by=g0,p=0.400)")
    return pairs


def answer(rec: dict, right: bool = True) -> str:
    return CHOICE_A if rec["a_is_listed_chosen"] == right else CHOICE_B


def text_of(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_two_annotators_an_indentation_pair_and_a_skip(tmp_path, labelstudio):
    admin = labelstudio.client()
    alice, bob, carol = (labelstudio.person(e) for e in (ALICE, BOB, CAROL))
    logs: list[str] = []

    def annotator(**kw):
        return LabelStudioAnnotator(admin, tmp_path, annotators_per_pair=2, annotators=[ALICE, BOB], log=logs.append,
                                    **kw)

    pairs = campaign_pairs("m")
    with pytest.raises(AnnotationsPending, match=r"0 of 3 .* still need 2 people each: task \d+"):
        annotator().verify(pairs)
    led = json.loads((tmp_path / "iter-01.ledger.json").read_text())
    project = admin.project(led["project"])
    assert project["maximum_annotations"] == 2 and project["show_instruction"] is False
    assert project["skip_queue"] == "REQUEUE_FOR_ME"
    [tab] = admin._call("GET", "/api/dm/views/", params={"project": led["project"]})  # the data columns hidden
    assert set(tab["data"]["hiddenColumns"]["explore"]) >= {f"tasks:data.{f}" for f in TASK_FIELDS}
    assert any(f"{labelstudio.url}/projects/{led['project']}/data" in m for m in logs)  # the project announced

    # blind: every field the server holds for every task, and nothing in them reveals the listed label
    shown = {t["data"]["item"]: t for t in admin.export(led["project"])}
    recs = {pid: led["tasks"][pid] for pid in led["tasks"]}
    for p in pairs:
        rec = recs[p.id]
        data = shown[rec["item"]]["data"]
        assert set(data) == set(TASK_FIELDS) | {"rewardops_run", "rewardops_batch"}
        for flipped_or_not in (p, p.flipped()):  # the same task whichever response the dataset lists as chosen
            assert {k: data[k] for k in TASK_FIELDS} == blind_task(flipped_or_not, 0, salt=f"{led['run']}:iter-01").data
        text = json.dumps(data)
        assert p.id not in text and "a_is_listed_chosen" not in text and "chosen" not in text
    code = shown[recs["m-code"]["item"]]["data"]
    assert {text_of(code["response_a"]), text_of(code["response_b"])} == {GOOD_CODE, BAD_CODE}  # indentation kept
    chat = shown[recs["m-chat"]["item"]]["data"]["conversation"]
    assert "&lt;script&gt;" in chat and "<script" not in chat and "arr[i] + arr[j]" in chat

    # alice answers everything (one with a reason); bob skips the code pair
    alice.annotate(recs["m-code"]["task"], answer(recs["m-code"]), note="the second returns inside the loop")
    alice.annotate(recs["m-chat"]["task"], answer(recs["m-chat"]))
    alice.annotate(recs["m-plain"]["task"], answer(recs["m-plain"]))
    bob.annotate(recs["m-code"]["task"], CHOICE_A, cancelled=True)
    with pytest.raises(AnnotationsPending, match=rf"task {recs['m-code']['task']} \(1 of 2 answered; skipped by {BOB}\)"):
        annotator(resume=True).verify(pairs)
    # the skipped task is not trapped: it comes back at the end of bob's own queue
    queue = [bob.next_task(led["project"])["id"]]
    assert queue[0] in (recs["m-chat"]["task"], recs["m-plain"]["task"])
    bob.annotate(recs["m-chat"]["task"], answer(recs["m-chat"], right=False))  # bob disagrees: a tie, undecidable
    bob.annotate(recs["m-plain"]["task"], answer(recs["m-plain"]))
    assert bob.next_task(led["project"])["id"] == recs["m-code"]["task"]
    bob.annotate(recs["m-code"]["task"], answer(recs["m-code"]))
    carol.annotate(recs["m-chat"]["task"], answer(recs["m-chat"]))  # not a listed annotator: does not break the tie

    ann = annotator(resume=True)
    assert ann.verify(pairs) == [True, None, True]  # run complete, verdicts right
    s = ann.last_summary
    assert (s["confirmed"], s.get("relabelled", 0), s["undecidable"]) == (2, 0, 1)
    assert s["agreement"]["pairs"] == 3 and s["agreement"]["percent"] == pytest.approx(2 / 3, abs=1e-3)
    assert ann.last_counts["unlisted_annotations"] == 1
    assert any("2 confirmed the dataset's label, 0 relabelled it (chose the listed rejected), 1 undecidable" in m and "agreement 67%" in m for m in logs)
    said = pairs[0].meta["human_annotations"]["annotations"]
    assert [(a["email"], a["said"]) for a in said] == [(ALICE, "chosen"), (BOB, "chosen")]  # bob's skip replaced
    assert said[0]["reason"] == "the second returns inside the loop"
    assert 'reason="the second returns inside the loop"' in pairs[0].lineage[-1]
    assert CAROL not in json.dumps(pairs[1].meta["human_annotations"])


def test_agreement_measures():
    assert agreement([["A", "A"], ["B", "B"]]) == {"pairs": 2, "percent": 1.0, "alpha": 1.0}
    got = agreement([["A", "B"], ["A", "A"], ["B", "B"], ["A"]])
    assert got["pairs"] == 3 and got["percent"] == pytest.approx(2 / 3, abs=1e-3)
    assert got["alpha"] == pytest.approx(0.4444, abs=1e-3)  # Krippendorff's alpha, nominal (hand-computed)
    assert agreement([["A"]]) == {"pairs": 0, "percent": None, "alpha": None}


def test_answers_are_bound_to_what_people_saw(tmp_path, labelstudio):
    """An edited task, a hand-edited ledger and answers the server does not hold never become verdicts."""
    admin, alice = labelstudio.client(), labelstudio.person(ALICE)
    pairs = campaign_pairs("b")
    with pytest.raises(AnnotationsPending):
        LabelStudioAnnotator(admin, tmp_path).verify(pairs)
    path = tmp_path / "iter-01.ledger.json"
    led = json.loads(path.read_text())
    recs = led["tasks"]
    for pid in recs:
        alice.annotate(recs[pid]["task"], answer(recs[pid]))
    saved = path.read_text()

    # a hand-written ledger with the run's id: a mapping flipped by hand is refused
    forged = json.loads(saved)
    forged["tasks"]["b-code"]["a_is_listed_chosen"] = not forged["tasks"]["b-code"]["a_is_listed_chosen"]
    path.write_text(json.dumps(forged))
    with pytest.raises(LabelStudioError, match="record of pair b-code does not match the pair"):
        LabelStudioAnnotator(admin, tmp_path, resume=True).verify(pairs)
    # ...and answers written into the ledger that the server never held do not count (resume re-checks)
    forged = json.loads(saved)
    forged["tasks"]["b-code"]["annotations"].clear()
    forged["tasks"]["b-chat"]["annotations"] = {"999999": {"user": 1, "email": ALICE, "choice": CHOICE_A, "side": "A",
                                                           "cancelled": False, "listed": True, "created_at": "2099"}}
    path.write_text(json.dumps(forged))
    ann = LabelStudioAnnotator(admin, tmp_path, resume=True)
    assert ann.verify(pairs) == [True, True, True]  # the server's answers, collected again
    assert json.loads(path.read_text())["tasks"]["b-chat"]["annotations"]["999999"]["withdrawn_at"]
    assert ann.last_counts["annotations_withdrawn"] == 1

    # a task edited after import: its answers are not about the pair any more
    task = admin.export(led["project"])[0]
    admin.update_task(task["id"], {**task["data"], "response_a": task["data"]["response_b"]})
    with pytest.raises(LabelStudioError, match=rf"task {task['id']} \(pair [\w-]+\) no longer shows what RewardOps sent"):
        LabelStudioAnnotator(admin, tmp_path, resume=True).verify(pairs)


def test_a_pair_skipped_by_enough_people_is_undecidable_and_skip_can_be_off(tmp_path, labelstudio):
    admin, alice = labelstudio.client(), labelstudio.person(ALICE)
    pairs = campaign_pairs("s")
    with pytest.raises(AnnotationsPending):
        LabelStudioAnnotator(admin, tmp_path / "a", skip_limit=1).verify(pairs)
    recs = json.loads((tmp_path / "a" / "iter-01.ledger.json").read_text())["tasks"]
    alice.annotate(recs["s-code"]["task"], CHOICE_A, cancelled=True)
    for pid in ("s-chat", "s-plain"):
        alice.annotate(recs[pid]["task"], answer(recs[pid], right=False))
    ann = LabelStudioAnnotator(admin, tmp_path / "a", skip_limit=1, resume=True)
    assert ann.verify(pairs) == [None, False, False]
    assert (ann.last_summary["skipped"], ann.last_summary["relabelled"]) == (1, 2)
    assert pairs[0].meta["human_annotations"]["state"] == "skipped"

    with pytest.raises(AnnotationsPending):
        LabelStudioAnnotator(admin, tmp_path / "b", skip_limit=0).verify(campaign_pairs("t"))
    led = json.loads((tmp_path / "b" / "iter-01.ledger.json").read_text())
    assert admin.project(led["project"])["show_skip_button"] is False


def test_the_graded_scale(tmp_path, labelstudio):
    admin, alice = labelstudio.client(), labelstudio.person(ALICE)
    pairs = campaign_pairs("g")
    with pytest.raises(AnnotationsPending):
        LabelStudioAnnotator(admin, tmp_path, graded=True).verify(pairs)
    led = json.loads((tmp_path / "iter-01.ledger.json").read_text())
    assert 'value="A is much better" hotkey="1"' in admin.project(led["project"])["label_config"]
    recs = led["tasks"]
    strong = {True: "A is much better", False: "B is much better"}
    slight = {True: "A is slightly better", False: "B is slightly better"}
    alice.annotate(recs["g-code"]["task"], strong[recs["g-code"]["a_is_listed_chosen"]])  # the listed chosen, strongly
    alice.annotate(recs["g-chat"]["task"], slight[not recs["g-chat"]["a_is_listed_chosen"]])  # the other, slightly
    first = alice.annotate(recs["g-plain"]["task"], strong[True])
    alice.update_annotation(first["id"], "About equal")  # alice changes her mind: the latest answer counts
    assert LabelStudioAnnotator(admin, tmp_path, graded=True, resume=True).verify(pairs) == [True, False, None]
    [changed] = json.loads((tmp_path / "iter-01.ledger.json").read_text())["tasks"]["g-plain"]["annotations"].values()
    assert changed["choice"] == "About equal" and changed["revisions"] == []  # never collected before the change
    alice.update_annotation(first["id"], strong[not recs["g-plain"]["a_is_listed_chosen"]])  # now: the other one
    assert LabelStudioAnnotator(admin, tmp_path, graded=True, resume=True).verify(pairs)[2] is False
    [changed] = json.loads((tmp_path / "iter-01.ledger.json").read_text())["tasks"]["g-plain"]["annotations"].values()
    assert [r["choice"] for r in changed["revisions"]] == ["About equal"]  # the earlier answer kept
    pairs = campaign_pairs("g")
    LabelStudioAnnotator(admin, tmp_path, graded=True, resume=True).verify(pairs)
    said = [p.meta["human_annotations"]["annotations"][0] for p in pairs]
    assert [(a["said"], a["strength"]) for a in said] == [("chosen", "much"), ("rejected", "slightly"),
                                                          ("rejected", "much")]
