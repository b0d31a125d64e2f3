"""Instruction following with checkable constraints: case, length, keywords, bullets, JSON...

The chosen response satisfies every constraint in the prompt; the rejected one breaks exactly
one of them. `check_constraint` is the single definition of what "satisfies" means, used by
both the generator (as a self-check) and the verifier.
"""

from __future__ import annotations

import json
import re
from random import Random
from typing import Any

from rewardops.data.schema import Objectivity, TaskCategory
from rewardops.data.world.common import Draft, cap_first, pick, pick_index, spin
from rewardops.data.world.topics import (
    END_PHRASES, JSON_KEYS, KEYWORD_SENTENCES, KEYWORDS, START_WORDS, TOPICS, Topic,
)

_WORD = re.compile(r"[A-Za-z0-9']+")
_BULLET = re.compile(r"^\s*[-*•]\s+\S", re.M)
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+")


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def count_word(text: str, word: str) -> int:
    return len(re.findall(rf"(?<![\w]){re.escape(word)}(?![\w])", text, re.I))


def sentence_count(text: str) -> int:
    return len([s for s in _SENT_SPLIT.split(text.strip()) if s.strip()])


def bullet_count(text: str) -> int:
    return len(_BULLET.findall(text))


def check_constraint(text: str, c: dict[str, Any]) -> bool:
    """Does `text` satisfy constraint `c` ({"type": ..., params})? Unknown types raise."""
    kind = c["type"]
    if kind == "uppercase":
        return any(ch.isalpha() for ch in text) and text == text.upper()
    if kind == "lowercase":
        return any(ch.isalpha() for ch in text) and text == text.lower()
    if kind == "max_words":
        return word_count(text) <= c["n"]
    if kind == "min_words":
        return word_count(text) >= c["n"]
    if kind == "keyword":
        return count_word(text, c["word"]) >= c["min_count"]
    if kind == "forbidden":
        return count_word(text, c["word"]) == 0
    if kind == "bullets":
        return bullet_count(text) == c["n"]
    if kind == "sentences":
        return sentence_count(text) == c["n"]
    if kind == "json":
        try:
            obj = json.loads(text.strip())
        except ValueError:
            return False
        return isinstance(obj, dict) and all(k in obj for k in c["keys"])
    if kind == "start_with":
        head = text.lstrip()[: len(c["word"]) + 1].lower()
        w = c["word"].lower()
        return head.startswith(w) and (len(head) == len(w) or not head[len(w)].isalnum())
    if kind == "end_with":
        return text.rstrip().lower().endswith(c["phrase"].lower())
    raise ValueError(f"unknown instruction constraint type {kind!r}")


# --- prompt phrasings ----------------------------------------------------------------------

TASKS = (
    "[Give me|Share|Offer] some [tips|advice|pointers] on {t}.",
    "Write a short [note|piece|paragraph] about {t}.",
    "How do I get better at {t}?",
    "Explain the basics of {t} [to a beginner|for someone new to it|simply].",
    "What should I know about {t}?",
    "[I'm|I am] [new to|struggling with] {t}. Any advice?",
)

PHRASES: dict[str, tuple[str, ...]] = {
    "uppercase": ("[Your entire response|Your whole answer|The entire reply] must be in [capital letters|uppercase|ALL CAPS].",
                  "Write everything in capital letters.", "Use only uppercase letters."),
    "lowercase": ("Use only lowercase letters, no capitals at all.", "[Write|Type] your [whole|entire] answer in lowercase.",
                  "Do not use any capital letters."),
    "max_words": ("Use at most {n} words.", "[Answer|Respond|Reply] in no more than {n} words.",
                  "Your reply must not exceed {n} words."),
    "min_words": ("Write at least {n} words.", "Your answer should be {n} words or longer.",
                  "Use no fewer than {n} words."),
    "keyword": ('Include the word "{w}" at least {times}.', 'Use the word "{w}" at least {times}.',
                'Mention "{w}" no fewer than {times}.'),
    "forbidden": ('Do not use the word "{w}".', 'Avoid the word "{w}" [entirely|completely].',
                  'Never use the word "{w}" in your answer.'),
    "bullets": ("Use exactly {n} bullet points.", "Format the answer as exactly {n} bullet points.",
                "Give [me|] precisely {n} [bullets|bullet points]."),
    "sentences": ("Answer in exactly {n} sentences.", "Write exactly {n} sentences, no more and no less.",
                  "[Your answer|The reply] must be exactly {n} sentences long."),
    "json": ('Respond only with a JSON object with the keys "{k1}" and "{k2}".',
             'Return valid JSON (and nothing else) containing the keys "{k1}" and "{k2}".',
             'Output a single JSON object with "{k1}" and "{k2}" fields, no other text.'),
    "start_with": ('Start your [reply|answer|response] with the word "{w}".', 'Begin with the word "{w}".',
                   'The first word of your [reply|answer] must be "{w}".'),
    "end_with": ('End your [reply|answer|response] with the exact phrase "{p}".', 'Finish with the phrase "{p}".',
                 'Your last words must be "{p}".'),
}

