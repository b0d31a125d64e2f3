"""Human verification (the gold set): Label Studio round trip, terminal review, and a simulation.

The paper's protocol (paper §3.2 and App. D, human verification): an annotator sees the conversation, both
responses, the attributes and the guideline, and picks the better response; a pair they cannot
decide is discarded (it is not sent to LLM annotation).

Blind by construction: what a person sees is a function of the *unordered* pair. The two
responses are shown as A/B in an order drawn from (seed, pair id) over the responses sorted by
their text, so the task for a pair and for the same pair with its label flipped are the same
bytes; which of A/B the dataset lists as chosen (`BlindTask.a_is_listed_chosen`) never enters the
task. It lives only in the caller's ledger (or is recomputed from the pair and the seed), and the
task's `item` is an opaque key, not the dataset's pair id.

Data is shown as data: every text is escaped before it becomes HTML (`render_text`), the
terminal reviewer hands Rich `Text` objects (no markup parsing), whitespace is kept everywhere.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardops.curation.judges import unit
from rewardops.data.schema import LabelSource, PreferencePair
from rewardops.errors import ConfigError, DataError

CHOICE_A, CHOICE_B, CHOICE_UNDECIDABLE = "A is better", "B is better", "Cannot decide"
# the graded scale (settings `labelstudio_graded`): side and strength; "About equal" is undecidable
GRADED_CHOICES = {"A is much better": ("A", "much"), "A is slightly better": ("A", "slightly"),
                  "About equal": (None, "equal"), "B is slightly better": ("B", "slightly"),
                  "B is much better": ("B", "much")}
PLAIN_CHOICES = {CHOICE_A: ("A", None), CHOICE_B: ("B", None)}
ALL_CHOICES = {**PLAIN_CHOICES, **GRADED_CHOICES, CHOICE_UNDECIDABLE: (None, None)}

GLOBAL_GUIDELINE = (
    "Pick the response a careful expert would prefer: correct, follows every instruction, honest, safe; "
    "then helpful and clear. Verify facts, maths and code (search engines and LLM assistants are allowed, "
    "but do not rely on an LLM alone). If you cannot decide, choose 'Cannot decide': the item is discarded."
)
TASK_FIELDS = ("item", "conversation", "response_a", "response_b", "guideline")  # everything a task's data holds


class LabelStudioFormatError(DataError):
    pass


# -- data shown as data: text -> safe HTML -----------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*)$")
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
_SAFE_TAGS = re.compile(r"</?(div|pre|code|table|thead|tbody|tr|th|td|b|span|details|summary)( class=\"[a-z0-9 -]+\")?>")


def _inline(text: str) -> str:
    """Escaped text with `code` and **bold** rendered (everything else literal)."""
    out, last = [], 0
    for m in _INLINE_CODE.finditer(text):
        out.append(_BOLD.sub(r"<b>\1</b>", html.escape(text[last:m.start()])))
        out.append(f'<code class="ro-icode">{html.escape(m.group(1))}</code>')
        last = m.end()
    out.append(_BOLD.sub(r"<b>\1</b>", html.escape(text[last:])))
    return "".join(out)


def _cells(line: str) -> list[str]:
    s = line.strip()
    s = s[1:] if s.startswith("|") else s
    s = s[:-1] if s.endswith("|") else s
    return [c.strip() for c in s.split("|")]


def render_text(text: str) -> str:
    """`text` as HTML people read correctly and nothing can run: every character escaped; fenced
    code in a monospace block, GitHub tables as tables, `#` headings bold, `code` and **bold**
    inline; all other text kept exactly, whitespace and line breaks included (shown with
    `white-space: pre-wrap`), so Python indented by 4 or 2 spaces looks different. The output
    uses only the tags of `_SAFE_TAGS` (checked; anything else falls back to one escaped block)."""
    lines = text.split("\n")
    parts: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:  # a block with indented lines (code pasted without a fence) is shown in monospace
            mono = " ro-mono" if any(x[:1] in (" ", "\t") and x.strip() for x in para) else ""
            parts.append(f'<div class="ro-p{mono}">' + "\n".join(_inline(x) for x in para) + "</div>")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip().startswith(fence.group(1))), None)
            if end is not None:
                flush()
                lang = f'<div class="ro-lang">{html.escape(fence.group(2))}</div>' if fence.group(2) else ""
                parts.append(f'<div class="ro-codeblock">{lang}<pre class="ro-code"><code>'
                             f'{html.escape(chr(10).join(lines[i + 1:end]))}</code></pre></div>')
                i = end + 1
                continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]) and "|" in lines[i + 1]:
            flush()
            head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(line))
            rows, j = [], i + 2
            while j < len(lines) and "|" in lines[j] and lines[j].strip():
                rows.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(lines[j])) + "</tr>")
                j += 1
            parts.append(f'<table class="ro-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')
            i = j
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            parts.append(f'<div class="ro-h">{_inline(heading.group(2))}</div>')
            i += 1
            continue
        para.append(line)
        i += 1
    flush()
    out = "".join(parts)
    if _SAFE_TAGS.sub("", out).count("<"):  # defence in depth: only our own tags, never one from the data
        return f'<div class="ro-p">{html.escape(text)}</div>'
    return out


def _role_class(role: str) -> str:
    return re.sub(r"[^a-z]", "", role.lower())[:20] or "other"


def render_conversation(pair: PreferencePair) -> str:
    """The conversation, one block per turn with its role, every turn rendered by `render_text`."""
    turns = [f'<div class="ro-turn ro-{_role_class(m.role)}"><div class="ro-role">{html.escape(m.role)}'
             f'{f" · turn {n + 1}" if len(pair.conversation) > 1 else ""}</div>{render_text(m.content)}</div>'
             for n, m in enumerate(pair.conversation)]
    return "".join(turns)


def render_guideline(pair: PreferencePair) -> str:
    """The item's guideline and attributes (the global guideline is the project's instructions)."""
    attrs = [(k, v) for k, v in pair.attributes().items() if v and k != "annotation_guideline"]
    rows = "".join(f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in attrs)
    guide = render_text(pair.annotation_guideline) if pair.annotation_guideline else '<div class="ro-p">(none)</div>'
    return (f'<div class="ro-h">For this item</div>{guide}'
            + (f'<table class="ro-table ro-attrs"><tbody>{rows}</tbody></table>' if rows else "")
            + f'<div class="ro-h">For every item</div><div class="ro-p">{html.escape(GLOBAL_GUIDELINE)}</div>')


# -- the blind task --------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlindTask:
    """One pair as people see it (`data`), and the mapping they must not see."""

    data: dict[str, Any]
    a_is_listed_chosen: bool
    digest: str  # sha256 of the canonical JSON of `data`: what people saw

    def task(self, **extra: Any) -> dict[str, Any]:
        """The Label Studio task (data plus `extra` marks such as the run and batch)."""
        return {"data": {**self.data, **extra}}


def data_digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def item_key(pair_id: str, salt: str) -> str:
    """The opaque key a task carries instead of the dataset's pair id."""
    return hashlib.sha256(f"{salt}\x00{pair_id}".encode()).hexdigest()[:20]


