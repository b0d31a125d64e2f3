"""KFP-native outputs: the evaluation report as Output[Markdown] and Output[HTML] with
the plots embedded, pipeline parameters described (KFP shows the docstring's Args), display
names on the end-to-end/demo/evaluation steps. Compiled IR and a real report, no cluster."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    from rewardops.pipelines.commands import compile_all

    out = tmp_path_factory.mktemp("ir")
    return {p.stem: next(yaml.safe_load_all(p.read_text())) for p in compile_all(out, ["evaluation", "end-to-end", "demo"])}


def _tasks(ir: dict) -> dict[str, dict]:
    tasks = dict(ir["root"]["dag"]["tasks"])
    for comp in ir["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


def test_evaluate_outputs_markdown_and_html(compiled: dict[str, dict]) -> None:
    ir = compiled["evaluation"]
    comp = ir["components"][ir["root"]["dag"]["tasks"]["evaluate"]["componentRef"]["name"]]
    artifacts = comp["outputDefinitions"]["artifacts"]
    assert artifacts["summary"]["artifactType"]["schemaTitle"] == "system.Markdown"
    assert artifacts["summary_html"]["artifactType"]["schemaTitle"] == "system.HTML"


def test_parameters_are_described_and_steps_named(compiled: dict[str, dict]) -> None:
    for name in compiled:  # every pipeline
        ir = compiled[name]
        params = ir["root"]["inputDefinitions"]["parameters"]
        undocumented = [p for p, spec in params.items() if not spec.get("description")]
        assert not undocumented, f"{name}: parameters without a description: {undocumented}"
    for name in ("end-to-end", "demo"):
        tasks = _tasks(compiled[name])
        for task in ("train" if name == "demo" else "train-launcher", "evaluate", "register", "preprocess"):
            assert tasks[task]["taskInfo"]["name"] != task, f"{name}: {task} has no display name"
    assert _tasks(compiled["demo"])["version-data"]["taskInfo"]["name"] == "version curated data (DVC)"
    for name in compiled:  # every step of every pipeline has a display name
        unnamed = [t for t, spec in _tasks(compiled[name]).items()
                   if spec["taskInfo"]["name"] == t and not t.startswith("for-loop")]
        assert not unnamed, f"{name}: steps without a display name: {unnamed}"


def test_embedded_reports_carry_the_plots(tmp_path: Path) -> None:
    from rewardops.evaluation.report import embedded_reports, summarize, write_plots

    results = {"world": {"overall": 0.707, "subsets": {"arith": 0.6, "facts": 0.8}}}
    summary = summarize("models:/rewardops-rm-demo-tiny-qwen3@candidate", "fp", results, {}, {})
    assert summary["score_percent"] == pytest.approx(70.7) and summary["score_basis"] == ["world"]
    write_plots(tmp_path, summary, results)
    md, html = embedded_reports(tmp_path, summary)
    assert "Evaluation of demo-tiny-qwen3 (candidate)" in md  # named by size, not "model"
    png = (tmp_path / "plots" / "benchmarks.png").read_bytes()
    encoded = base64.b64encode(png).decode()
    assert f"data:image/png;base64,{encoded}" in md and f"src='data:image/png;base64,{encoded}'" in html
    assert "<table>" in html and "70.7" in html
    assert "## World by subset" in md and "<h2>Score per benchmark</h2>" in html  # headings a person reads


def test_model_card_gets_the_evaluation_table() -> None:
    """What `register` does to the version description: the card written at registration keeps its
    training part and gets the evaluation table (percent, registry score) in place of the placeholder."""
    from types import SimpleNamespace

    from rewardops.tracking.rewardmodel import model_card, update_card

    tags = {"rewardops.size": "demo-tiny-qwen3", "rewardops.data.registry": "/r", "rewardops.data.rev": "abc",
            "rewardops.data.path": "curated", "rewardops.data.md5": "f00.dir", "rewardops.data.rows": "812"}
    card = model_card(Path("/nonexistent"), tags, name="rewardops-rm-demo-tiny-qwen3")
    assert "Not evaluated yet" in card and "`f00.dir`" in card and "pairs: 812" in card

    class Client:
        description = card

        def get_model_version(self, name, version):
            return SimpleNamespace(tags=tags, description=self.description)

        def update_model_version(self, name, version, description):
            self.description = description

    client = Client()
    update_card(client, "rewardops-rm-demo-tiny-qwen3", 1, {"world": 70.7})
    assert "| world | 70.70 |" in client.description and "registry score" in client.description
    assert "Not evaluated yet" not in client.description and client.description.count("## Use") == 1
    assert "## Intended use and limits" in client.description and "`f00.dir`" in client.description