DESCRIBE = {
    "uppercase": "all in capital letters", "lowercase": "all in lowercase", "max_words": "at most {n} words",
    "min_words": "at least {n} words", "keyword": 'the word "{w}" at least {times}',
    "forbidden": 'never the word "{w}"', "bullets": "exactly {n} bullet points", "sentences": "exactly {n} sentences",
    "json": 'a bare JSON object with keys "{k1}" and "{k2}"', "start_with": 'first word "{w}"',
    "end_with": 'ending with "{p}"',
}

PRIMARIES = ("none", "bullets", "sentences", "max_words", "min_words", "json")
MODIFIERS = ("case", "keyword", "forbidden", "start_with", "end_with")


def _fmt(c: dict[str, Any]) -> dict[str, Any]:
    k = c.get("min_count")
    return {"n": c.get("n"), "w": c.get("word"), "times": "once" if k == 1 else f"{k} times", "p": c.get("phrase"),
            "k1": (c.get("keys") or ("", ""))[0], "k2": (c.get("keys") or ("", ""))[-1]}


def describe(c: dict[str, Any]) -> str:
    return DESCRIBE[c["type"]].format(**_fmt(c))


# --- composing responses -------------------------------------------------------------------

def _replace_word(text: str, word: str, alt: str) -> str:
    return re.sub(rf"(?<![\w]){re.escape(word)}(?![\w])",
                  lambda m: cap_first(alt) if m.group(0)[0].isupper() else alt, text, flags=re.I)


# Keywords a topic never uses on its own, so "include X" is only satisfied on purpose.
_FREE_KEYWORDS = {
    t.name: [k for k in KEYWORDS if not any(count_word(s, k) for s in t.sentences)] for t in TOPICS
}
_IF = TaskCategory.INSTRUCTION_FOLLOWING.value
_OBJECTIVE = Objectivity.OBJECTIVE.value


class _Plan:
    """All random choices for one pair, so chosen and rejected differ only where intended."""

    def __init__(self, rng: Random, controversiality: str) -> None:
        self.topic: Topic = pick(rng, TOPICS)
        order = list(self.topic.sentences)
        rng.shuffle(order)
        self.primary = pick(rng, PRIMARIES)
        n_mod = 1 if self.primary == "none" else pick(rng, (0, 0, 1, 1, 2))
        if self.primary == "json":
            n_mod = 0
        mods = [m for m in MODIFIERS if not (m == "end_with" and self.primary == "sentences")]
        rng.shuffle(mods)
        self.modifiers = mods[:n_mod]
        self.n_content = 2 + int(rng.random() * 3) if self.primary != "min_words" else 3 + int(rng.random() * 2)
        self.content = order[: self.n_content]
        self.reserve = order[self.n_content:]
        if "forbidden" in self.modifiers and not any(count_word(s, self.topic.key) for s in self.content):
            key_sentence = next(s for s in self.reserve if count_word(s, self.topic.key))
            self.reserve.remove(key_sentence)
            self.content[-1] = key_sentence
        self.case = pick(rng, ("uppercase", "lowercase"))
        self.keyword = pick(rng, _FREE_KEYWORDS[self.topic.name])
        self.kw_count = 1 + int(rng.random() * 3)
        self.kw_sentences = [pick(rng, KEYWORD_SENTENCES) for _ in range(self.kw_count)]
        self.start_word = pick(rng, START_WORDS)
        self.other_start = pick(rng, [w for w in START_WORDS if w != self.start_word])
        self.end_phrase = pick(rng, END_PHRASES)
        self.bullet = pick(rng, ("- ", "* ", "• "))
        self.intro = pick(rng, ("", "", "Here are some tips:\n", "Some ideas:\n"))
        self.json_keys = pick(rng, JSON_KEYS)
        self.json_list = rng.random() < 0.6
        self.json_indent = pick(rng, (None, 2))
        self.json_break = pick(rng, ("missing_key", "prose", "syntax"))
        self.slack = int(rng.random() * 5)
        # Medium: the rejected response has more content (richer but non-compliant).
        self.richer = controversiality == "medium"
        self.task = pick_index(rng, TASKS)

    def constraints(self) -> list[dict[str, Any]]:
        cs: list[dict[str, Any]] = []
        if self.primary in ("bullets", "sentences"):
            cs.append({"type": self.primary, "n": None})
        elif self.primary in ("max_words", "min_words"):
            cs.append({"type": self.primary, "n": None})
        elif self.primary == "json":
            cs.append({"type": "json", "keys": list(self.json_keys)})
        for m in self.modifiers:
            if m == "case":
                cs.append({"type": self.case})
            elif m == "keyword":
                cs.append({"type": "keyword", "word": self.keyword, "min_count": self.kw_count})
            elif m == "forbidden":
                cs.append({"type": "forbidden", "word": self.topic.key})
            elif m == "start_with":
                cs.append({"type": "start_with", "word": self.start_word})
            elif m == "end_with":
                cs.append({"type": "end_with", "phrase": self.end_phrase})
        return cs

    def compose(self, content: list[str], broken: str | None) -> str:
        types = {c["type"] for c in self.constraints()}
        sents = list(content)
        if "forbidden" in types and broken != "forbidden":
            sents = [_replace_word(s, self.topic.key, self.topic.alt) for s in sents]
        if "keyword" in types:
            k = self.kw_count - (1 if broken == "keyword" else 0)
            for i, tmpl in enumerate(self.kw_sentences[:k]):
                s = tmpl.format(kw=self.keyword, Kw=cap_first(self.keyword))
                sents.insert(min(len(sents), 1 + 2 * i), s)
        if self.primary == "bullets":
            text = self.intro + "\n".join(self.bullet + s for s in sents)
        elif self.primary == "json":
            k1, k2 = self.json_keys
            obj: dict[str, Any] = {k1: self.topic.title, k2: sents if self.json_list else " ".join(sents)}
            if broken == "json" and self.json_break == "missing_key":
                obj.pop(k2)
                obj["notes"] = sents if self.json_list else " ".join(sents)
            text = json.dumps(obj, indent=self.json_indent, ensure_ascii=False)
            if broken == "json" and self.json_break == "prose":
                text = f"Here is the JSON you asked for:\n{text}"
            elif broken == "json" and self.json_break == "syntax":
                text = text.replace('"', "'")
        else:
            text = " ".join(sents)
        if "start_with" in types:
            word = self.start_word if broken != "start_with" else self.other_start
            if self.primary == "bullets":
                text = f"{word}!\n{text}"
            else:
                text = f"{word}, {text[:1].lower()}{text[1:]}"
        if "end_with" in types and broken != "end_with":
            text += ("\n\n" if self.primary == "bullets" else " ") + self.end_phrase
        for case in ("uppercase", "lowercase"):
            if case in types and broken != case:
                text = text.upper() if case == "uppercase" else text.lower()
        return text


