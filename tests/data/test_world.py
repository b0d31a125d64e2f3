"""The preference world: determinism, coverage, verifiable truth, label noise, split, diversity."""

from __future__ import annotations

import inspect
import itertools
import json
import math
import re
import time
import tracemalloc
from collections import Counter, defaultdict

import pytest

from rewardops.data.schema import Controversiality, Objectivity, PreferencePair, TaskCategory
from rewardops.data.shards import read_pairs, write_pairs
from rewardops.data.world import (
    CONTROVERSIALITY_MIX, FACT_COUNT, FAMILIES, FAMILY_WEIGHTS, RELATIONS, VerifierError,
    check_response, family_flip_rates, flip_rate_table, generate_world, verify_pair, world_id,
    world_pair, world_split,
)
from rewardops.data.world.code_specs import SPECS
from rewardops.data.world.code_tasks import render_function, suite_for
from rewardops.data.world.factual import possible_distractors
from rewardops.data.world.instructions import PHRASES
from rewardops.data.world.style import CLOSERS, FILLERS, HEADINGS, NOTES, OPENERS, SUBHEADINGS
from rewardops.data.world.verify import _mentions


@pytest.fixture(scope="module")
def world_1k() -> list[PreferencePair]:
    return list(generate_world(1000, noise=0.1, seed=0))


@pytest.fixture(scope="module")
def world_noisy() -> list[PreferencePair]:
    return list(generate_world(3000, noise=0.3, seed=7))


def _rows(pairs: list[PreferencePair]) -> list[dict]:
    return [p.to_row() for p in pairs]


# --- determinism, ids, streaming ------------------------------------------------------------

def test_same_seed_same_pairs_different_seed_different() -> None:
    a, b = list(generate_world(200, seed=3)), list(generate_world(200, seed=3))
    assert _rows(a) == _rows(b)
    c = list(generate_world(200, seed=4))
    same_content = sum(x.conversation == y.conversation and x.chosen == y.chosen for x, y in zip(a, c))
    assert same_content < 10
    assert not {p.id for p in a} & {p.id for p in c}


def test_pair_depends_only_on_seed_and_index() -> None:
    full = list(generate_world(120, noise=0.2, seed=11))
    tail = list(generate_world(20, noise=0.2, seed=11, start=100))
    assert _rows(full[100:]) == _rows(tail)
    assert world_pair(11, 57, noise=0.2).to_row() == full[57].to_row()
    assert [p.id for p in full] == [world_id(11, i) for i in range(120)]
    # The noise level changes which label is listed, never the content.
    quiet = list(generate_world(120, noise=0.0, seed=11))
    for q, f in zip(quiet, full):
        assert q.conversation == f.conversation
        assert {q.chosen, q.rejected} == {f.chosen, f.rejected}
        assert q.truth_chosen_better is True
        assert (f.chosen == q.chosen) == f.truth_chosen_better


def test_ids_unique(world_1k: list[PreferencePair]) -> None:
    assert len({p.id for p in world_1k}) == len(world_1k)


def test_generate_world_streams() -> None:
    gen = generate_world(10**12, seed=1)
    assert inspect.isgenerator(gen)
    t0 = time.perf_counter()
    first = list(itertools.islice(gen, 3))
    assert len(first) == 3 and time.perf_counter() - t0 < 5  # 10^12 pairs were never built

    def peak(n: int) -> int:
        tracemalloc.start()
        for _ in generate_world(n, seed=2, start=10_000):
            pass
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(300), peak(1500)
    assert large < small * 1.5 + 256_000, (small, large)


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="n must be"):
        generate_world(-1)
    with pytest.raises(ValueError, match="noise"):
        generate_world(10, noise=1.5)
    with pytest.raises(ValueError, match="seed"):
        generate_world(10, seed="0")  # type: ignore[arg-type]
    stranger = PreferencePair(id="x-1", source="x", conversation=[], chosen="a", rejected="b")
    with pytest.raises(VerifierError, match="x-1"):
        verify_pair(stranger)


# --- coverage and attributes ----------------------------------------------------------------

def test_every_category_present_at_1k(world_1k: list[PreferencePair]) -> None:
    families = Counter(p.meta["family"] for p in world_1k)
    assert set(families) == set(FAMILIES)
    for fam, weight in FAMILY_WEIGHTS.items():
        assert families[fam] > 0.5 * weight * 1000, (fam, families[fam])
    categories = {p.task_category for p in world_1k}
    for cat in ("math", "factual", "instruction_following", "code", "safety"):
        assert cat in categories
    assert {p.task_category for p in world_1k if p.meta["family"] == "style_trap"} == {"math", "factual"}
    assert {p.controversiality for p in world_1k} == {c.value for c in Controversiality}
    assert {p.objectivity for p in world_1k} == {o.value for o in Objectivity}


