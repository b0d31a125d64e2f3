"""It learns: SmolLM2-135M trained as a Bradley-Terry reward model on CPU, held-out accuracy.

Two runs, each within a wall-clock training budget (world 10 minutes, UltraFeedback 6; the
loop stops when the budget runs out). On a shared 2-core CPU SmolLM2-135M trains at tens of
tokens/s, so by default only the top 4 of its 30 layers, the final norm and the score head are
trained (`trainable_layers`, off by default in the trainer) and the held-out sets are small:
  world:  the generated preference world (rewardops.data.world, noise 0.1) for training;
          a held-out slice from another seed with noise 0 (so the label is the truth) for
          evaluation, accuracy per task category, before and after training.
  ultrafeedback: ../shared/data/ultrafeedback-sample train_clean.jsonl -> the first pairs of
          eval_clean.jsonl (max length 384, truncating from the left), after training only.

    nice python bench/learns.py [--which world,ultrafeedback] [--minutes 10] [--out /tmp/learns]

Everything goes through the real trainer (packing, BT loss, AdamW, export); MLflow is off.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(os.environ.get("REWARDOPS_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def read_ultrafeedback(path: Path):
    """The sample's JSONL: prompt (a string or a message list), chosen/rejected (a string or the
    TRL conversational message list ending with the assistant turn)."""
    from rewardops.data.schema import Message, PreferencePair

    def last_text(value):
        if isinstance(value, str):
            return value
        return value[-1]["content"]

    out = []
    for row, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            prompt = rec["prompt"]
            if isinstance(prompt, str):
                conv = [Message("user", prompt)]
            else:
                conv = [Message(m["role"], m["content"]) for m in prompt]
            if not isinstance(rec["chosen"], str) and len(rec["chosen"]) > 1 and isinstance(prompt, str):
                conv = [Message(m["role"], m["content"]) for m in rec["chosen"][:-1]]
            out.append(PreferencePair(id=f"uf-{row}", source="ultrafeedback-sample", conversation=conv,
                                      chosen=last_text(rec["chosen"]), rejected=last_text(rec["rejected"]),
                                      task_category=None))
        except (KeyError, IndexError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: row {row + 1}: not a prompt/chosen/rejected record ({exc})") from exc
    return out


def run(name: str, train_pairs, eval_pairs, out: Path, minutes: float, overrides: dict, before_eval: bool = True) -> dict:
    from rewardops.data.shards import write_pairs
    from rewardops.training.config import load_config
    from rewardops.training.trainer import Trainer

    out.mkdir(parents=True, exist_ok=True)
    write_pairs(train_pairs, out / "train")
    write_pairs(eval_pairs, out / "eval")
    settings = {"data": str(out / "train"), "out": str(out / "run"), "eval_data": str(out / "eval"),
                "mlflow": False, "export": False, "resume": False, "eval_pairs": len(eval_pairs), **overrides}
    config = load_config("demo-smollm2-135m", settings)
    t0 = time.time()
    trainer = Trainer(config, progress=False)
    empty = {"accuracy": float("nan"), "pairs": 0, "per_category": {}}
    before = trainer.evaluate(config.eval_data, config.eval_pairs) if before_eval else empty
    print(f"[{name}] before: accuracy {before['accuracy']:.3f} on {before['pairs']} pairs ({time.time() - t0:.0f}s incl. load)", flush=True)
    budget = minutes * 60  # training time only; evaluation is extra
    start = time.time()
    history = []
    while trainer.state.step < trainer.total_steps and time.time() - start < budget:
        m = trainer.train_step()
        history.append(m)
        s = trainer.state.step
        if s == 1 or s % 5 == 0:
            print(f"[{name}] step {s}/{trainer.total_steps} loss {m['train/loss']:.3f} acc {m['train/accuracy']:.2f} "
                  f"{m['perf/tokens_per_s']:.0f} tok/s, {time.time() - start:.0f}s", flush=True)
    train_seconds = time.time() - start
    after = trainer.evaluate(config.eval_data, config.eval_pairs) if history or not before_eval else before
    result = {
        "name": name, "train_pairs_available": len(train_pairs), "pairs_trained": trainer.state.pairs_seen,
        "steps": trainer.state.step, "train_seconds": round(train_seconds), "tokens_trained": trainer.state.tokens_seen,
        "before": before, "after": after, "config": {k: settings[k] for k in overrides},
        "final_train_loss": history[-1]["train/loss"] if history else None,
    }
    print(f"[{name}] after {trainer.state.step} steps ({trainer.state.pairs_seen} pairs, {train_seconds:.0f}s): "
          f"accuracy {after['accuracy']:.3f} (before {before['accuracy']:.3f})", flush=True)
    for cat, v in after["per_category"].items():
        b = before["per_category"].get(cat, {}).get("accuracy", float("nan"))
        print(f"    {cat:24} {v['accuracy']:.3f} (before {b:.3f}) n={v['pairs']}", flush=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--which", default="world,ultrafeedback")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", default="/tmp/rewardops-learns")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--uf-minutes", type=float, default=6.0)
    ap.add_argument("--world-train", type=int, default=1200)
    ap.add_argument("--world-eval", type=int, default=64)
    ap.add_argument("--uf-eval", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--global-batch", type=int, default=8)
    ap.add_argument("--skip-before", action="store_true", help="no pre-training evaluation (saves CPU time)")
    ap.add_argument("--trainable-layers", type=int, default=4,
                    help="train the top N of SmolLM2's 30 layers + norm + score head (CPU budget); -1 = all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results = []
    common = {"lr": args.lr, "global_batch": args.global_batch, "max_length": 1024, "micro_batch_tokens": 4096,
              "num_threads": args.threads, "epochs": 1,
              "trainable_layers": None if args.trainable_layers < 0 else args.trainable_layers}
    if "world" in args.which:
        from rewardops.data.world import generate_world

        train = list(generate_world(args.world_train, noise=0.1, seed=0))
        held = list(generate_world(args.world_eval, noise=0.0, seed=1))
        results.append(run("world", train, held, out / "world", args.minutes, common, before_eval=not args.skip_before))
    if "ultrafeedback" in args.which:
        folder = SHARED / "data" / "ultrafeedback-sample"
        train = read_ultrafeedback(folder / "train_clean.jsonl")
        held = read_ultrafeedback(folder / "eval_clean.jsonl")[: args.uf_eval]
        results.append(run("ultrafeedback", train, held, out / "ultrafeedback", args.uf_minutes,
                           {**common, "max_length": 384, "micro_batch_tokens": 3072}, before_eval=not args.skip_before))
    print(json.dumps([{k: r[k] for k in ("name", "steps", "pairs_trained", "train_seconds")} |
                      {"before": r["before"]["accuracy"], "after": r["after"]["accuracy"]} for r in results], indent=1))


if __name__ == "__main__":
    main()
