"""The KFP route with people: `labelstudio_open` then the retried `labelstudio_collect` (their
library calls, against the real Label Studio server), and the pipeline wiring behind its option."""

from __future__ import annotations

import json

import pytest
from support.labelstudio_server import labelstudio  # noqa: F401  (the session-scoped server)

from rewardops.curation.human import CHOICE_A, CHOICE_B
from rewardops.curation.labelstudio import AnnotationsPending, LabelStudioError, collect_iteration, open_iteration
from rewardops.curation.settings import CurationSettings
from rewardops.curation.steps import seed_split
from rewardops.data.shards import read_pairs, write_pairs

from .conftest import toy_pairs


pytestmark = pytest.mark.slow  # a real Label Studio server


def test_open_then_collect_steps(tmp_path, monkeypatch, labelstudio):
    monkeypatch.setenv("LABEL_STUDIO_URL", labelstudio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", labelstudio.admin_token)
    pairs = toy_pairs(80, noise=0.3, seed=6, prefix="k")
    truth = {p.id: p.truth_chosen_better for p in pairs}
    write_pairs(pairs, tmp_path / "data")
    base = dict(rm="hashed-bt", embedder="hashed", judges=["simulated:0.2"], judge_samples=1, attributes="heuristic",
                gold_n=12, silver_n=24, pool_shards=1, iterations=1, human_per_iteration=3)
    seed_split(tmp_path / "data", tmp_path / "state", CurationSettings.parse(base | {"annotator": "simulated:0"}))
    settings = CurationSettings.parse(base | {"annotator": "labelstudio"})

    with pytest.raises(LabelStudioError, match="need settings annotator 'labelstudio"):
        open_iteration(tmp_path / "state", tmp_path / "x", 1, CurationSettings.parse(base | {"annotator": "simulated"}))

    info = open_iteration(tmp_path / "state", tmp_path / "opened", 1, settings)  # step 1
    assert info["complete"] is False and info["tasks"] == 3 and info["decided"] == 0 and info["batch"] == "iter-01"
    assert json.loads((tmp_path / "opened" / "opened.json").read_text())["project"] == info["project"]
    before = (tmp_path / "opened" / "iter-01.ledger.json").read_text()

    with pytest.raises(AnnotationsPending, match="0 of 3"):  # step 2 before people answer: fails, KFP retries
        collect_iteration(tmp_path / "state", tmp_path / "opened", tmp_path / "next", 1, settings, wait_s=0)
    assert not (tmp_path / "next").exists()
    assert (tmp_path / "opened" / "iter-01.ledger.json").read_text() == before  # an input is never written

    led = json.loads(before)
    dave = labelstudio.person("dave@rewardops.test")
    for pid, rec in led["tasks"].items():
        dave.annotate(rec["task"], CHOICE_A if rec["a_is_listed_chosen"] == truth[pid] else CHOICE_B)
    metrics = collect_iteration(tmp_path / "state", tmp_path / "opened", tmp_path / "next", 1, settings, wait_s=0)
    assert metrics["added_gold"] == 3 and metrics["labelstudio_with_annotations"] == 3
    assert metrics["labelstudio_confirmed"] + metrics["labelstudio_relabelled"] == 3
    assert metrics["labelstudio_relabelled"] == sum(not truth[pid] for pid in led["tasks"])  # people fixed the noisy labels
    [it] = sorted((tmp_path / "next" / "stage1").glob("iter-01"))
    added = list(read_pairs(it / "added_gold"))
    assert {p.id for p in added} == set(led["tasks"])
    assert all(p.meta["human_annotations"]["annotations"][0]["email"] == "dave@rewardops.test" for p in added)


def test_the_pipeline_offers_label_studio_steps_behind_an_option(tmp_path):
    import yaml
    from kfp import compiler

    from rewardops.pipelines.curation import build

    path = tmp_path / "curation.yaml"  # (the pipeline without the option is compiled by tests/pipelines)
    compiler.Compiler().compile(build(iterations=2, labelstudio=True), str(path))
    tasks = yaml.safe_load(path.read_text())["root"]["dag"]["tasks"]
    assert {"labelstudio-open", "labelstudio-collect", "labelstudio-open-2", "labelstudio-collect-2"} <= set(tasks)
    assert not any(name.startswith("stage1-iteration") for name in tasks)
    assert tasks["labelstudio-collect"]["retryPolicy"]["maxRetryCount"] > 0
    assert tasks["labelstudio-open-2"]["dependentTasks"] == ["assemble-pool", "labelstudio-collect"]  # 2 follows 1
    assert tasks["labelstudio-collect"]["dependentTasks"] == ["assemble-pool", "labelstudio-open"]