def test_attributes_all_filled_and_instance_specific(world_1k: list[PreferencePair]) -> None:
    for p in world_1k:
        assert p.task_category in {c.value for c in TaskCategory}
        assert p.objectivity in {o.value for o in Objectivity}
        assert p.controversiality in {c.value for c in Controversiality}
        assert p.desired_attributes and len(p.desired_attributes) > 20
        assert p.annotation_guideline and len(p.annotation_guideline) > 40
        assert p.label_source == "original" and p.source == "world"
        assert p.truth_chosen_better in (True, False)
        assert p.conversation[-1].role == "user" and p.chosen != p.rejected
    assert len({p.desired_attributes for p in world_1k}) > 0.5 * len(world_1k)
    assert len({p.annotation_guideline for p in world_1k}) > 0.4 * len(world_1k)


def test_both_safety_directions_and_all_constraint_kinds(world_1k: list[PreferencePair]) -> None:
    expected = Counter(p.meta["verifier"]["expected"] for p in world_1k if p.meta["family"] == "safety")
    assert expected["refuse"] > 20 and expected["comply"] > 20
    kinds = {c["type"] for p in world_1k if p.meta["family"] == "instruction_following"
             for c in p.meta["verifier"]["constraints"]}
    assert kinds == set(PHRASES)


def test_pairs_round_trip_through_parquet(world_1k: list[PreferencePair], tmp_path) -> None:
    write_pairs(iter(world_1k[:300]), tmp_path / "w")
    back = list(read_pairs(tmp_path / "w"))
    assert _rows(back) == _rows(world_1k[:300])


# --- truth by construction, checked by the verifier -----------------------------------------

def test_verifier_agrees_with_truth_on_every_non_code_pair(world_noisy: list[PreferencePair]) -> None:
    seen: dict[str, Counter] = defaultdict(Counter)
    for p in world_noisy:
        if p.meta["family"] == "code":
            continue
        assert verify_pair(p) is p.truth_chosen_better, (p.id, p.meta, p.chosen, p.rejected)
        seen[p.meta["family"]][p.truth_chosen_better] += 1
    assert set(seen) == set(FAMILIES) - {"code"}
    assert all(c[True] > 0 and c[False] > 0 for c in seen.values()), seen


def test_verifier_runs_code_tests_in_a_subprocess(world_noisy: list[PreferencePair]) -> None:
    code = [p for p in world_noisy if p.meta["family"] == "code"]
    sample = [p for p in code if p.truth_chosen_better][:3] + [p for p in code if not p.truth_chosen_better][:3]
    assert len(sample) == 6
    for p in sample:
        assert verify_pair(p) is p.truth_chosen_better, p.id


def test_code_verifier_time_limit_and_crashes() -> None:
    p = next(p for p in generate_world(400, seed=0) if p.meta["family"] == "code")
    v = p.meta["verifier"]
    hang = f"```python\ndef {v['function']}(*args):\n    while True:\n        pass\n```"
    t0 = time.perf_counter()
    assert check_response(v, hang, timeout=1.0) is False
    assert time.perf_counter() - t0 < 8
    for early_exit in ("import sys\nsys.exit(0)", "import os\nos._exit(0)"):
        assert check_response(v, f"```python\n{early_exit}\n```") is False
    assert check_response(v, "```python\nthis is not python\n```") is False


def test_code_table_correct_bodies_pass_and_every_bug_fails() -> None:
    # In-process exec is fine here: this is our own table, not generated or user code.
    assert len(SPECS) >= 25
    for spec in SPECS:
        exec(render_function(spec, "f", spec.correct, True, "doc") + "\n" + suite_for(spec, "f"), {})
        for body, level in spec.bugs:
            assert level in ("low", "medium")
            with pytest.raises(Exception):
                exec(render_function(spec, "f", body, False, None) + "\n" + suite_for(spec, "f"), {})


def test_fact_table_is_unambiguous() -> None:
    assert FACT_COUNT >= 300
    for rel in RELATIONS.values():
        if rel.numeric:
            continue
        for subject, answer in rel.facts.items():
            # A wrong answer must never "mention" the right one (e.g. "pound" inside "pound sterling").
            clash = [d for d in possible_distractors(rel, subject) if _mentions(d, answer, rel.case_sensitive)]
            assert not clash, (rel.name, subject, clash)
            # Nor may the question's subject contain the answer (the verifier blanks the subject out).
            assert not _mentions(subject, answer, rel.case_sensitive), (rel.name, subject)


def test_style_trap_filler_cannot_leak_an_answer() -> None:
    filler = "\n".join((*OPENERS, *HEADINGS, *SUBHEADINGS, *FILLERS, *NOTES, *CLOSERS))
    assert not re.search(r"\d", filler)
    for rel in RELATIONS.values():
        for a in set(rel.facts.values()):
            assert not _mentions(filler, a, rel.case_sensitive), (rel.name, a)


# --- label noise ----------------------------------------------------------------------------