def blind_task(pair: PreferencePair, seed: int, salt: str | None = None) -> BlindTask:
    """The task for `pair`: identical for the pair and its flipped twin (see the module docstring)."""
    lo, hi = sorted((pair.chosen, pair.rejected))
    first, second = (lo, hi) if unit("label-studio", seed, pair.id) < 0.5 else (hi, lo)
    data = {"item": item_key(pair.id, f"seed={seed}" if salt is None else salt),
            "conversation": render_conversation(pair),
            "response_a": render_text(first), "response_b": render_text(second),
            "guideline": render_guideline(pair)}
    return BlindTask(data, first == pair.chosen, data_digest(data))


# -- the labeling interface ------------------------------------------------------------------------

STYLE = """
  .ro { font-size: 15px; line-height: 1.45; max-width: 1800px; }
  .ro .ro-keys { color: #555; font-size: 13px; margin: 2px 0 6px 0; }
  .ro .ro-prompt { background: #eef4ff; border: 1px solid #c9d8f5; border-radius: 6px; padding: 8px 12px;
                   max-height: 32vh; overflow: auto; margin-bottom: 8px; }
  .ro .ro-pair { display: flex; gap: 12px; align-items: stretch; }
  .ro .ro-col { flex: 1 1 0; min-width: 0; border: 1px solid #d0d0d0; border-radius: 6px; padding: 6px 12px;
                max-height: 52vh; overflow: auto; background: #fff; }
  .ro .ro-col-b { border-color: #d0d0d0; }
  @media (max-width: 900px) { .ro .ro-pair { flex-direction: column; } }
  .ro .ro-p { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0; }
  .ro .ro-p.ro-mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace !important;
                      font-size: 13.5px; tab-size: 4; }
  .ro .ro-h { font-weight: 600; margin: 8px 0 2px 0; }
  .ro .ro-role { font-size: 12px; font-weight: 600; text-transform: uppercase; color: #4a6aa5; margin-top: 4px; }
  .ro .ro-turn + .ro-turn { border-top: 1px dashed #c9d8f5; margin-top: 6px; }
  .ro .ro-codeblock { margin: 6px 0; }
  .ro .ro-lang { font-size: 11px; color: #777; }
  .ro pre.ro-code code { font-family: inherit !important; font-size: inherit; white-space: pre; }
  .ro pre.ro-code { white-space: pre; overflow-x: auto; background: #f6f8fa; border: 1px solid #e1e4e8;
                    border-radius: 4px; padding: 6px 8px; margin: 0; font-size: 13px; tab-size: 4;
                    font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace !important; }
  .ro code.ro-icode { background: #f0f0f0; border-radius: 3px; padding: 0 3px; font-size: 13px;
                      font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace !important; }
  .ro table.ro-table { border-collapse: collapse; margin: 6px 0; }
  .ro table.ro-table th, .ro table.ro-table td { border: 1px solid #ccc; padding: 2px 8px; text-align: left;
                                                 vertical-align: top; }
  .ro .ro-choices { margin: 6px 0 0 0; }
  .ro .ro-choices label { font-size: 16px !important; font-weight: 600; margin-right: 18px; }
  .ro .ro-keys h1, .ro .ro-keys h2, .ro .ro-keys h3, .ro .ro-keys h4, .ro .ro-keys h5, .ro .ro-keys h6 {
      font-size: 13px !important; font-weight: 400 !important; color: #666 !important; margin: 0 0 6px 0 !important; }
  .ro .ro-col h1, .ro .ro-col h2, .ro .ro-col h3, .ro .ro-col h4, .ro .ro-col h5 {
      font-size: 14px !important; margin: 2px 0 !important; color: #333; }
"""


