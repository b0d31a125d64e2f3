"""Small hand-written records in the official schemas of the benchmarks that are hub-only
(spec peers.md §4; field lists from the dataset cards). Real fixtures for RM-Bench, JudgeBench
and RMB come from ../shared/data instead."""

from __future__ import annotations

from pathlib import Path

from rewardops.evaluation.loaders import dump_records


def rewardbench_v1() -> list[dict]:
    # allenai/reward-bench, split "filtered": prompt, chosen, chosen_model, rejected, rejected_model, subset, id
    rows = []
    for i, subset in enumerate(["alpacaeval-easy", "mt-bench-hard", "xstest-should-refuse", "math-prm", "hep-python"]):
        rows.append({
            "prompt": f"Question {i}: what is {i} + {i}?",
            "chosen": f"The answer is {2 * i}.",
            "chosen_model": "gpt-4",
            "rejected": f"It is {2 * i + 1}, I think.",
            "rejected_model": "llama-2-7b",
            "subset": subset,
            "id": 1000 + i,
        })
    return rows


def rewardbench_v2() -> list[dict]:
    # allenai/reward-bench-2, split "test"
    common = {"models": ["m1", "m2", "m3", "m4"], "additional_metadata": {"source": "hand-written"}}
    rows = [
        {"id": "11", "prompt": "Name a prime number.", "chosen": ["7 is prime."], "rejected": ["8 is prime.", "9 is prime.", "10 is prime."],
         "num_correct": 1, "num_incorrect": 3, "total_completions": 4, "subset": "Factuality", **common},
        {"id": "12", "prompt": "Write 'ok' in capitals.", "chosen": ["OK"], "rejected": ["ok", "Ok", "oK"],
         "num_correct": 1, "num_incorrect": 3, "total_completions": 4, "subset": "Precise IF", **common},
        {"id": "13", "prompt": "2+2?", "chosen": ["4"], "rejected": ["5", "3", "22"],
         "num_correct": 1, "num_incorrect": 3, "total_completions": 4, "subset": "Math", **common},
        {"id": "ref:0", "prompt": "Name a colour of the sky.", "chosen": ["Blue."], "rejected": ["Green.", "Purple."],
         "num_correct": 1, "num_incorrect": 2, "total_completions": 3, "subset": "Ties", **common},
        {"id": "tied:0", "prompt": "Name a colour of a rainbow.", "chosen": ["Red.", "Violet.", "Yellow."], "rejected": ["Black.", "Brown."],
         "num_correct": 3, "num_incorrect": 2, "total_completions": 5, "subset": "Ties", **common},
    ]
    return rows


def ppe_preference() -> list[dict]:
    # lmarena-ai/PPE-Human-Preference-V1
    base = {"language": "English", "conv_metadata": {}, "is_code": False, "is_refusal": False, "category_tag": {},
            "sim": 0.5, "length_a": 10, "length_b": 12, "token_diff": 2, "longer_won": False, "hard_prompt": False,
            "easy_prompt": True, "if_prompt": False, "math_prompt": False}
    return [
        {"question_id": "q1", "model_a": "a", "model_b": "b", "winner": "model_a", "prompt": "Say hi.",
         "response_1": "Hi there!", "response_2": "No.", **base},
        {"question_id": "q2", "model_a": "a", "model_b": "b", "winner": "model_b", "prompt": "Capital of France?",
         "response_1": "Berlin.", "response_2": "Paris.", **base},
        {"question_id": "q3", "model_a": "a", "model_b": "b", "winner": "tie", "prompt": "Pick a number.",
         "response_1": "3", "response_2": "4", **base},
    ]


def ppe_correctness(task: str, k: int = 4, models: tuple[str, ...] = ("gen",)) -> list[dict]:
    # lmarena-ai/PPE-<task>-Best-of-K: one row per (question_id, model_name), response_1..response_K with
    # correctness bits `scores`, and `conflict_pairs` / `sampled_conflict_pairs` ([i, j], 0-based)
    rows = []
    for model in models:
        for q in range(2):
            row = {"question_id": f"{task}-{q}", "question": f"Problem {q}", "options": [], "answer": "A", "answer_index": 0,
                   "category": "test", "model_name": model, "parsed_outputs": ["A"] * k, "prompt": f"Solve problem {q}."}
            bits = [(q + i) % 2 == 0 for i in range(k)]
            row["scores"] = bits
            row["mean_score"] = sum(bits) / k
            for i in range(k):
                row[f"response_{i + 1}"] = f"Attempt {i} by {model} at problem {q}: {'A' if bits[i] else 'B'}."
            row["conflict_pairs"] = [[i, j] for i in range(k) for j in range(i + 1, k) if bits[i] != bits[j]]
            row["sampled_conflict_pairs"] = row["conflict_pairs"][:2]
            rows.append(row)
    return rows


def write_hub_only_benchmarks(data_dir: Path) -> Path:
    dump_records(rewardbench_v1(), data_dir / "reward-bench" / "filtered.jsonl")
    dump_records(rewardbench_v2(), data_dir / "reward-bench-2" / "test.parquet")
    dump_records(ppe_preference(), data_dir / "ppe-preference" / "test.jsonl")
    for task in ("mmlu-pro", "math", "gpqa", "mbpp-plus", "ifeval"):
        dump_records(ppe_correctness(task), data_dir / "ppe-correctness" / f"{task}.jsonl")
    return data_dir
