"""The five preference attributes (paper §3.2, App. D), filled by an LLM through a validated JSON schema.

A malformed answer (not JSON, missing or extra keys, a value outside its enum, empty text) is
retried with the validation errors fed back; after `max_attempts` the pair is marked
unannotated in its lineage and its attributes are left empty, never guessed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rewardops.curation.fencing import DATA_RULES, fence, render_conversation
from rewardops.curation.llm.base import ChatBackend, ChatRequest
from rewardops.data.schema import ATTRIBUTE_FIELDS, Controversiality, Objectivity, PreferencePair, TaskCategory

MAX_TEXT = 2000

ATTRIBUTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task_category": {"type": "string", "enum": [c.value for c in TaskCategory]},
        "objectivity": {"type": "string", "enum": [c.value for c in Objectivity]},
        "controversiality": {"type": "string", "enum": [c.value for c in Controversiality]},
        "desired_attributes": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        "annotation_guideline": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
    },
    "required": list(ATTRIBUTE_FIELDS),
    "additionalProperties": False,
}

# What the server is asked to enforce: the schema without string-length keywords, which strict
# structured output on some hosted APIs rejects; lengths are checked here, after the answer.
_WIRE_SCHEMA = {**ATTRIBUTE_SCHEMA, "properties": {
    k: {kk: vv for kk, vv in v.items() if kk not in ("minLength", "maxLength")} for k, v in ATTRIBUTE_SCHEMA["properties"].items()
}}
RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "preference_attributes", "schema": _WIRE_SCHEMA, "strict": True},
}

SYSTEM_PROMPT = (
    "You annotate preference data for reward-model training. For the conversation and its two "
    "candidate responses, describe the task, not which response wins.\n"
    "Return only one JSON object with exactly these keys:\n"
    f"- task_category: one of {[c.value for c in TaskCategory]}\n"
    f"- objectivity: one of {[c.value for c in Objectivity]} (objective = a verifiable right answer exists)\n"
    f"- controversiality: one of {[c.value for c in Controversiality]} (how much reasonable people would disagree)\n"
    "- desired_attributes: one or two sentences on the qualities a good response must have\n"
    "- annotation_guideline: instance-specific criteria an annotator should use to pick the better response\n"
    + DATA_RULES
)


def extract_json(text: str) -> Any:
    """The JSON object in an answer, tolerating a ```json fence or prose around one object."""
    text = text.strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    if fenced:
        text = fenced.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start >= 0 and end > start:
            return json.loads(text[start : end + 1])
        raise


def validate_attributes(obj: Any) -> tuple[dict[str, str] | None, list[str]]:
    """(the attributes, []) when `obj` satisfies ATTRIBUTE_SCHEMA, else (None, errors)."""
    if not isinstance(obj, dict):
        return None, [f"expected a JSON object, got {type(obj).__name__}"]
    errors = []
    props = ATTRIBUTE_SCHEMA["properties"]
    for key in ATTRIBUTE_SCHEMA["required"]:
        if key not in obj:
            errors.append(f"missing key {key!r}")
    for key, value in obj.items():
        if key not in props:
            errors.append(f"unexpected key {key!r}")
            continue
        spec = props[key]
        if not isinstance(value, str):
            errors.append(f"{key}: expected a string, got {type(value).__name__}")
        elif "enum" in spec and value not in spec["enum"]:
            errors.append(f"{key}: {value!r} is not one of {spec['enum']}")
        elif "enum" not in spec and not (spec["minLength"] <= len(value.strip()) <= spec["maxLength"]):
            errors.append(f"{key}: text length {len(value.strip())} outside [{spec['minLength']}, {spec['maxLength']}]")
    if errors:
        return None, errors
    return {k: obj[k].strip() for k in ATTRIBUTE_SCHEMA["required"]}, []


def attribute_messages(pair: PreferencePair) -> list[dict[str, str]]:
    convo = render_conversation([(m.role, m.content) for m in pair.conversation])
    user = "\n\n".join(
        [
            fence("conversation", convo),
            fence("response_a", pair.chosen),
            fence("response_b", pair.rejected),
            "Return the JSON object for this item.",
        ]
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


@dataclass
class AnnotationReport:
    annotated: int = 0
    unannotated: int = 0
    attempts: int = 0
    errors: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"annotated": self.annotated, "unannotated": self.unannotated, "attempts": self.attempts,
                "top_errors": dict(self.errors.most_common(5))}


class AttributeAnnotator:
    """Fills the five attributes of pairs with one chat backend."""

    def __init__(self, backend: ChatBackend, max_attempts: int = 3, retry_temperature: float = 0.7,
                 max_tokens: int = 400, overwrite: bool = False) -> None:
        self.backend = backend
        self.max_attempts = max_attempts
        self.retry_temperature = retry_temperature
        self.max_tokens = max_tokens
        self.overwrite = overwrite
        self.report = AnnotationReport()

    def _needs(self, pair: PreferencePair) -> bool:
        return self.overwrite or any(getattr(pair, k) in (None, "") for k in ATTRIBUTE_FIELDS)

    def annotate(self, pairs: Sequence[PreferencePair]) -> list[PreferencePair]:
        """The pairs with attributes set (or marked unannotated), in order. Batched across pairs
        per attempt so a concurrent backend sees many requests at once."""
        pending = {i: attribute_messages(p) for i, p in enumerate(pairs) if self._needs(p)}
        last_error: dict[int, str] = {}
        for attempt in range(self.max_attempts):
            if not pending:
                break
            order = list(pending)
            requests = [
                ChatRequest.of(pending[i], temperature=0.0 if attempt == 0 else self.retry_temperature,
                               max_tokens=self.max_tokens, seed=attempt, response_format=RESPONSE_FORMAT)
                for i in order
            ]
            results = self.backend.complete_many(requests)
            self.report.attempts += len(requests)
            for i, res in zip(order, results):
                if not res.ok:
                    last_error[i] = res.error or "no answer"
                    continue
                try:
                    attrs, errors = validate_attributes(extract_json(res.text))
                except (json.JSONDecodeError, ValueError) as exc:
                    attrs, errors = None, [f"not JSON: {exc.__class__.__name__}"]
                if attrs is None:
                    last_error[i] = "; ".join(errors)
                    # Feed the errors back so the retry can correct itself.
                    pending[i] = [*attribute_messages(pairs[i]),
                                  {"role": "assistant", "content": res.text[:2000]},
                                  {"role": "user", "content": "That answer is invalid: " + "; ".join(errors)
                                   + ". Reply with only the corrected JSON object."}]
                    continue
                pair = pairs[i]
                for k, v in attrs.items():
                    setattr(pair, k, v)
                pair.lineage.append(f"attributes:{self.backend.name}")
                pair.meta.pop("attribute_error", None)
                self.report.annotated += 1
                del pending[i]
                last_error.pop(i, None)
        for i in pending:
            pair = pairs[i]
            reason = last_error.get(i, "no answer")
            pair.lineage.append("attributes:unannotated")
            pair.meta["attribute_error"] = reason[:300]
            self.report.unannotated += 1
            self.report.errors[reason.split(":")[0][:60]] += 1
        return list(pairs)


_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("code", ("code", "python", "function", "program", "bug", "compile", "sql", "javascript", "regex", "algorithm")),
    ("math", ("calculate", "compute", "solve", "equation", "sum", "how many", "integer", "percent", "math", "+", "*")),
    ("safety", ("weapon", "hack", "steal", "poison", "illegal", "kill", "drugs", "bomb", "harm")),
    ("instruction_following", ("exactly", "words", "format", "bullet", "uppercase", "lowercase", "json", "sentences")),
    ("writing", ("write", "poem", "story", "essay", "letter", "rewrite")),
    ("reasoning", ("why", "reason", "explain", "logic", "puzzle")),
    ("factual", ("what is", "who", "when", "where", "capital", "define", "which")),
)


class HeuristicAttributes:
    """OFFLINE attribute generation by rules over the prompt's words, for tests and the offline demo
    (no LLM, no truth): a task category from keywords, objectivity from the category, low
    controversiality unless the category is safety, and generic desired-attributes and guideline
    texts. Its lineage entry says `attributes:heuristic`; use an LLM generator on real data."""

    name = "heuristic"

    def __init__(self) -> None:
        self.report = AnnotationReport()

    @staticmethod
    def attributes_for(pair: PreferencePair) -> dict[str, str]:
        text = " ".join(m.content for m in pair.conversation if m.role == "user").lower()
        category = next((cat for cat, words in _RULES if any(w in text for w in words)), "chat")
        objective = category in ("code", "math", "factual", "instruction_following", "reasoning")
        return {
            "task_category": category,
            "objectivity": "objective" if objective else "subjective",
            "controversiality": "high" if category == "safety" else "low",
            "desired_attributes": f"A correct, helpful and safe response to this {category.replace('_', ' ')} request.",
            "annotation_guideline": ("Prefer the response that is verifiably correct and follows every instruction."
                                     if objective else "Prefer the more helpful, honest and safe response."),
        }

    def annotate(self, pairs: Sequence[PreferencePair]) -> list[PreferencePair]:
        for pair in pairs:
            if not any(getattr(pair, k) in (None, "") for k in ATTRIBUTE_FIELDS):
                continue
            for key, value in self.attributes_for(pair).items():
                if getattr(pair, key) in (None, ""):
                    setattr(pair, key, value)
            pair.lineage.append("attributes:heuristic")
            self.report.annotated += 1
        return list(pairs)


def lacks_attributes(pair: PreferencePair) -> bool:
    return any(getattr(pair, k) in (None, "") for k in ATTRIBUTE_FIELDS)


def fill_attributes(pairs: Sequence[PreferencePair], make_generator: Any) -> dict[str, int]:
    """Generate the attributes of every pair lacking them (the generator is built only if one does);
    returns {"attributes_generated", "attributes_failed"} (a failed pair keeps empty attributes and
    says so in its lineage; it is never guessed)."""
    need = [p for p in pairs if lacks_attributes(p)]
    if not need:
        return {"attributes_generated": 0, "attributes_failed": 0}
    generator = make_generator()
    generator.annotate(need)
    failed = sum(1 for p in need if lacks_attributes(p))
    return {"attributes_generated": len(need) - failed, "attributes_failed": failed}
