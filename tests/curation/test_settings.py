"""The one curation settings object, the part registries, and temperature calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rewardops.curation import builders
from rewardops.curation.rms import CalibratedScorer, calibrate, fit_temperature
from rewardops.curation.settings import PROFILES, CurationSettings, SettingsError

from .conftest import TableScorer, toy_pairs


def test_every_form_parses_to_the_same_object(tmp_path: Path):
    want = PROFILES["demo"].with_overrides(band=0.2, judges=["openai:m1", "local"])
    (tmp_path / "s.json").write_text(json.dumps({"profile": "demo", "band": 0.2, "judges": ["openai:m1", "local"]}))
    (tmp_path / "params.yaml").write_text("curation:\n  profile: demo\n  band: 0.2\n  judges: [openai:m1, local]\n")
    forms = [
        '{"profile": "demo", "band": 0.2, "judges": ["openai:m1", "local"]}',  # JSON (a KFP parameter)
        "profile: demo\nband: 0.2\njudges: openai:m1,local",  # YAML, a comma list
        str(tmp_path / "s.json"),
        f"{tmp_path / 'params.yaml'}:curation",  # one section of params.yaml (the DVC stages)
        {"profile": "demo", "band": 0.2, "judges": ("openai:m1", "local")},
    ]
    for form in forms:
        assert CurationSettings.parse(form) == want, form
    assert CurationSettings.parse(want) is want
    assert CurationSettings.parse("") == CurationSettings.parse(None) == CurationSettings()
    assert CurationSettings.parse("demo") == PROFILES["demo"]
    # a round trip through the JSON the KFP components receive
    assert CurationSettings.parse(want.to_json()) == want


def test_defaults_are_people_and_real_judges():
    s = CurationSettings()
    assert s.annotator == "terminal" and s.judges == ("openai",) and s.attributes == "openai"
    assert not any(x.startswith("simulated") for x in (s.annotator, *s.judges, s.attributes))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"judges": "gpt"}', "judges 'gpt': use one of openai, local, simulated"),
        ('{"annotator": "alice"}', "annotator 'alice': use one of terminal, labelstudio, simulated"),
        ('{"annotator": "simulated:1.5"}', "the rate must be between 0 and 1"),
        ('{"annotator": "terminal:x"}', "terminal takes no argument"),
        ('{"rm": "transformer"}', "transformer needs an argument"),
        ('{"band": 0.7}', "band=0.7"),
        ('{"band": "wide"}', "band='wide': expected float"),
        ('{"recycle_confidence": 0.3}', "at least 0.5"),
        ('{"temperature": 1}', "unknown curation settings ['temperature']"),
        ('{"profile": "prod"}', "profile 'prod'"),
        ("[1, 2]", "must be a JSON/YAML mapping"),
        ("nonsense", "neither a profile"),
        ("missing.yaml", "does not exist"),
        ('{"band": ', "not valid JSON"),
    ],
)
def test_settings_refuse_what_cannot_work_naming_the_setting(value, message):
    with pytest.raises(SettingsError) as info:
        CurationSettings.parse(value)
    assert message in str(info.value)


def test_a_new_annotator_kind_is_one_registry_entry(monkeypatch):
    calls = []

    def factory(arg, settings, **context):
        calls.append((arg, settings.seed, context))
        return "an annotator"

    monkeypatch.setattr(builders, "my_factory", factory, raising=False)
    monkeypatch.setitem(builders.ANNOTATORS, "mine", builders.Kind("rewardops.curation.builders:my_factory", "optional", "x"))
    s = CurationSettings(annotator="mine:room-4", seed=7)
    assert builders.build_annotator(s, output="OUT") == "an annotator"
    assert calls == [("room-4", 7, {"output": "OUT"})]


def test_parts_that_cannot_be_built_say_what_to_set(monkeypatch):
    for var in ("REWARDOPS_LLM_BASE_URL", "OPENAI_BASE_URL", "REWARDOPS_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(builders.PartError, match="set REWARDOPS_LLM_BASE_URL and REWARDOPS_LLM_MODEL"):
        builders.build_judges(CurationSettings())
    with pytest.raises(builders.PartError, match="interactive terminal"):
        builders.build_annotator(CurationSettings())  # pytest's stdin is not a TTY
    ensemble = builders.build_judges(CurationSettings(judges=("simulated:0.1", "simulated:0.3"), judge_samples=2))
    assert [m.name for m in ensemble.models] == ["simulated-judge-0(err=0.1)", "simulated-judge-1(err=0.3)"]


def test_temperature_scaling_fits_gold_and_keeps_the_order():
    rng = np.random.default_rng(0)
    # an overconfident RM: right 75% of the time, but always 0.99 / 0.01 sure
    right = rng.random(400) < 0.75
    probs = np.where(right, 0.99, 0.01)
    t = fit_temperature(probs)
    cal = np.asarray(calibrate(probs, t))
    assert t > 1.5 and abs(cal[right].mean() - 0.75) < 0.05  # 0.99 now means about what it gets right
    assert fit_temperature([]) == 1.0
    raw = [0.2, 0.6, 0.9]
    assert np.argsort(calibrate(raw, 3.0)).tolist() == np.argsort(raw).tolist()
    pairs = toy_pairs(3)
    scorer = CalibratedScorer(TableScorer({p.id: v for p, v in zip(pairs, raw)}), 3.0)
    assert scorer.score_pairs(pairs) == pytest.approx(calibrate(raw, 3.0)) and "T=3" in scorer.name


def test_heuristic_attributes_fill_only_what_is_missing():
    from rewardops.curation.attributes import HeuristicAttributes, fill_attributes

    pairs = toy_pairs(3)
    pairs[0].task_category = None
    pairs[1].objectivity = None
    made = fill_attributes(pairs, HeuristicAttributes)
    assert made == {"attributes_generated": 2, "attributes_failed": 0}
    assert pairs[0].task_category == "code" and pairs[1].objectivity == "objective"  # python; binary search
    assert pairs[2].lineage == [] and "attributes:heuristic" in pairs[0].lineage
    assert fill_attributes(pairs, lambda: pytest.fail("not built when nothing is missing")) == {
        "attributes_generated": 0, "attributes_failed": 0}


def test_retrieval_text_leads_with_the_attributes_and_counts_what_it_cuts(embedder):
    from rewardops.curation.retrieval import pair_text

    pair = toy_pairs(1)[0]
    text = pair_text(pair)
    assert text.startswith("task_category: ") and text.index("objectivity") < text.index("user:")
    before = embedder.truncated
    embedder.embed(["short text " + str(id(pair)), "long " * 400 + str(id(pair))])
    assert embedder.truncated == before + 1


def test_curation_defaults_are_declared_once():
    """The stage-2 band, retrieval k, thresholds and budgets have one literal default: in settings.py.
    Anything else (the loop and filter configs, retrieval, judges, pipelines) takes it from there."""
    import re
    from pathlib import Path

    import rewardops

    names = ("band", "k_max", "K_MAX", "n_examples", "MAX_EXAMPLES", "gold_threshold", "recycle_confidence",
             "judge_budget", "human_per_iteration", "rm_skill_z", "calibration_fraction", "iterations")
    literal = re.compile(rf"^\s*({'|'.join(names)})\s*(:\s*[\w\[\], |]+)?\s*=\s*[-+]?[0-9.]+\b", re.M)
    src = Path(rewardops.__file__).parent
    found = [f"{path.relative_to(src)}: {m.group(0).strip()}" for path in src.rglob("*.py")
             if path.name != "settings.py" or path.parent.name != "curation"
             for m in literal.finditer(path.read_text())]
    assert not found, "curation defaults declared outside curation/settings.py:\n" + "\n".join(found)
