"""`rewardops curate seed|stage1 --annotator labelstudio` against the real Label Studio server:
the first run opens the tasks and exits 3 (people not done), `--resume` collects them."""

from __future__ import annotations

import json

import pytest
from support.labelstudio_server import labelstudio  # noqa: F401  (the session-scoped server)
from typer.testing import CliRunner

from rewardops.cli import app
from rewardops.curation.human import CHOICE_A, CHOICE_B
from rewardops.data.shards import read_pairs, write_pairs

from .conftest import toy_pairs

runner = CliRunner()

pytestmark = pytest.mark.slow  # a real Label Studio server


def test_curate_stage1_with_people_in_label_studio(tmp_path, monkeypatch, labelstudio):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", labelstudio.admin_token)
    monkeypatch.setenv("LABEL_STUDIO_URL", labelstudio.url)  # the server is the environment's, never a setting
    pairs = toy_pairs(90, noise=0.3, seed=5, prefix="c")
    truth = {p.id: p.truth_chosen_better for p in pairs}
    write_pairs(pairs, tmp_path / "data")
    common = ["--rm", "hashed-bt", "--embedder", "hashed", "--seed", "0"]
    seed = ["curate", "seed", str(tmp_path / "data"), "--out", str(tmp_path / "state"),
            "--annotator", "labelstudio", "--attributes", "heuristic", "--gold-n", "16",
            "--silver-n", "30", "--pool-shards", "1", "--seed", "0", "--embedder", "hashed"]
    res = runner.invoke(app, seed)  # the gold seed goes to people: a project opens, announced with its link
    assert res.exit_code == 3 and "0 of 16" in res.output and f"{labelstudio.url}/projects/" in res.output, res.output
    [seed_led] = (tmp_path / "state.labelstudio").glob("*.ledger.json")
    carol = labelstudio.person("carol@rewardops.test")
    recs = json.loads(seed_led.read_text())["tasks"]
    flips = sorted(recs)[:3]  # carol says the dataset's label is wrong on three pairs
    for pid, rec in recs.items():
        right = truth[pid] != (pid in flips)
        carol.annotate(rec["task"], CHOICE_A if rec["a_is_listed_chosen"] == right else CHOICE_B)
    res = runner.invoke(app, [*seed, "--resume"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    said_right = [truth[pid] != (pid in flips) for pid in recs]
    confirmed = sum(said_right)  # the lead sees how many answers confirmed and relabelled the dataset's label
    assert f"{confirmed} confirmed the dataset's label, {16 - confirmed} relabelled it" in " ".join(res.output.split())

    stage1 = ["curate", "stage1", "--state", str(tmp_path / "state"), "--out", str(tmp_path / "s1"),
              "--annotator", "labelstudio", "--iterations", "1", "--human-per-iteration", "3",
              "--judge", "simulated:0.2", *common]
    res = runner.invoke(app, ["curate", "stage1", "--state", str(tmp_path / "state"), "--out", str(tmp_path / "never"),
                              "--annotator", "labelstudio", "--resume", *common])
    assert res.exit_code == 2 and "nothing to resume" in res.output, res.output

    res = runner.invoke(app, stage1)
    assert res.exit_code == 3, res.output + repr(res.exception)
    assert "waiting for people" in res.output and "0 of 3" in res.output
    assert not (tmp_path / "s1" / "stage1" / "iter-01").exists()
    led = json.loads((tmp_path / "s1.labelstudio" / "iter-01.ledger.json").read_text())
    run = json.loads((tmp_path / "state.labelstudio" / "run.json").read_text())["run"]
    assert led["run"] == run  # one run id across the seed and stage-1 projects
    assert f"rewardops-run: {run}" in labelstudio.client().project(led["project"])["description"]
    for pid, rec in led["tasks"].items():
        carol.annotate(rec["task"], CHOICE_A if rec["a_is_listed_chosen"] == truth[pid] else CHOICE_B)

    res = runner.invoke(app, [*stage1, "--resume", "--wait", "60", "--poll", "1"])
    assert res.exit_code == 0, res.output + repr(res.exception)
    assert "gold accuracy" in res.output and '{"' not in res.output  # a table of numbers, not JSON in cells
    added = list(read_pairs(tmp_path / "s1" / "stage1" / "iter-01" / "added_gold"))
    assert sorted(p.id for p in added) == sorted(led["tasks"])
    assert all(p.truth_chosen_better and p.label_source == "human" for p in added)
    assert all(p.meta["human_annotations"]["annotations"][0]["email"] == "carol@rewardops.test" for p in added)
