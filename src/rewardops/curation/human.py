"""Human verification (the gold set): Label Studio round trip, terminal review, and a simulation.

The paper's protocol: an annotator sees the conversation, both responses, the attributes and
the guideline, and picks the better response; a pair they cannot decide is discarded (it is
not sent to LLM annotation). Responses are shown as A/B in a random order per pair so the
listed label cannot leak; the mapping travels in the task data.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rewardops.curation.judges import unit
from rewardops.data.schema import LabelSource, PreferencePair
from rewardops.errors import ConfigError, DataError

CHOICE_A, CHOICE_B, CHOICE_UNDECIDABLE = "A is better", "B is better", "Cannot decide"

LABEL_CONFIG = f"""<View>
  <Header value="Annotation guideline"/>
  <Text name="guideline" value="$guideline"/>
  <Header value="Preference attributes"/>
  <Text name="attributes" value="$attributes"/>
  <Header value="Conversation"/>
  <Paragraphs name="conversation" value="$conversation" layout="dialogue" nameKey="role" textKey="content"/>
  <View style="display: flex; gap: 1em">
    <View style="flex: 50%">
      <Header value="Response A"/>
      <Text name="response_a" value="$response_a"/>
    </View>
    <View style="flex: 50%">
      <Header value="Response B"/>
      <Text name="response_b" value="$response_b"/>
    </View>
  </View>
  <Choices name="preference" toName="response_a" choice="single" showInline="true" required="true">
    <Choice value="{CHOICE_A}"/>
    <Choice value="{CHOICE_B}"/>
    <Choice value="{CHOICE_UNDECIDABLE}"/>
  </Choices>
  <TextArea name="note" toName="response_a" placeholder="Optional: why (tools used, facts checked)" rows="2"/>