def _hotkey_label(choices: Sequence[tuple[str, str]]) -> str:
    keys = ", ".join(f"{key} = {html.escape(value)}" for value, key in choices)
    return f"Keys: {keys}; Ctrl+Enter submits. Click a choice or press its key."


def choice_values(graded: bool) -> list[tuple[str, str]]:
    """(choice, hotkey) in the order shown."""
    values = list(GRADED_CHOICES) if graded else list(PLAIN_CHOICES)
    return [(v, str(n + 1)) for n, v in enumerate(values)] + [(CHOICE_UNDECIDABLE, "0" if graded else "3")]


def label_config(graded: bool = False) -> str:
    """The labeling interface (paper §3.2's view, made to be read): the conversation on top, the
    two responses side by side (stacked on narrow screens, each scrolling on its own so the choice
    stays on the first screen), the choice right below with one key per option, an optional note
    (why, tools used), and the item's guideline once, collapsed."""
    choices = choice_values(graded)
    items = "\n".join(f'      <Choice value="{v}" hotkey="{k}"/>' for v, k in choices)
    return f"""<View className="ro">
  <Style>{STYLE}</Style>
  <View className="ro-prompt">
    <HyperText name="conversation" value="$conversation" inline="true"/>
  </View>
  <View className="ro-pair">
    <View className="ro-col ro-col-a">
      <Header value="Response A" size="5"/>
      <HyperText name="response_a" value="$response_a" inline="true"/>
    </View>
    <View className="ro-col ro-col-b">
      <Header value="Response B" size="5"/>
      <HyperText name="response_b" value="$response_b" inline="true"/>
    </View>
  </View>
  <View className="ro-choices">
    <Choices name="preference" toName="response_a" choice="single-radio" showInline="true" required="true"
             requiredMessage="Choose the better response, or Cannot decide">
{items}
    </Choices>
  </View>
  <View className="ro-keys"><Header value="{_hotkey_label(choices)}" size="6" underline="false"/></View>
  <TextArea name="note" toName="response_a" placeholder="Optional: why (facts checked, tools used)" rows="1" maxSubmissions="1" editable="true"/>
  <Collapse bordered="false">
    <Panel value="Guideline and attributes for this item">
      <HyperText name="guideline" value="$guideline" inline="true"/>
    </Panel>
  </Collapse>
</View>
"""


LABEL_CONFIG = label_config(graded=False)


def apply_human_verdict(pair: PreferencePair, chosen_better: bool, who: str) -> PreferencePair:
    """The pair oriented by the human verdict, with label_source=human and the step in lineage."""
    if chosen_better:
        out = PreferencePair(**{**pair.__dict__, "lineage": list(pair.lineage), "meta": dict(pair.meta), "scores": dict(pair.scores)})
        out.lineage.append(f"human:{who}:confirmed")
    else:
        out = pair.flipped()
        out.lineage[-1] = f"human:{who}:relabelled"  # a human label, not blind recycling
    out.label_source = LabelSource.HUMAN.value
    return out


