"""Parsers for each benchmark's official record format, one function per format.

A parser turns one raw record into an `EvalItem` or raises `MalformedRecord`; `collect` runs it
over every record, logs each bad one with its file and row, and keeps it in the quarantine list
that the results show. Formats (as each benchmark publishes its records):

- RewardBench v1 (`allenai/reward-bench`, split `filtered`): prompt, chosen, rejected, subset, id
- RewardBench 2 (`allenai/reward-bench-2`, split `test`): id, prompt, chosen[], rejected[],
  num_correct, subset (Ties ids are `ref:N` / `tied:N`)
- PPE Preference (`lmarena-ai/PPE-Human-Preference-V1`): question_id, prompt, response_1,
  response_2, winner (model_a / model_b / tie...)
- PPE Correctness (`lmarena-ai/PPE-*-Best-of-K`): question_id, prompt, response_1..response_K,
  scores[bool]
- RMB (`RMB_dataset/{Pairwise_set,BoN_set}/...json`): pair_uid / bon_uid, conversation_input,
  chosen/reject or bon_best/loser_list ({llm_name, answer}), category_path
- RM-Bench (`data/*_filtered.json`): id, prompt, chosen[3], rejected[3], subset / domain
- JudgeBench (`data/dataset=judgebench,response_model=*.jsonl`): pair_id, source, question,
  response_A, response_B, label (A>B / B>A)
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rewardops.evaluation.items import (
    EvalItem,
    LoadedBenchmark,
    MalformedRecord,
    Quarantined,
    conversation,
    prompt_from_text,
    require_str,
    require_str_list,
)
from rewardops.evaluation.scorers import judgebench_category
from rewardops.evaluation.sources import RawRecord

log = logging.getLogger("rewardops.evaluation")

Parser = Callable[[dict[str, Any], RawRecord], EvalItem]


def collect(raws: Iterable[RawRecord], parse: Parser, into: LoadedBenchmark | None = None) -> LoadedBenchmark:
    out = into or LoadedBenchmark(items=[])
    seen = {item.id for item in out.items}
    for raw in raws:
        if raw.file not in out.files:
            out.files.append(raw.file)
        reason = raw.error
        if reason is None:
            try:
                item = parse(raw.record or {}, raw)
                if item.id in seen:
                    raise MalformedRecord(f"duplicate id {item.id!r}")
            except MalformedRecord as exc:
                reason = str(exc)
            else:
                seen.add(item.id)
                out.items.append(item)
                continue
        bad = Quarantined(raw.file, raw.row, reason)
        log.warning("quarantined %s", bad)
        out.quarantined.append(bad)
    return out


def _id(record: dict[str, Any], *names: str) -> str:
    for name in names:
        value = record.get(name)
        if isinstance(value, (str, int)) and str(value) != "":
            return str(value)
    raise MalformedRecord(f"no id field (looked for {', '.join(names)})")


def _prompt(record: dict[str, Any], name: str = "prompt") -> tuple[dict[str, str], ...]:
    """A prompt that is a string, or a list of turns (multi-turn RewardBench / PPE rows)."""
    value = record.get(name)
    if isinstance(value, list):
        return conversation(value, name)
    return prompt_from_text(require_str(record, name))


# ---------------------------------------------------------------- RewardBench v1


def parse_rewardbench(record: dict[str, Any], raw: RawRecord) -> EvalItem:
    subset = require_str(record, "subset")
    return EvalItem(
        id=f"{subset}/{_id(record, 'id')}",
        subset=subset,
        prompt=_prompt(record),
        responses=(require_str(record, "chosen", True), require_str(record, "rejected", True)),
    )


# ---------------------------------------------------------------- RewardBench 2


def parse_rewardbench2(record: dict[str, Any], raw: RawRecord) -> EvalItem:
    subset = require_str(record, "subset")
    chosen = require_str_list(record, "chosen")
    rejected = require_str_list(record, "rejected")
    num_correct = record.get("num_correct", len(chosen))
    if not isinstance(num_correct, int) or num_correct != len(chosen):
        raise MalformedRecord(f"num_correct={num_correct!r} but chosen has {len(chosen)} responses")
    item_id = _id(record, "id")
    if subset.lower() == "ties" and not re.fullmatch(r"(ref|tied):\d+", item_id):
        raise MalformedRecord(f"Ties id {item_id!r} is not 'ref:N' or 'tied:N'")
    return EvalItem(
        id=item_id if subset.lower() == "ties" else f"{subset}/{item_id}",
        subset=subset,
        prompt=_prompt(record),
        responses=(*chosen, *rejected),
        meta={"num_correct": num_correct, "source_id": item_id},
    )


# ---------------------------------------------------------------- PPE Preference

PPE_WINNERS = {"model_a", "model_b", "tie", "tie (bothbad)"}


def parse_ppe_preference(record: dict[str, Any], raw: RawRecord) -> EvalItem:
    winner = record.get("winner")
    if winner not in PPE_WINNERS:
        raise MalformedRecord(f"winner {winner!r} is not one of {sorted(PPE_WINNERS)}")
    return EvalItem(
        id=_id(record, "question_id", "id"),
        subset=str(record.get("language") or "all"),
        prompt=_prompt(record),
        responses=(require_str(record, "response_1", True), require_str(record, "response_2", True)),
        meta={"winner": winner},
    )


# ---------------------------------------------------------------- PPE Correctness

PPE_TASKS = {
    "mmlu-pro": "MMLU-Pro",
    "math": "MATH",
    "gpqa": "GPQA",
    "mbpp-plus": "MBPP-Plus",
    "ifeval": "IFEval",
}


def ppe_task_from_file(file: str) -> str:
    name = Path(file.split("[")[0]).stem.lower().replace("_", "-")
    for key, title in sorted(PPE_TASKS.items(), key=lambda kv: -len(kv[0])):
        if key in name:
            return title
    return Path(file).stem


def parse_ppe_correctness(record: dict[str, Any], raw: RawRecord) -> EvalItem:
    correct = record.get("scores")
    if not isinstance(correct, list) or not correct or not all(isinstance(c, bool) for c in correct):
        raise MalformedRecord("field 'scores' must be a non-empty list of booleans")
    responses = []
    for i in range(1, len(correct) + 1):
        value = record.get(f"response_{i}")
        if not isinstance(value, str):
            raise MalformedRecord(f"response_{i} missing for {len(correct)} correctness bits")
        responses.append(value)
    task = str(record.get("benchmark") or ppe_task_from_file(raw.file))
    pairs = _conflict_pairs(record.get("sampled_conflict_pairs"), len(responses))
    # One row per (question, generator model): the same question_id repeats across model_name.
    model = record.get("model_name")
    if model is not None and not isinstance(model, str):
        raise MalformedRecord(f"model_name must be a string, not {type(model).__name__}")
    qid = _id(record, "question_id", "id")
    return EvalItem(
        id=f"{task}/{model}/{qid}" if model else f"{task}/{qid}",
        subset=task,
        prompt=_prompt(record),
        responses=tuple(responses),
        meta={"correct": correct, "model_name": model, "sampled_conflict_pairs": pairs},
    )


def _conflict_pairs(value: Any, k: int) -> list[list[int]] | None:
    """`sampled_conflict_pairs`: a list of [i, j] 0-based response indices (None when absent)."""
    if value is None:
        return None
    if hasattr(value, "tolist"):  # numpy arrays from Parquet
        value = value.tolist()
    if not isinstance(value, list):
        raise MalformedRecord("sampled_conflict_pairs must be a list of [i, j] index pairs")
    out = []
    for pair in value:
        if hasattr(pair, "tolist"):
            pair = pair.tolist()
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < k for x in pair)):
            raise MalformedRecord(f"sampled_conflict_pairs entry {pair!r} is not a pair of response indices in 0..{k - 1}")
        out.append([int(pair[0]), int(pair[1])])
    return out


# ---------------------------------------------------------------- RMB


def _rmb_answer(value: Any, name: str) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("answer"), str):
        raise MalformedRecord(f"{name} must be an object with a string 'answer'")
    return value["answer"]


def _rmb_category(record: dict[str, Any]) -> tuple[str, str, str]:
    """category_path like 'Pairwise_set/Helpfulness/Chat/Discussion' -> (kind, goal, scenario)."""
    path = require_str(record, "category_path")
    parts = path.split("/")
    if len(parts) < 2 or parts[0] not in ("Pairwise_set", "BoN_set") or parts[1] not in ("Helpfulness", "Harmlessness"):
        raise MalformedRecord(f"category_path {path!r} is not '<Pairwise_set|BoN_set>/<Helpfulness|Harmlessness>/...'")
    kind = "pairwise" if parts[0] == "Pairwise_set" else "bon"
    return kind, parts[1].lower(), "/".join(parts[1:])


def parse_rmb(record: dict[str, Any], raw: RawRecord) -> EvalItem:
    kind, goal, scenario = _rmb_category(record)
    prompt = conversation(record.get("conversation_input"), "conversation_input")
    if kind == "pairwise":
        responses = (_rmb_answer(record.get("chosen"), "chosen"), _rmb_answer(record.get("reject"), "reject"))
        item_id = f"pair/{_id(record, 'pair_uid')}"
    else:
        losers = record.get("loser_list")
        if not isinstance(losers, list) or not losers:
            raise MalformedRecord("loser_list must be a non-empty list")
        responses = (
            _rmb_answer(record.get("bon_best"), "bon_best"),
            *(_rmb_answer(x, f"loser_list[{i}]") for i, x in enumerate(losers)),
        )
        item_id = f"bon/{_id(record, 'bon_uid')}"
    return EvalItem(id=item_id, subset=scenario, prompt=prompt, responses=responses, meta={"kind": kind, "goal": goal})


# ---------------------------------------------------------------- RM-Bench

RMBENCH_FILE_DOMAINS = ("chat", "code", "math", "safety-refuse", "safety-response")


def rmbench_domain(record: dict[str, Any], file: str) -> str:
    domain = record.get("domain")
    if isinstance(domain, str) and domain:
        return domain
    stem = Path(file).name
    for name in sorted(RMBENCH_FILE_DOMAINS, key=len, reverse=True):
        if stem.startswith(name):
            return name
    raise MalformedRecord(f"no 'domain' field and file name {stem!r} names no domain")


def parse_rmbench(record: dict[str, Any], raw: RawRecord) -> EvalItem:
    chosen = require_str_list(record, "chosen", 3)
    rejected = require_str_list(record, "rejected", 3)
    if len(chosen) != 3 or len(rejected) != 3:
        raise MalformedRecord(f"chosen/rejected must have 3 styles each, got {len(chosen)}/{len(rejected)}")
    domain = rmbench_domain(record, raw.file)
    return EvalItem(
        id=f"{domain}/{_id(record, 'id')}",
        subset=domain,
        prompt=_prompt(record),
        responses=(*chosen, *rejected),
    )


# ---------------------------------------------------------------- JudgeBench


def judgebench_split(file: str, record: dict[str, Any]) -> str:
    model = str(record.get("response_model") or file)
    return "gpt" if "gpt" in model.lower() else "claude" if "claude" in model.lower() else model


def parse_judgebench(record: dict[str, Any], raw: RawRecord) -> EvalItem:
    label = record.get("label")
    if label not in ("A>B", "B>A"):
        raise MalformedRecord(f"label {label!r} is not 'A>B' or 'B>A'")
    source = require_str(record, "source")
    try:
        judgebench_category(source)
    except ValueError as exc:
        raise MalformedRecord(str(exc)) from None
    split = judgebench_split(raw.file, record)
    return EvalItem(
        id=f"{split}/{_id(record, 'pair_id')}",
        subset=source,
        prompt=prompt_from_text(require_str(record, "question")),
        responses=(require_str(record, "response_A", True), require_str(record, "response_B", True)),
        meta={"label": label, "split": split},
    )


def dump_records(records: list[dict[str, Any]], path: Path) -> Path:
    """Write records in the file type `path` names (used by tests and fixtures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(records), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
    return path
