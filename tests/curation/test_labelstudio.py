"""Stage 1 with people in the loop through a REAL Label Studio server (no stand-in).

The server is started once per test session (tests/support/labelstudio_server.py). People sign up
through its web form and answer tasks through its API, as they would from the UI.
"""

from __future__ import annotations

import json

import pytest
from support.labelstudio_server import labelstudio  # noqa: F401  (the session-scoped server)

from rewardops.curation.cheap_rm import HashedBTTrainer
from rewardops.curation.human import CHOICE_A, CHOICE_B, CHOICE_UNDECIDABLE, blind_task
from rewardops.curation.judges import JudgeEnsemble, SimulatedJudge
from rewardops.curation.labelstudio import AnnotationsPending, LabelStudioAnnotator, LabelStudioClient, LabelStudioError
from rewardops.curation.stage1 import Stage1Config, Stage1Loop
from rewardops.data.shards import read_pairs, write_pairs

from .conftest import toy_pairs


pytestmark = pytest.mark.slow  # a real Label Studio server


def truthful(rec: dict, truth_chosen_better: bool = True) -> str:
    """What a careful person answers for a ledger task whose listed chosen is truly better or not."""
    return CHOICE_A if rec["a_is_listed_chosen"] == truth_chosen_better else CHOICE_B


def ledger(state, batch="iter-01") -> dict:
    return json.loads((state / f"{batch}.ledger.json").read_text())


def tagged(pairs, batch="iter-01"):
    for p in pairs:
        p.lineage.append(f"stage1:{batch}:retrieved(by=g0,p=0.400)")
    return pairs


def test_stage1_opens_tasks_waits_for_people_and_records_who_labelled_what(tmp_path, embedder, labelstudio):
    write_pairs(toy_pairs(16, noise=0.0, seed=1, prefix="g"), tmp_path / "gold")
    write_pairs(toy_pairs(40, noise=0.3, seed=2, prefix="s"), tmp_path / "silver")
    pool = toy_pairs(120, noise=0.3, seed=3, prefix="u")
    truth = {p.id: p.truth_chosen_better for p in pool}
    write_pairs(pool, tmp_path / "pool")
    out, led_dir = tmp_path / "s1", tmp_path / "ledger"
    alice, bob = labelstudio.person("alice@rewardops.test"), labelstudio.person("bob@rewardops.test")

    def loop(annotator):
        judges = JudgeEnsemble([SimulatedJudge(error_rate=0.1, seed=1, name="sim-a")], n_samples=1)
        return Stage1Loop(HashedBTTrainer(dim=1 << 12, epochs=3), embedder, annotator, judges,
                          Stage1Config(iterations=1, human_per_iteration=4))

    # 1. the first run opens a project with the 4 tasks and stops: nothing written for iteration 1
    with pytest.raises(AnnotationsPending, match="0 of 4 pairs of iter-01 decided") as info:
        loop(LabelStudioAnnotator(labelstudio.client(), led_dir)).run(tmp_path / "gold", tmp_path / "silver",
                                                                  tmp_path / "pool", out, progress=False)
    assert "--resume" in str(info.value)
    assert not (out / "iter-01" / "metrics.json").exists() and (out / "iter-00" / "metrics.json").exists()
    led = ledger(led_dir)
    assert len(led["tasks"]) == 4 and all(isinstance(t["task"], int) for t in led["tasks"].values())
    project = labelstudio.client().project(led["project"])
    assert f"rewardops-run: {led['run']}" in project["description"] and "Cannot decide" in project["label_config"]
    shown = labelstudio.client().export(led["project"])
    assert {t["data"]["item"] for t in shown} == {r["item"] for r in led["tasks"].values()}
    for t in shown:  # the pair, its attributes and the guideline are what people see
        d = t["data"]
        assert "objectivity" in d["guideline"] and "For this item" in d["guideline"]
        assert "user" in d["conversation"] and d["response_a"] and d["response_b"]

    # 2. people label part of it; a resume keeps that progress and still waits for the rest
    ids = sorted(led["tasks"])
    alice.annotate(led["tasks"][ids[0]]["task"], truthful(led["tasks"][ids[0]], truth[ids[0]]))
    alice.annotate(led["tasks"][ids[1]]["task"], truthful(led["tasks"][ids[1]], truth[ids[1]]))
    bob.annotate(led["tasks"][ids[2]]["task"], CHOICE_UNDECIDABLE)
    bob.annotate(led["tasks"][ids[3]]["task"], CHOICE_A, cancelled=True)  # skipped: does not count
    with pytest.raises(AnnotationsPending, match="3 of 4"):
        loop(LabelStudioAnnotator(labelstudio.client(), led_dir, resume=True)).run(
            tmp_path / "gold", tmp_path / "silver", tmp_path / "pool", out, progress=False)
    assert sum(bool(t["annotations"]) for t in ledger(led_dir)["tasks"].values()) == 4  # incl. the skip, kept

    # 3. --wait: the loop polls; bob finishes while it waits (answered from the poll's sleep hook)
    polls = []

    def people_finish(seconds):
        polls.append(seconds)
        if len(polls) == 1:
            bob.annotate(led["tasks"][ids[3]]["task"], truthful(led["tasks"][ids[3]], truth[ids[3]]))

    ann = LabelStudioAnnotator(labelstudio.client(), led_dir, resume=True, wait_s=600, poll_s=5, sleep=people_finish)
    [report] = loop(ann).run(tmp_path / "gold", tmp_path / "silver", tmp_path / "pool", out, progress=False)
    assert polls == [5] and ann.last_counts["not_in_this_call"] == 0  # the resumed iteration asked the same pairs
    assert report.added_gold == 3 and report.undecidable == 1 and report.unreviewed == 0
    added = {p.id: p for p in read_pairs(out / "iter-01" / "added_gold")}
    assert set(added) == {ids[0], ids[1], ids[3]}
    assert all(p.label_source == "human" and p.truth_chosen_better for p in added.values())  # oriented by people
    by_alice = added[ids[0]].meta["human_annotations"]
    assert by_alice["project"] == led["project"] and by_alice["task"] == led["tasks"][ids[0]]["task"]
    [a] = by_alice["annotations"]
    assert a["email"] == "alice@rewardops.test" and a["created_at"] and a["said"] in ("chosen", "rejected")
    assert any("alice@rewardops.test" in step for step in added[ids[0]].lineage)
    assert any("bob@rewardops.test" in step for step in added[ids[3]].lineage)
    [und] = list(read_pairs(out / "iter-01" / "undecidable"))
    assert und.id == ids[2] and und.meta["human_annotations"]["annotations"][0]["said"] == "undecidable"
    assert json.loads((out / "iter-01" / "metrics.json").read_text())["annotator"] == "label-studio"