def export_label_studio(pairs: Sequence[PreferencePair], out_dir: str | Path, seed: int = 0,
                        graded: bool = False) -> tuple[Path, Path]:
    """Write `tasks.json` (import it into a project) and `label_config.xml` (the project's labeling
    interface). Returns both paths. The tasks are blind; `import_label_studio` with the same seed
    and pairs recovers the A/B mapping."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks_path, config_path = out / "tasks.json", out / "label_config.xml"
    tasks_path.write_text(json.dumps([blind_task(p, seed).task() for p in pairs], ensure_ascii=False, indent=1))
    config_path.write_text(label_config(graded))
    return tasks_path, config_path


@dataclass
class ImportResult:
    gold: list[PreferencePair] = field(default_factory=list)
    undecidable: list[PreferencePair] = field(default_factory=list)
    pending: list[PreferencePair] = field(default_factory=list)  # no finished annotation yet
    counts: Counter = field(default_factory=Counter)


def choice_of(annotation: dict[str, Any], where: str) -> str | None:
    """The preference choice of one Label Studio annotation (None: no choice in its result)."""
    for item in annotation.get("result") or []:
        if item.get("from_name") == "preference" and item.get("type") == "choices":
            choices = (item.get("value") or {}).get("choices") or []
            if len(choices) != 1 or choices[0] not in ALL_CHOICES:
                raise LabelStudioFormatError(f"{where}: unexpected preference choices {choices!r}")
            return choices[0]
    return None


def side_of(choice: str | None) -> str | None:
    """'A', 'B', or None (cannot decide / about equal / no choice)."""
    return ALL_CHOICES.get(choice, (None, None))[0] if choice else None


def note_of(annotation: dict[str, Any]) -> str | None:
    """The annotator's optional 'why' note."""
    for item in annotation.get("result") or []:
        if item.get("from_name") == "note" and item.get("type") == "textarea":
            text = (item.get("value") or {}).get("text") or []
            joined = "\n".join(t for t in text if isinstance(t, str)).strip()
            return joined or None
    return None


def import_label_studio(export_path: str | Path, pairs: Sequence[PreferencePair], seed: int = 0) -> ImportResult:
    """Read Label Studio's JSON export of the tasks `export_label_studio(pairs, seed=seed)` wrote.
    Each task must hold exactly what was exported (its digest is checked: an edited task is
    refused). Several annotators on one task: the majority decides; a tie or a majority of
    'Cannot decide' makes the item undecidable (discarded). Cancelled (skipped) annotations do not count."""
    path = Path(export_path)
    try:
        tasks = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LabelStudioFormatError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(tasks, list):
        raise LabelStudioFormatError(f"{path}: expected a list of tasks (Label Studio's JSON export)")
    blind = {}
    for p in pairs:
        b = blind_task(p, seed)
        blind[b.data["item"]] = (p, b)
    res = ImportResult()
    seen: set[str] = set()
    for n, task in enumerate(tasks):
        where = f"{path}: task #{n}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "item" not in data:
            raise LabelStudioFormatError(f"{where}: no data.item (not a task `rewardops review export` wrote)")
        if data["item"] not in blind:
            raise LabelStudioFormatError(f"{where}: item {data['item']!r} is none of the given pairs with seed {seed} "
                                         "(pass the pairs and --seed of the export)")
        pair, b = blind[data["item"]]
        if data_digest({k: data.get(k) for k in b.data}) != b.digest:
            raise LabelStudioFormatError(f"{where} (pair {pair.id}): the task's content differs from what was exported; "
                                         "it was edited after the export, so its answers are not about this pair")
        if pair.id in seen:
            raise LabelStudioFormatError(f"{where}: pair id {pair.id!r} appears twice")
        seen.add(pair.id)
        votes = Counter()
        annotators = []
        for k, ann in enumerate(task.get("annotations") or []):
            if ann.get("was_cancelled"):
                res.counts["cancelled_annotations"] += 1
                continue
            choice = choice_of(ann, f"{where} annotation #{k}")
            if choice is not None:
                votes[side_of(choice) or CHOICE_UNDECIDABLE] += 1
                annotators.append(str(ann.get("completed_by", "?")))
        if not votes:
            res.pending.append(pair)
            res.counts["pending"] += 1
            continue
        top = votes.most_common()
        if (len(top) > 1 and top[0][1] == top[1][1]) or top[0][0] == CHOICE_UNDECIDABLE:
            pair.lineage.append("human:label-studio:undecidable")
            res.undecidable.append(pair)
            res.counts["undecidable"] += 1
            continue
        chosen_better = (top[0][0] == "A") == b.a_is_listed_chosen
        who = "label-studio(" + ",".join(sorted(set(annotators))) + ")"
        res.gold.append(apply_human_verdict(pair, chosen_better, who))
        res.counts["confirmed" if chosen_better else "relabelled"] += 1
    missing = [p for p in pairs if p.id not in seen]
    res.pending.extend(missing)
    res.counts["pending"] += len(missing)
    return res


