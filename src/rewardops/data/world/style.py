"""Style traps (RM-Bench's hard setting): a correct, plain, short answer vs a wrong answer
dressed up as a long, confident, markdown-heavy one. The question is a math or factual one,
and the verifier checks it exactly as for those families."""

from __future__ import annotations

from random import Random

from rewardops.data.schema import Objectivity, TaskCategory
from rewardops.data.world.common import Draft, cap_first, pick
from rewardops.data.world.factual import RELATION_NOUN, answer_text, fact_verifier, make_question
from rewardops.data.world.math_tasks import final_line, make_problem, render_steps, solve_pair

# Filler must never contain digits or an answer word from the fact table (a test checks).
OPENERS = ("Great question!", "Excellent question!", "Let's dive in!", "Happy to help with this one!",
           "This is a classic question.", "Let's break this down carefully.")
HEADINGS = ("## Answer", "## Solution", "## Quick Overview", "## Detailed Explanation", "## Breakdown")
SUBHEADINGS = ("### Key Points", "### Step-by-Step", "### Why This Matters", "### Summary", "### Details")
FILLERS = (
    "It is worth taking a moment to think about this carefully.",
    "This comes up surprisingly often, so it is good to be precise.",
    "Many people get this wrong, so let's be thorough.",
    "Understanding the reasoning helps you remember the result.",
    "Here is a clear and well-structured explanation.",
    "Context always helps when answering questions like this.",
)
NOTES = ("> **Note:** Always double-check your sources.", "> **Tip:** Writing things down helps avoid mistakes.",
         "> **Remember:** Accuracy matters!", "> 💡 **Pro tip:** Keep this in mind for next time.")
CLOSERS = ("✅ Hope this helps!", "🎉 Feel free to ask if you have more questions!", "**In summary**, that's the answer.",
           "Let me know if you'd like more detail! 😊")


def _decorate(rng: Random, body: list[str], final: str, heavy: bool) -> str:
    parts = [pick(rng, OPENERS), "", pick(rng, HEADINGS), "", pick(rng, FILLERS)]
    parts += ["", pick(rng, SUBHEADINGS), ""] + body
    if heavy:
        parts += ["", pick(rng, NOTES), "", "---", "", pick(rng, SUBHEADINGS), "", pick(rng, FILLERS)]
    parts += ["", final]
    if heavy:
        parts += ["", pick(rng, CLOSERS)]
    return "\n".join(parts)


def _math(rng: Random, heavy: bool) -> Draft:
    problem = make_problem(rng)
    right, wrong, truth, bad, mistake = solve_pair(rng, problem)
    fin = int(rng.random() * 6)
    chosen = render_steps(right, 1, 0, final_line(fin, truth, problem.answer_sentence)) if rng.random() < 0.4 \
        else final_line(fin, truth, problem.answer_sentence)
    body = [f"- **Step {i + 1}:** {s.left} {'×' if s.op == '*' else s.op} {s.right} = **{s.value}**"
            for i, s in enumerate(wrong)]
    rejected = _decorate(rng, body, f"**Final answer: {bad}**", heavy)
    return Draft(
        prompt=problem.prompt, chosen=chosen, rejected=rejected,
        task_category=TaskCategory.MATH.value, objectivity=Objectivity.OBJECTIVE.value, controversiality="",
        desired_attributes=cap_first(f"the correct final answer to {problem.topic}; plain and concise is fine"),
        annotation_guideline=(
            f"Recompute {problem.topic}. Correctness decides: prefer the response with the right final number even "
            "if it is short and unformatted. Headings, bold text, emoji and length must not earn credit."),
        template=f"style_trap/{problem.template}", group=f"math:{problem.expression}",
        verifier={"kind": "math", "expression": problem.expression, "mistake": mistake},
    )


def _factual(rng: Random, heavy: bool) -> Draft:
    q = make_question(rng)
    chosen = answer_text(q, q.answer, int(rng.random() * 4))
    body = [f"- **Answer:** {q.distractor}", "- **Confidence:** Very high", f"- **Category:** {RELATION_NOUN[q.relation.name].title()}"]
    rejected = _decorate(rng, body, f"**In short: {answer_text(q, q.distractor, 0)}**", heavy)
    noun = RELATION_NOUN[q.relation.name]
    return Draft(
        prompt=q.prompt, chosen=chosen, rejected=rejected,
        task_category=TaskCategory.FACTUAL.value, objectivity=Objectivity.OBJECTIVE.value, controversiality="",
        desired_attributes=cap_first(f"the correct {noun} for {q.subject}; a short plain answer is ideal"),
        annotation_guideline=(
            f"Check the {noun} for {q.subject} against a reliable reference. Correctness decides; do not reward "
            "markdown structure, emoji, confident tone or length."),
        template=f"style_trap/{q.template}", group=f"fact:{q.relation.name}:{q.subject}",
        verifier=fact_verifier(q),
    )


def build_style_trap(rng: Random, controversiality: str) -> Draft:
    heavy = controversiality == "high"
    draft = _math(rng, heavy) if rng.random() < 0.5 else _factual(rng, heavy)
    draft.controversiality = controversiality
    return draft