def test_people_disagreeing_skips_and_deleted_annotations(tmp_path, labelstudio):
    alice, bob = labelstudio.person("alice@rewardops.test"), labelstudio.person("bob@rewardops.test")
    pairs = tagged(toy_pairs(3, prefix="d"))
    ann = LabelStudioAnnotator(labelstudio.client(), tmp_path)
    with pytest.raises(AnnotationsPending):
        ann.verify(pairs)
    t = ledger(tmp_path)["tasks"]
    alice.annotate(t["d00000"]["task"], CHOICE_A)
    bob.annotate(t["d00000"]["task"], CHOICE_B)  # a tie between two people: undecidable
    gone = alice.annotate(t["d00001"]["task"], truthful(t["d00001"]))
    alice.annotate(t["d00002"]["task"], truthful(t["d00002"], False))  # the person says the listed label is wrong
    assert LabelStudioAnnotator(labelstudio.client(), tmp_path).verify(pairs) == [None, True, False]
    assert [a["email"] for a in pairs[0].meta["human_annotations"]["annotations"]] == \
        ["alice@rewardops.test", "bob@rewardops.test"]

    # a pair people already decided in another batch of the run is answered from it, not asked again
    again = toy_pairs(3, prefix="d")[2:3] + toy_pairs(1, prefix="e")
    for p in again:
        p.lineage.append("stage1:iter-02:retrieved(by=g0,p=0.4)")
    with pytest.raises(AnnotationsPending, match="0 of 1 pairs of iter-02"):
        LabelStudioAnnotator(labelstudio.client(), tmp_path).verify(again)
    assert set(ledger(tmp_path, "iter-02")["tasks"]) == {"e00000"}

    # an answer deleted in Label Studio after it was collected stops counting (kept in the ledger, withdrawn)
    labelstudio.client().delete_annotation(gone["id"])
    with pytest.raises(AnnotationsPending, match=r"2 of 3 pairs of iter-01 decided; 1 still need a person: task \d+"):
        LabelStudioAnnotator(labelstudio.client(), tmp_path, resume=True).verify(tagged(toy_pairs(3, prefix="d")))
    [kept] = ledger(tmp_path)["tasks"]["d00001"]["annotations"].values()
    assert kept["email"] == "alice@rewardops.test" and kept["withdrawn_at"]