def label_studio_annotation(choice: str, completed_by: int = 1, cancelled: bool = False,
                            note: str | None = None) -> dict[str, Any]:
    """One annotation as Label Studio exports it (for tests and for scripting reviews)."""
    result = [] if cancelled else [
        {"id": "r1", "from_name": "preference", "to_name": "response_a", "type": "choices",
         "origin": "manual", "value": {"choices": [choice]}}]
    if note and not cancelled:
        result.append({"id": "r2", "from_name": "note", "to_name": "response_a", "type": "textarea",
                       "origin": "manual", "value": {"text": [note]}})
    return {"id": random.randint(1, 10**9), "completed_by": completed_by, "was_cancelled": cancelled, "result": result}


class SimulatedAnnotator:
    """A SIMULATION of a human annotator for the offline demo: it answers from the generated
    world's truth, wrong with probability `error_rate`, undecidable with `undecidable_rate`.
    Its name and every lineage entry it writes say "simulated"."""

    def __init__(self, error_rate: float = 0.05, undecidable_rate: float = 0.02, seed: int = 0) -> None:
        self.error_rate = error_rate
        self.undecidable_rate = undecidable_rate
        self.seed = seed
        self.name = f"simulated-annotator(err={error_rate:g})"

    def verify(self, pairs: Sequence[PreferencePair]) -> list[bool | None]:
        out: list[bool | None] = []
        for p in pairs:
            if p.truth_chosen_better is None:
                raise ConfigError(f"pair {p.id}: the simulated annotator needs truth_chosen_better (the generated world "
                                 "only); on real data use annotator terminal or labelstudio")
            key = ("simulated-annotator", self.seed, p.id)
            if unit(*key, "undecidable") < self.undecidable_rate:
                out.append(None)
            else:
                out.append(p.truth_chosen_better if unit(*key, "error") >= self.error_rate else not p.truth_chosen_better)
        return out


class TerminalAnnotator:
    """Review a small batch in the terminal: shows each pair (A/B in the blind order of
    `blind_task`) and asks a / b / u (undecidable) / q (stop; the rest stay unreviewed, returned
    as None and counted). Every text from the data reaches Rich as a `Text` object, never as
    markup: `arr[i]`, `[/bold]` or `[conceal]` are shown as written."""

    def __init__(self, console: Any = None, ask: Callable[[str], str] | None = None, seed: int = 0) -> None:
        from rich.console import Console

        self.console = console or Console()
        self.ask = ask or (lambda prompt: self.console.input(prompt))
        self.seed = seed
        self.name = "terminal"
        self.stopped_at: int | None = None

    def verify(self, pairs: Sequence[PreferencePair]) -> list[bool | None]:
        from rich.panel import Panel
        from rich.text import Text

        out: list[bool | None] = []
        for n, p in enumerate(pairs):
            b = blind_task(p, self.seed)
            first, second = (p.chosen, p.rejected) if b.a_is_listed_chosen else (p.rejected, p.chosen)
            c = self.console
            c.rule(Text(f"{n + 1}/{len(pairs)}  {p.id}", style="bold"))
            attrs = "\n".join(f"{k}: {v}" for k, v in p.attributes().items() if v) or "(none)"
            c.print(Panel(Text(attrs), title="attributes and guideline"))
            for m in p.conversation:
                c.print(Panel(Text(m.content), title=Text(m.role)))
            c.print(Panel(Text(first), title="Response A", border_style="cyan"))
            c.print(Panel(Text(second), title="Response B", border_style="magenta"))
            while True:
                ans = self.ask("[a] A better  [b] B better  [u] cannot decide  [q] quit > ").strip().lower()
                if ans in ("a", "b", "u", "q"):
                    break
                c.print("please answer a, b, u or q")
            if ans == "q":
                self.stopped_at = n
                break
            out.append(None if ans == "u" else (ans == "a") == b.a_is_listed_chosen)
        return out
