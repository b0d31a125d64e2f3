"""Code: a correct vs a buggy Python function, judged by running the tests in a subprocess."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import textwrap
from random import Random

from rewardops.data.schema import Objectivity, TaskCategory
from rewardops.data.world.code_specs import SPECS, CodeSpec
from rewardops.data.world.common import Draft, cap_first, pick, pick_index, spin

BUGS_BY_LEVEL: dict[str, list[tuple[CodeSpec, str]]] = {"low": [], "medium": []}
for _spec in SPECS:
    for _body, _level in _spec.bugs:
        BUGS_BY_LEVEL[_level].append((_spec, _body))

PROMPTS = (
    "Write a Python function `{fn}({params})` that {desc}.",
    "Implement `{fn}` in Python. It [should|must] {verb_desc}.",
    "Can you [give me|write] a Python function named {fn} which {desc}?",
    "I need a [small|little] helper `{fn}({params})` that {desc}. Python, please.",
    "[Please write|Write] {fn}({params}) in Python: it {desc}.",
    "Python question: how would you write a function {fn} that {desc}?",
)
INTROS = ("Here's an implementation:", "Here is one way to do it:", "Sure:", "This should work:", "")
_CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def _verbify(desc: str) -> str:
    """'returns the sum' -> 'return the sum' (for 'it should ...')."""
    first, _, rest = desc.partition(" ")
    if first.endswith("es") and first[:-2].endswith(("ss", "sh", "ch", "x")):
        first = first[:-2]
    elif first.endswith("s"):
        first = first[:-1]
    return f"{first} {rest}"


def render_function(spec: CodeSpec, fn: str, body: str, typed: bool, docstring: str | None) -> str:
    sig = f"def {fn}({spec.typed if typed else spec.params + '):'}"
    if typed:
        sig += ":"
    lines = [sig]
    if docstring:
        lines.append(f'    """{cap_first(docstring)}."""')
    lines.append(textwrap.indent(body, "    "))
    return "\n".join(lines)


def suite_for(spec: CodeSpec, fn: str) -> str:
    return "\n".join(t.replace("{fn}", fn) for t in spec.tests)


def extract_code(response: str) -> str:
    m = _CODE_BLOCK.search(response)
    return m.group(1) if m else response


def run_tests(code: str, tests: str, timeout: float = 10.0) -> bool:
    """Run `code` then `tests` in a fresh, isolated interpreter; True iff every test ran and passed in time.

    A one-off token printed after the last test proves the tests actually ran: code that
    exits early with status 0 (sys.exit(0), os._exit(0)) does not pass.
    """
    token = secrets.token_hex(16)
    program = f"{code}\n\n{tests}\nprint({token!r})\n"
    try:
        done = subprocess.run([sys.executable, "-I", "-S", "-c", program], capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and token.encode() in done.stdout


def build_code(rng: Random, controversiality: str) -> Draft:
    spec, bug = pick(rng, BUGS_BY_LEVEL[controversiality if controversiality in BUGS_BY_LEVEL else "low"])
    fn = pick(rng, spec.names)
    desc = pick(rng, spec.descriptions)
    typed = rng.random() < 0.5
    docstring = desc if rng.random() < 0.5 else None
    ti = pick_index(rng, PROMPTS)
    prompt = spin(rng, PROMPTS[ti].format(fn=fn, params=spec.params, desc=desc, verb_desc=_verbify(desc)))
    intro = pick(rng, INTROS)

    def respond(body: str) -> str:
        code = render_function(spec, fn, body, typed, docstring)
        return (intro + "\n\n" if intro else "") + f"```python\n{code}\n```"

    return Draft(
        prompt=prompt,
        chosen=respond(spec.correct),
        rejected=respond(bug),
        task_category=TaskCategory.CODE.value,
        objectivity=Objectivity.OBJECTIVE.value,
        controversiality=controversiality,
        desired_attributes=cap_first(f"a correct Python function {fn} that {desc}, including edge cases; readable code"),
        annotation_guideline=(
            f"Trace or run both versions of {fn} on typical inputs and edge cases (empty input, boundaries, "
            "negative or repeated values where they apply). The implementation that is correct on all of them "
            "wins; style and length do not matter if the code is wrong."),
        template=f"code/{spec.id}/{ti}",
        group=f"code:{spec.id}",
        verifier={"kind": "code", "function": fn, "tests": suite_for(spec, fn)},
    )