def test_bad_input_is_a_clear_error_and_loses_nothing(tmp_path, labelstudio):
    admin = labelstudio.client()
    mine, other = tmp_path / "mine", tmp_path / "other"
    pairs = tagged(toy_pairs(2, prefix="b"))
    for state in (mine, other):
        with pytest.raises(AnnotationsPending):
            LabelStudioAnnotator(admin, state).verify(pairs)
    labelstudio.person("alice@rewardops.test").annotate(ledger(mine)["tasks"]["b00000"]["task"], CHOICE_A)
    LabelStudioAnnotator(admin, mine, resume=True).verify(pairs[:1])  # collected into the ledger

    # resuming a run that never opened anything
    with pytest.raises(LabelStudioError, match="nothing to resume"):
        LabelStudioAnnotator(admin, tmp_path / "fresh", resume=True)

    # the ledger pointed at a project of another run
    path = mine / "iter-01.ledger.json"
    saved = path.read_text()
    path.write_text(saved.replace(f'"project": {ledger(mine)["project"]}', f'"project": {ledger(other)["project"]}'))
    with pytest.raises(LabelStudioError, match=r"is run \w+, batch iter-01; this is run"):
        LabelStudioAnnotator(admin, mine).verify(pairs)
    path.write_text(saved)

    # a task with a pair id this batch never sent, in our project
    project = ledger(mine)["project"]
    run = ledger(mine)["run"]
    stray = blind_task(toy_pairs(1, prefix="nope")[0], 0).task(rewardops_run=run, rewardops_batch="iter-01")
    admin.import_tasks(project, [stray])
    with pytest.raises(LabelStudioError, match=r"holds item '\w+', which this batch never sent"):
        LabelStudioAnnotator(admin, mine).verify(pairs)
    assert ledger(mine)["tasks"]["b00000"]["annotations"]  # what alice said is still there

    # the ledger lost: the project is found again by its run and batch marks and its tasks adopted
    p0 = ledger(other)["project"]
    (other / "iter-01.ledger.json").unlink()
    with pytest.raises(AnnotationsPending, match="0 of 2"):
        LabelStudioAnnotator(admin, other).verify(tagged(toy_pairs(2, prefix="b")))
    assert ledger(other)["project"] == p0 and len(admin.export(p0)) == 2  # no duplicate tasks
    # the project deleted on the server: the batch is reopened in a new project
    labelstudio.person("alice@rewardops.test").annotate(ledger(other)["tasks"]["b00001"]["task"], CHOICE_B)
    with pytest.raises(AnnotationsPending, match="1 of 2"):
        LabelStudioAnnotator(admin, other).verify(tagged(toy_pairs(2, prefix="b")))
    admin.delete_project(p0)
    with pytest.raises(AnnotationsPending, match="0 of 2"):  # what alice said there no longer counts...
        LabelStudioAnnotator(admin, other).verify(tagged(toy_pairs(2, prefix="b")))
    assert ledger(other)["previous_projects"] == [p0] and ledger(other)["project"] != p0
    assert len(admin.export(ledger(other)["project"])) == 2  # ...both pairs are asked again
    [old] = [h for h in ledger(other)["history"] if h["pair"] == "b00001"]  # ...and it is kept in the ledger
    assert [a["choice"] for a in old["annotations"].values()] == [CHOICE_B] and old["project"] == p0

    # a wrong token and a server that is not there
    with pytest.raises(LabelStudioError, match="refused the token"):
        LabelStudioAnnotator(LabelStudioClient(labelstudio.url, "not-a-token"), mine).verify(pairs)
    with pytest.raises(LabelStudioError, match="unreachable"):
        LabelStudioAnnotator(LabelStudioClient("http://127.0.0.1:9", "t0ken1"), mine).verify(pairs)
    with pytest.raises(LabelStudioError, match="LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY not set"):
        LabelStudioClient.from_env({})