</View>
"""

GLOBAL_GUIDELINE = (
    "Pick the response a careful expert would prefer: correct, follows every instruction, honest, safe; "
    "then helpful and clear. Verify facts, maths and code (search engines and LLM assistants are allowed, "
    "but do not rely on an LLM alone). If you cannot decide, choose 'Cannot decide': the item is discarded."
)


class LabelStudioFormatError(DataError):
    pass


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


def label_studio_task(pair: PreferencePair, seed: int) -> dict[str, Any]:
    """One Label Studio task for a pair (A/B order from `seed` and the pair id; the mapping in the data)."""
    a_is_chosen = unit("label-studio", seed, pair.id) < 0.5
    a, b = (pair.chosen, pair.rejected) if a_is_chosen else (pair.rejected, pair.chosen)
    attrs = "\n".join(f"{k}: {v}" for k, v in pair.attributes().items() if v) or "(none)"
    guideline = GLOBAL_GUIDELINE + ("\n\nFor this item: " + pair.annotation_guideline if pair.annotation_guideline else "")
    return {
        "data": {
            "rewardops_id": pair.id,
            "a_is_listed_chosen": a_is_chosen,
            "guideline": guideline,
            "attributes": attrs,
            "conversation": [{"role": m.role, "content": m.content} for m in pair.conversation],
            "response_a": a,
            "response_b": b,
        }
    }


_task = label_studio_task  # the old private name (tests/curation/test_human.py uses it)


def export_label_studio(pairs: Sequence[PreferencePair], out_dir: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write `tasks.json` (import it into a project) and `label_config.xml` (the project's labeling
    interface). Returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks_path, config_path = out / "tasks.json", out / "label_config.xml"
    tasks_path.write_text(json.dumps([label_studio_task(p, seed) for p in pairs], ensure_ascii=False, indent=1))
    config_path.write_text(LABEL_CONFIG)
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
            if len(choices) != 1 or choices[0] not in (CHOICE_A, CHOICE_B, CHOICE_UNDECIDABLE):
                raise LabelStudioFormatError(f"{where}: unexpected preference choices {choices!r}")
            return choices[0]
    return None


def import_label_studio(export_path: str | Path, pairs: Sequence[PreferencePair]) -> ImportResult:
    """Read Label Studio's JSON export of the exported tasks. Several annotators on one task: the
    majority decides; a tie or a majority of 'Cannot decide' makes the item undecidable (discarded).
    Cancelled (skipped) annotations do not count."""
    path = Path(export_path)
    try:
        tasks = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LabelStudioFormatError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(tasks, list):
        raise LabelStudioFormatError(f"{path}: expected a list of tasks (Label Studio's JSON export)")
    by_id = {p.id: p for p in pairs}
    res = ImportResult()
    seen: set[str] = set()
    for n, task in enumerate(tasks):
        where = f"{path}: task #{n}"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or "rewardops_id" not in data or "a_is_listed_chosen" not in data:
            raise LabelStudioFormatError(f"{where}: no data.rewardops_id / data.a_is_listed_chosen (not a task we exported)")
        pid = data["rewardops_id"]
        if pid not in by_id:
            raise LabelStudioFormatError(f"{where}: pair id {pid!r} is not in the batch that was exported")
        if pid in seen:
            raise LabelStudioFormatError(f"{where}: pair id {pid!r} appears twice")
        seen.add(pid)
        votes = Counter()
        annotators = []
        for k, ann in enumerate(task.get("annotations") or []):
            if ann.get("was_cancelled"):
                res.counts["cancelled_annotations"] += 1
                continue
            choice = choice_of(ann, f"{where} annotation #{k}")
            if choice is not None:
                votes[choice] += 1
                annotators.append(str(ann.get("completed_by", "?")))
        pair = by_id[pid]
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
        a_wins = top[0][0] == CHOICE_A
        chosen_better = a_wins == bool(data["a_is_listed_chosen"])
        who = "label-studio(" + ",".join(sorted(set(annotators))) + ")"
        res.gold.append(apply_human_verdict(pair, chosen_better, who))
        res.counts["confirmed" if chosen_better else "relabelled"] += 1
    missing = [p for p in pairs if p.id not in seen]
    res.pending.extend(missing)
    res.counts["pending"] += len(missing)
    return res


def label_studio_annotation(choice: str, completed_by: int = 1, cancelled: bool = False) -> dict[str, Any]:
    """One annotation as Label Studio exports it (for tests and for scripting reviews)."""
    return {
        "id": random.randint(1, 10**9),
        "completed_by": completed_by,
        "was_cancelled": cancelled,
        "result": [] if cancelled else [
            {"id": "r1", "from_name": "preference", "to_name": "response_a", "type": "choices",
             "origin": "manual", "value": {"choices": [choice]}}
        ],
    }


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
    """Review a small batch in the terminal: shows each pair (A/B in random order) and asks
    a / b / u (undecidable) / q (stop; the rest stay unreviewed, returned as None and counted)."""

    def __init__(self, console: Any = None, ask: Callable[[str], str] | None = None, seed: int = 0) -> None:
        from rich.console import Console

        self.console = console or Console()
        self.ask = ask or (lambda prompt: self.console.input(prompt))
        self.seed = seed
        self.name = "terminal"
        self.stopped_at: int | None = None

    def verify(self, pairs: Sequence[PreferencePair]) -> list[bool | None]:
        from rich.panel import Panel

        out: list[bool | None] = []
        for n, p in enumerate(pairs):
            t = label_studio_task(p, self.seed)["data"]
            c = self.console
            c.rule(f"[bold]{n + 1}/{len(pairs)}  {p.id}")
            c.print(Panel(t["attributes"], title="attributes"))
            c.print(Panel(t["guideline"], title="guideline"))
            for m in p.conversation:
                c.print(Panel(m.content, title=m.role))
            c.print(Panel(t["response_a"], title="Response A", border_style="cyan"))
            c.print(Panel(t["response_b"], title="Response B", border_style="magenta"))
            while True:
                ans = self.ask("[a] A better  [b] B better  [u] cannot decide  [q] quit > ").strip().lower()
                if ans in ("a", "b", "u", "q"):
                    break
                c.print("please answer a, b, u or q")
            if ans == "q":
                self.stopped_at = n
                break
            out.append(None if ans == "u" else (ans == "a") == t["a_is_listed_chosen"])
        return out

