"""Arithmetic and word problems: right vs wrong final answer, with worked steps.

The truth is an integer expression (stored in the verifier data) that `verify` re-evaluates
with a small AST evaluator. The wrong answer comes from one plausible mistake carried
through the remaining steps: an arithmetic slip, a wrong operation, or ignoring precedence.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from random import Random
from typing import Callable

from rewardops.data.schema import Objectivity, TaskCategory
from rewardops.data.world.common import NAMES, Draft, cap_first, pick, pick_index, spin

ITEMS = (
    "apples", "stickers", "marbles", "books", "pencils", "stamps", "cookies", "shells",
    "cards", "balloons", "coins", "oranges", "toy cars", "beads", "cupcakes", "postcards",
)
GOODS = ("loaves", "muffins", "pies", "croissants", "bagels", "rolls")
VEHICLES = ("train", "car", "bus", "truck", "ferry", "cyclist")

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.Div: ast.Mult}


class MathError(ValueError):
    pass


@functools.lru_cache(maxsize=64)  # a pair re-reads its own expression; keep memory flat
def _parse(expression: str) -> ast.expr:
    return ast.parse(expression, mode="eval").body


def evaluate(expression: str) -> int:
    """Exact integer value of +, -, *, / and parentheses over integers; anything else raises."""
    try:
        return _eval(_parse(expression))
    except SyntaxError as exc:
        raise MathError(f"not an arithmetic expression: {expression!r}") from exc


def _eval(node: ast.AST) -> int:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_eval(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = _eval(node.left), _eval(node.right)
        return _apply(type(node.op), a, b)
    raise MathError(f"unsupported expression node {ast.dump(node)[:60]}")


def _apply(op: type, a: int, b: int) -> int:
    if op is ast.Add:
        return a + b
    if op is ast.Sub:
        return a - b
    if op is ast.Mult:
        return a * b
    if b == 0 or a % b:
        raise MathError(f"{a} / {b} is not an exact integer division")
    return a // b


@dataclass
class Step:
    left: int
    op: str
    right: int
    value: int


def worked_steps(expression: str, mistake: tuple[str, int, int] | None = None) -> list[Step]:
    """Post-order steps of the expression; `mistake` = (kind, step index, delta) corrupts one step."""
    steps: list[Step] = []

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp):
            a, b = walk(node.left), walk(node.right)
            op = type(node.op)
            i = len(steps)
            if mistake and mistake[1] == i and mistake[0] == "op":
                op = _SWAP[op]
            try:
                v = _apply(op, a, b)
            except MathError:
                v = a * b if op is ast.Div else a + b
            if mistake and mistake[1] == i and mistake[0] == "slip":
                v += mistake[2]
            steps.append(Step(a, _OPS[op], b, v))
            return v
        return _eval(node)

    walk(_parse(expression))
    return steps


def left_to_right_steps(values: list[int], ops: list[str]) -> list[Step]:
    """The precedence mistake: evaluate a flat expression strictly left to right."""
    steps, acc = [], values[0]
    for op, v in zip(ops, values[1:]):
        nxt = {"+": acc + v, "-": acc - v, "*": acc * v}[op]
        steps.append(Step(acc, op, v, nxt))
        acc = nxt
    return steps


def wrong_steps(rng: Random, expression: str, truth: int, nonneg: bool) -> tuple[list[Step], str]:
    n_steps = len(worked_steps(expression))
    for _ in range(20):
        kind = "slip" if rng.random() < 0.55 else "op"
        i = int(rng.random() * n_steps)
        delta = pick(rng, (-10, -2, -1, 1, 1, 2, 10))
        steps = worked_steps(expression, (kind, i, delta))
        v = steps[-1].value
        if v != truth and (v >= 0 or not nonneg):
            return steps, kind
    steps = worked_steps(expression, ("slip", n_steps - 1, 1))
    return steps, "slip"


# --- rendering ---------------------------------------------------------------------------

def _sym(op: str, style: int) -> str:
    if op == "*":
        return ("×", "*", "x")[style]
    if op == "/":
        return ("÷", "/", "/")[style]
    return op


def render_steps(steps: list[Step], fmt: int, sym: int, final: str) -> str:
    lines = [f"{s.left} {_sym(s.op, sym)} {s.right} = {s.value}" for s in steps]
    if fmt == 0:
        body = "\n".join(f"Step {i + 1}: {ln}" for i, ln in enumerate(lines))
        return f"{body}\n{final}"
    if fmt == 1:
        parts = []
        for i, ln in enumerate(lines):
            lead = "First, " if i == 0 else ("Finally, " if i == len(lines) - 1 else "Then ")
            parts.append(f"{lead}{ln}.")
        return " ".join(parts) + " " + final
    if fmt == 2:
        return "Let's work it out:\n" + "\n".join(lines) + f"\n\n{final}"
    return final


GENERIC_FINALS = ("The answer is {ans}.", "Answer: {ans}", "So the result is {ans}.")


def final_line(choice: int, value: int, sentence: str | None) -> str:
    options = GENERIC_FINALS + ((sentence,) * 3 if sentence else ())
    return options[choice % len(options)].format(ans=value)


# --- problems ------------------------------------------------------------------------------

@dataclass
class Problem:
    prompt: str
    expression: str
    answer_sentence: str | None  # "{ans}" is the final value
    template: str
    topic: str  # short description for the attributes
    nonneg: bool
    flat: tuple[list[int], list[str]] | None = None  # for the precedence mistake


def _r(rng: Random, lo: int, hi: int) -> int:
    return lo + int(rng.random() * (hi - lo + 1))


def _word_problems() -> list[Callable[[Random], tuple[str, str, str, str]]]:
    """Each returns (prompt template, expression, answer sentence, topic); prompts get spun."""

    def w0(rng):
        n, m, it = pick(rng, NAMES), pick(rng, NAMES), pick(rng, ITEMS)
        a, b = _r(rng, 5, 60), _r(rng, 2, 40)
        c = _r(rng, 1, a + b - 1)
        return (f"{n} has {a} {it}. {n} [buys|gets|picks up] {b} more and then [gives|hands] {c} to {m}. "
                f"How many {it} does {n} have now?", f"{a} + {b} - {c}", f"{n} now has {{ans}} {it}.",
                f"{n}'s {it}")

    def w1(rng):
        it = pick(rng, ITEMS)
        a, b = _r(rng, 3, 25), _r(rng, 3, 24)
        return (f"There are {a} [boxes|bags|crates|jars] with {b} {it} in each. How many {it} are there [in total|altogether]?",
                f"{a} * {b}", f"There are {{ans}} {it} in total.", f"boxes of {it}")

    def w2(rng):
        n, it = pick(rng, NAMES), pick(rng, ITEMS)
        k, q = _r(rng, 2, 12), _r(rng, 2, 20)
        return (f"{n} [shares|splits|divides] {k * q} {it} equally among {k} friends. How many {it} does each friend [get|receive]?",
                f"{k * q} / {k}", f"Each friend gets {{ans}} {it}.", f"sharing {it}")

    def w3(rng):
        v, h, veh = _r(rng, 4, 120), _r(rng, 2, 9), pick(rng, VEHICLES)
        return (f"A {veh} travels at {v} [km per hour|kilometres per hour|km/h] for {h} hours. How [far|many kilometres] does it [go|travel]?",
                f"{v} * {h}", "It travels {ans} km.", f"a {veh}'s distance")

    def w4(rng):
        n, it = pick(rng, NAMES), pick(rng, ITEMS)
        q, p = _r(rng, 2, 9), _r(rng, 1, 9)
        bill = next(b for b in (10, 20, 50, 100) if b > q * p)
        return (f"{n} buys {q} {it} at ${p} each and pays with a ${bill} [note|bill]. How much change does {n} [get|receive]?",
                f"{bill} - {q} * {p}", f"{n} gets ${{ans}} in change.", f"{n}'s change")

    def w5(rng):
        r, c = _r(rng, 3, 9), _r(rng, 3, 8)
        e = _r(rng, 1, r * c - 1)
        return (f"A [classroom|lecture hall|hall] has {r} rows of {c} [desks|seats], and {e} of them are empty. How many [students|people] are seated?",
                f"{r} * {c} - {e}", "{ans} students are seated.", "seats in a classroom")

    def w6(rng):
        n = pick(rng, NAMES)
        p, d, x = _r(rng, 5, 40), _r(rng, 2, 14), _r(rng, 1, 30)
        return (f"{n} reads {p} pages [a|per|each] day for {d} days and then {x} extra pages on the weekend. How many pages does {n} read [in total|altogether]?",
                f"{p} * {d} + {x}", f"{n} reads {{ans}} pages.", f"{n}'s reading")

    def w7(rng):
        g = pick(rng, GOODS)
        a, b = _r(rng, 10, 90), _r(rng, 5, 60)
        c = _r(rng, 1, a + b - 1)
        return (f"A bakery [makes|bakes] {a} {g} in the morning and {b} in the afternoon, then sells {c}. How many {g} are left?",
                f"{a} + {b} - {c}", f"{{ans}} {g} are left.", f"a bakery's {g}")

    def w8(rng):
        n, m = pick(rng, NAMES), pick(rng, NAMES)
        a, k, y = _r(rng, 2, 15), _r(rng, 2, 5), _r(rng, 1, 20)
        if m == n:
            m = NAMES[(NAMES.index(n) + 1) % len(NAMES)]
        return (f"{n} is {a} years old. {m} is {k} times as old as {n}. How old will {m} be in {y} years?",
                f"{a} * {k} + {y}", f"{m} will be {{ans}}.", "ages")

    def w9(rng):
        r, p = _r(rng, 3, 12), _r(rng, 4, 15)
        d = _r(rng, 1, r * p - 1)
        return (f"A garden has {r} rows with {p} [plants|tomato plants|rose bushes] [each|in each row]. {d} plants [die|wilt]. How many plants [remain|are left]?",
                f"{r} * {p} - {d}", "{ans} plants remain.", "plants in a garden")

    def w10(rng):
        n = pick(rng, NAMES)
        s, w = _r(rng, 5, 50), _r(rng, 2, 12)
        x = _r(rng, 1, s * w - 1)
        return (f"{n} saves ${s} [per|every|each] week for {w} weeks and then spends ${x} on a [gift|game|jacket]. How much money does {n} have left?",
                f"{s} * {w} - {x}", f"{n} has ${{ans}} left.", f"{n}'s savings")

    def w11(rng):
        c = _r(rng, 50, 500)
        a = _r(rng, 1, c // 2)
        b = _r(rng, 1, c - a - 1)
        return (f"A tank holds {c} litres. It [is filled|gets filled] with {a} litres, then {b} more litres are added. How many more litres are needed to fill it?",
                f"{c} - ({a} + {b})", "{ans} more litres are needed.", "filling a tank")

    def w12(rng):
        n = pick(rng, NAMES)
        a, b, c = _r(rng, 2, 40), _r(rng, 2, 40), _r(rng, 2, 40)
        return (f"{n} scored {a}, {b} and {c} points in three [games|matches|rounds]. What is {n}'s total [score|number of points]?",
                f"{a} + {b} + {c}", f"{n} scored {{ans}} points in total.", f"{n}'s points")

    def w13(rng):
        w, h = _r(rng, 2, 40), _r(rng, 2, 40)
        return (f"A rectangle is {w} cm wide and {h} cm long. What is its perimeter in [cm|centimetres]?",
                f"2 * ({w} + {h})", "The perimeter is {ans} cm.", "a rectangle's perimeter")

    def w14(rng):
        n, it = pick(rng, NAMES), pick(rng, ITEMS)
        a, b = _r(rng, 3, 12), _r(rng, 3, 12)
        c = _r(rng, 1, a * b - 1)
        return (f"{n} packs {a} [bags|boxes] of {b} {it} each, but {c} {it} [get lost|are damaged]. How many {it} are still [usable|there]?",
                f"{a} * {b} - {c}", f"{{ans}} {it} are still there.", f"{n}'s {it}")

    return [w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10, w11, w12, w13, w14]


WORD_PROBLEMS = _word_problems()

ARITH_VERBS = "[Compute|Calculate|Work out|Evaluate|Find|Solve]"
ARITH_PATTERNS = (
    # (pattern over a,b,c,d; flat values/ops for the precedence mistake or None)
    ("{a} + {b}", None), ("{a} - {b}", None), ("{a} * {b}", None),
    ("{a} + {b} * {c}", "+*"), ("{a} * {b} - {c}", "*-"), ("{a} - {b} * {c}", "-*"),
    ("{a} * {b} + {c} * {d}", "*+*"), ("({a} + {b}) * {c}", None), ("{a} * ({b} - {c})", None),
    ("{a} - {b} + {c}", None), ("{a} + {b} - {c} * {d}", "+-*"),
)
PREFIXES = ("", "", "", "Quick maths question: ", "Can you solve this? ", "Homework help: ", "Please help: ")
SUFFIXES = ("", "", " Show your work.", " Explain briefly.", " Give the final number.", " Walk me through it.")


def make_problem(rng: Random) -> Problem:
    if rng.random() < 0.35:
        i = pick_index(rng, ARITH_PATTERNS)
        pattern, flat = ARITH_PATTERNS[i]
        big = pattern.count("{") <= 2
        vals = {k: _r(rng, 2, 999 if big and "*" not in pattern else 30) for k in "abcd"}
        expression = pattern.format(**vals)
        sym = pick_index(rng, ("×", "*", "x"))
        shown = expression.replace("*", ("×", "*", "x")[sym])
        tmpl = pick_index(rng, (0, 1, 2))
        prompt = (f"{ARITH_VERBS} {shown}.", f"[What is|What's|How much is] {shown}?", f"What do you get for {shown}?")[tmpl]
        flat_data = None
        if flat:
            names = [c for c in "abcd" if "{" + c + "}" in pattern]
            flat_data = ([vals[c] for c in names], list(flat))
        return Problem(spin(rng, pick(rng, PREFIXES) + prompt + pick(rng, SUFFIXES)), expression, None,
                       f"math/arith/{i:02d}.{tmpl}", f"the expression {shown}", False, flat_data)
    i = pick_index(rng, WORD_PROBLEMS)
    text, expression, sentence, topic = WORD_PROBLEMS[i](rng)
    prompt = spin(rng, pick(rng, PREFIXES) + text + pick(rng, SUFFIXES))
    return Problem(prompt, expression, sentence, f"math/word/{i:02d}", f"the word problem about {topic}", True)


def solve_pair(rng: Random, problem: Problem) -> tuple[list[Step], list[Step], int, int, str]:
    truth = evaluate(problem.expression)
    right = worked_steps(problem.expression)
    if problem.flat and rng.random() < 0.5:
        wrong = left_to_right_steps(*problem.flat)
        if wrong[-1].value != truth:
            return right, wrong, truth, wrong[-1].value, "precedence"
    wrong, kind = wrong_steps(rng, problem.expression, truth, problem.nonneg)
    return right, wrong, truth, wrong[-1].value, kind


def build_math(rng: Random, controversiality: str) -> Draft:
    problem = make_problem(rng)
    right, wrong, truth, bad, mistake = solve_pair(rng, problem)
    sym = pick_index(rng, ("×", "*", "x"))
    fmt = pick_index(rng, (0, 1, 2, 3))
    fin = pick_index(rng, (0, 1, 2, 3, 4, 5))

    def final(v: int) -> str:
        return final_line(fin, v, problem.answer_sentence)

    if controversiality == "medium":
        # A terse right answer against a thorough-looking one with a mistake in it.
        chosen = final(truth)
        rejected = render_steps(wrong, fmt % 3, sym, final(bad))
    else:
        chosen = render_steps(right, fmt, sym, final(truth))
        rejected = render_steps(wrong, fmt, sym, final(bad))
    return Draft(
        prompt=problem.prompt,
        chosen=chosen,
        rejected=rejected,
        task_category=TaskCategory.MATH.value,
        objectivity=Objectivity.OBJECTIVE.value,
        controversiality=controversiality,
        desired_attributes=cap_first(
            f"a correct final answer to {problem.topic}, with arithmetic steps that each check out; "
            "clear and no longer than needed"),
        annotation_guideline=(
            f"Recompute {problem.topic} yourself ({len(right)} operation{'s' if len(right) > 1 else ''}). "
            "Prefer the response whose final number is correct; a wrong final answer loses regardless of "
            "length, detail or formatting. Check each intermediate step for slips."),
        template=problem.template,
        group=f"math:{problem.expression}",
        verifier={"kind": "math", "expression": problem.expression, "mistake": mistake},
    )