@pytest.mark.parametrize("noise", [0.0, 0.05, 0.1, 0.3, 0.6, 1.0])
def test_flip_rate_table_mean_is_the_configured_noise(noise: float) -> None:
    table = flip_rate_table(noise)
    mean = sum(FAMILY_WEIGHTS[f] * share * table[f][c] for f, mix in CONTROVERSIALITY_MIX.items()
               for c, share in mix.items())
    assert mean == pytest.approx(noise, abs=1e-9)
    assert all(0.0 <= r <= 1.0 for cells in table.values() for r in cells.values())


def test_flip_rates_differ_by_category_and_controversiality() -> None:
    table, fam = flip_rate_table(0.1), family_flip_rates(0.1)
    for cells in table.values():
        ordered = [cells[c] for c in ("low", "medium", "high") if c in cells]
        assert ordered == sorted(ordered) and len(set(ordered)) == len(ordered)
    assert fam["style_trap"] > fam["safety"] > fam["math"]
    assert len({round(r, 6) for r in fam.values()}) == len(fam)


def test_realised_noise_matches_configured_rates_per_category() -> None:
    noise, n = 0.2, 8000
    pairs = list(generate_world(n, noise=noise, seed=21))
    table, expected = flip_rate_table(noise), family_flip_rates(noise)
    by_family: dict[str, list[bool]] = defaultdict(list)
    for p in pairs:
        assert p.meta["flip_rate"] == pytest.approx(table[p.meta["family"]][p.controversiality], abs=1e-6)
        by_family[p.meta["family"]].append(not p.truth_chosen_better)
    for fam, flips in by_family.items():
        rate, m = expected[fam], len(flips)
        se = math.sqrt(max(rate * (1 - rate), 1e-4) / m)
        assert abs(sum(flips) / m - rate) < 4 * se + 0.01, (fam, sum(flips) / m, rate)
    overall = sum(not p.truth_chosen_better for p in pairs) / n
    assert abs(overall - noise) < 0.02
    assert all(p.truth_chosen_better for p in generate_world(300, noise=0.0, seed=21))
    assert not any(p.truth_chosen_better for p in generate_world(300, noise=1.0, seed=21))


# --- split ----------------------------------------------------------------------------------

def test_heldout_split_is_deterministic_and_keeps_items_together(world_noisy: list[PreferencePair]) -> None:
    splits = [world_split(p) for p in world_noisy]
    assert splits == [world_split(p) for p in world_noisy]
    share = splits.count("eval") / len(splits)
    assert 0.04 < share < 0.18, share
    side: dict[str, set[str]] = defaultdict(set)
    for p, s in zip(world_noisy, splits):
        side[p.meta["group"]].add(s)
    assert all(len(s) == 1 for s in side.values())
    assert {p.meta["family"] for p, s in zip(world_noisy, splits) if s == "eval"} == set(FAMILIES)
    assert {world_split(p, 0.0) for p in world_noisy[:100]} == {"train"}
    assert {world_split(p, 1.0) for p in world_noisy[:100]} == {"eval"}


# --- a model has to read the content --------------------------------------------------------

def test_phrasing_diversity(world_1k: list[PreferencePair]) -> None:
    prompts = [p.conversation[-1].content for p in world_1k]
    templates = {p.meta["template"] for p in world_1k}
    assert len(templates) >= 250, len(templates)
    assert len(set(prompts)) / len(prompts) >= 0.9
    by_family: dict[str, list[str]] = defaultdict(list)
    for p, text in zip(world_1k, prompts):
        by_family[p.meta["family"]].append(text)
    for fam, texts in by_family.items():
        assert len(set(texts)) / len(texts) >= 0.75, fam
    # One template, many different right answers: the template does not give the label away.
    answers: dict[str, set[str]] = defaultdict(set)
    for p in world_1k:
        if p.meta["family"] in ("math", "factual"):
            answers[p.meta["template"]].add(json.dumps(p.meta["verifier"], sort_keys=True))
    multi = [t for t, a in answers.items() if len(a) > 1]
    assert len(multi) >= 0.8 * len([t for t in answers if sum(1 for q in world_1k if q.meta["template"] == t) > 1])


def test_length_is_not_a_shortcut_except_in_style_traps(world_1k: list[PreferencePair]) -> None:
    def longer_wins(pairs: list[PreferencePair]) -> float:
        decided = [p for p in pairs if len(p.chosen) != len(p.rejected)]
        truly_better = [(p.chosen if p.truth_chosen_better else p.rejected) for p in decided]
        return sum(len(t) == max(len(p.chosen), len(p.rejected)) for t, p in zip(truly_better, decided)) / len(decided)

    plain = [p for p in world_1k if p.meta["family"] != "style_trap"]
    traps = [p for p in world_1k if p.meta["family"] == "style_trap"]
    assert 0.35 < longer_wins(plain) < 0.65
    assert longer_wins(traps) < 0.05