def _prompt(rng: Random, plan: _Plan, constraints: list[dict[str, Any]]) -> str:
    task = TASKS[plan.task].format(t=plan.topic.name)
    rules = [spin(rng, pick(rng, PHRASES[c["type"]]).format(**_fmt(c))) for c in constraints]
    rng.shuffle(rules)
    style = int(rng.random() * 3)
    if style == 0:
        text = task + " " + " ".join(rules)
    elif style == 1:
        text = task + "\n\nRules:\n" + "\n".join(f"- {r}" for r in rules)
    else:
        text = " ".join(rules) + " " + task
    return spin(rng, text)


def build_instruction(rng: Random, controversiality: str) -> Draft:
    plan = _Plan(rng, controversiality)
    constraints = plan.constraints()
    breakable = [c["type"] for c in constraints]
    if plan.richer and "min_words" in breakable and len(breakable) > 1:
        breakable.remove("min_words")
    broken = pick(rng, breakable)
    chosen = plan.compose(plan.content, None)
    for c in constraints:  # fill in the counts the chosen response defines
        if c["type"] == "bullets":
            c["n"] = bullet_count(chosen)
        elif c["type"] == "sentences":
            c["n"] = sentence_count(chosen)
        elif c["type"] == "max_words":
            c["n"] = word_count(chosen) + plan.slack
        elif c["type"] == "min_words":
            c["n"] = max(1, word_count(chosen) - plan.slack)

    grow = plan.richer or (broken in ("bullets", "sentences") and rng.random() < 0.5) or broken == "max_words"
    shrink = broken == "min_words" or (broken in ("bullets", "sentences") and not grow)
    content = list(plan.content)
    if shrink:
        target = next(c for c in constraints if c["type"] == broken)
        while content and (check_constraint(plan.compose(content, broken), target) or len(content) == len(plan.content)):
            content.pop()
            if len(content) == 1:
                break
    elif grow:
        reserve = list(plan.reserve)
        content.append(reserve.pop(0))
        if broken == "max_words":
            target = next(c for c in constraints if c["type"] == "max_words")
            while check_constraint(plan.compose(content, broken), target) and reserve:
                content.append(reserve.pop(0))
    rejected = plan.compose(content, broken)
    if not all(check_constraint(chosen, c) for c in constraints) or all(
        check_constraint(rejected, c) for c in constraints
    ):
        raise RuntimeError(f"instruction pair broke its own construction: {constraints} broken={broken}")

    prompt = _prompt(rng, plan, constraints)
    kinds = "+".join(sorted(c["type"] for c in constraints))
    rules = "; ".join(describe(c) for c in constraints)
    return Draft(
        prompt=prompt,
        chosen=chosen,
        rejected=rejected,
        task_category=_IF,
        objectivity=_OBJECTIVE,
        controversiality=controversiality,
        desired_attributes=cap_first(f"helpful advice on {plan.topic.name} that meets every stated constraint ({rules})"),
        annotation_guideline=(
            f"Check each constraint mechanically: {rules}. A response that breaks any of them loses, even if "
            "its content is fuller; only when both comply does helpfulness decide."),
        template=f"instruction_following/{plan.task}/{kinds}",
        group=f"if:{plan.topic.title}:{kinds}",
        verifier={"kind": "instruction_following", "constraints": constraints},
    )
