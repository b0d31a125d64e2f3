"""Factual questions over the built-in fact table: the right answer vs a plausible wrong one."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass
from random import Random

from rewardops.data.schema import Objectivity, TaskCategory
from rewardops.data.world.common import Draft, cap_first, pick, pick_index, spin
from rewardops.data.world.facts import RELATIONS, Relation

RELATION_NOUN = {
    "capital": "capital city", "element_symbol": "chemical symbol", "atomic_number": "atomic number",
    "event_year": "year", "count": "number", "author": "author", "painter": "painter",
    "currency": "currency", "misc": "answer",
}
# Sample facts uniformly: relation by its share of the table, then a subject.
_REL_NAMES = list(RELATIONS)
_REL_CUM = list(itertools.accumulate(len(RELATIONS[r].facts) for r in _REL_NAMES))
_SUBJECTS = {name: list(rel.facts) for name, rel in RELATIONS.items()}
_ANSWERS = {name: sorted(set(rel.facts.values())) for name, rel in RELATIONS.items()}

CONFIDENT = (
    "I'm completely sure about this.", "This is a well-known fact.", "You can rely on that.",
    "Any reference book will confirm this.", "There is no doubt about it.",
    "This is one of those facts worth remembering.",
)
PREFIXES = ("", "", "", "Hey! ", "Quick one: ", "Settle a debate for me. ", "For a quiz I'm writing: ")


@dataclass
class FactQuestion:
    relation: Relation
    subject: str
    answer: str
    distractor: str
    prompt: str
    template: str


def _fill(template: str, subject: str, answer: str) -> str:
    return template.format(s=subject, S=cap_first(subject), a=answer, A=cap_first(answer))


def _distractor(rng: Random, rel: Relation, subject: str, answer: str) -> str:
    if subject in rel.distractors:
        return pick(rng, rel.distractors[subject])
    if rel.numeric:
        v = int(answer)
        if rel.name == "event_year":
            options = [v + d for d in (-15, -10, -5, -3, -2, -1, 1, 2, 3, 5, 10, 15)]
        elif rel.name == "atomic_number":
            options = [v + d for d in (-3, -2, -1, 1, 2, 3) if v + d > 0]
        else:
            options = [x for x in (v - 1, v + 1, v * 2, v // 2, v + 10, v - 10, v * 10) if x > 0 and x != v]
        return str(pick(rng, options))
    answers = _ANSWERS[rel.name]
    while True:
        d = pick(rng, answers)
        if d.casefold() != answer.casefold():
            return d


def possible_distractors(rel: Relation, subject: str) -> list[str]:
    """Every non-numeric wrong answer `_distractor` can pick for this fact (for table checks)."""
    if subject in rel.distractors:
        return list(rel.distractors[subject])
    answer = rel.facts[subject]
    return [d for d in _ANSWERS[rel.name] if d.casefold() != answer.casefold()]


def make_question(rng: Random) -> FactQuestion:
    k = bisect.bisect_right(_REL_CUM, int(rng.random() * _REL_CUM[-1]))
    rel = RELATIONS[_REL_NAMES[k]]
    subject = pick(rng, _SUBJECTS[rel.name])
    answer = rel.facts[subject]
    qi = pick_index(rng, rel.questions)
    prompt = spin(rng, pick(rng, PREFIXES) + _fill(rel.questions[qi], subject, answer))
    return FactQuestion(rel, subject, answer, _distractor(rng, rel, subject, answer), prompt,
                        f"factual/{rel.name}/{qi}")


def answer_text(q: FactQuestion, value: str, template_index: int) -> str:
    return cap_first(_fill(q.relation.answers[template_index % len(q.relation.answers)], q.subject, value))


def fact_verifier(q: FactQuestion) -> dict[str, str]:
    return {"kind": "factual", "relation": q.relation.name, "subject": q.subject, "expected": q.answer}


def build_factual(rng: Random, controversiality: str) -> Draft:
    q = make_question(rng)
    ti = pick_index(rng, q.relation.answers)
    chosen, rejected = answer_text(q, q.answer, ti), answer_text(q, q.distractor, ti)
    if controversiality == "medium":
        # Terse and right against fuller, confident and wrong.
        chosen = cap_first(q.answer) + "."
        rejected = answer_text(q, q.distractor, ti) + " " + pick(rng, CONFIDENT)
    elif rng.random() < 0.3:
        extra = " " + pick(rng, CONFIDENT)
        chosen, rejected = chosen + extra, rejected + extra
    noun = RELATION_NOUN[q.relation.name]
    return Draft(
        prompt=q.prompt,
        chosen=chosen,
        rejected=rejected,
        task_category=TaskCategory.FACTUAL.value,
        objectivity=Objectivity.OBJECTIVE.value,
        controversiality=controversiality,
        desired_attributes=cap_first(f"the correct {noun} for {q.subject}, stated plainly and without invented detail"),
        annotation_guideline=(
            f"Check the {noun} for {q.subject} against a reliable reference. The response that gives the "
            "correct answer wins even if it is shorter; confidence or extra wording does not make a wrong "
            "answer better."),
        template=q.template,
        group=f"fact:{q.relation.name}:{q.subject}",
        verifier=fact_verifier(q),
    )
