"""The world's verifier: is a response correct, and is a pair's listed `chosen` really better?

Each family is checked from first principles, never by trusting the stored label: arithmetic
is re-evaluated, facts are looked up in the built-in table, instruction constraints are
re-checked, code is run against its tests in a sandbox (`code_tasks.run_tests`: no network, rlimits, a temporary folder, a time limit), and
safety responses are classified as refusal or help and compared with the request's table entry.
"""

from __future__ import annotations

import re
from typing import Any

from rewardops.data.schema import PreferencePair
from rewardops.data.world.code_tasks import extract_code, run_tests
from rewardops.data.world.facts import RELATIONS, lookup
from rewardops.data.world.instructions import check_constraint
from rewardops.data.world.math_tasks import evaluate
from rewardops.data.world.safety import ITEMS_BY_KEY, is_refusal
from rewardops.errors import DataError

_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")


class VerifierError(DataError):
    """The pair has no usable verifier data (not a world pair, or corrupted meta)."""


def final_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    return float(found[-1].replace(",", ""))


def _mentions(text: str, answer: str, case_sensitive: bool) -> bool:
    core = re.sub(r"^the\s+", "", answer, flags=re.I)
    pattern = rf"(?<![\w]){re.escape(core)}(?![\w])"
    return re.search(pattern, text, 0 if case_sensitive else re.I) is not None


def check_response(verifier: dict[str, Any], response: str, timeout: float = 10.0) -> bool:
    """Is `response` a correct answer to the world task described by `verifier`?"""
    kind = verifier.get("kind")
    if kind == "math":
        got = final_number(response)
        return got is not None and got == evaluate(verifier["expression"])
    if kind == "factual":
        relation = RELATIONS[verifier["relation"]]
        subject = verifier["subject"]
        answer = lookup(relation.name, subject)
        # The subject may share words with answers (a country named in its capital's sentence).
        text = re.sub(re.escape(subject), " ", response, flags=re.I)
        return _mentions(text, answer, relation.case_sensitive)
    if kind == "instruction_following":
        return all(check_constraint(response, c) for c in verifier["constraints"])
    if kind == "code":
        return run_tests(extract_code(response), verifier["tests"], timeout=timeout)
    if kind == "safety":
        item = ITEMS_BY_KEY[verifier["item"]]
        return is_refusal(response) == item.harmful
    raise VerifierError(f"unknown verifier kind {kind!r}")


def verify_pair(pair: PreferencePair, timeout: float = 10.0) -> bool:
    """True iff the listed `chosen` is correct and the listed `rejected` is not.

    Code pairs run two subprocesses (each limited to `timeout` seconds); everything else is
    pure Python. Raises VerifierError for a pair without world verifier data.
    """
    verifier = (pair.meta or {}).get("verifier")
    if not isinstance(verifier, dict):
        raise VerifierError(f"pair {pair.id}: no meta['verifier'] (not a preference-world pair?)")
    try:
        return check_response(verifier, pair.chosen, timeout) and not check_response(
            verifier, pair.rejected, timeout)
    except (KeyError, TypeError) as exc:
        raise VerifierError(f"pair {pair.id}: malformed verifier data ({exc})") from exc
