"""Reward-model training throughput: our packed trainer against TRL RewardTrainer, same run.

Same model (tiny-qwen3: Qwen3 architecture, 2 layers, hidden 64, SmolLM2 tokenizer), same pairs
(text pairs whose lengths follow ../shared/perf/trl_reference.py's mix: lognormal prompt and
responses, mean ~1,263 real tokens per pair), same token ids (our renderer's ids are handed to
TRL pre-tokenised), same pairs per optimizer step. Prints real (non-pad) tokens/s and the ratio.

TRL runs with its defaults (padded batches, gradient checkpointing on) except `max_length=None`,
because its default of 1,024 would silently drop the long pairs ours trains on (the perf
reference does the same); a second TRL row turns checkpointing off for an apples-to-apples view.

    nice python bench/bench_training.py [--pairs 96] [--steps 8] [--bs 8]

On CUDA (when a GPU is lent) pass --size qwen3-0.6b --pairs 512 --steps 12: a random-init
Qwen3-0.6B shape, bf16 (autocast / DeepSpeed bf16), varlen flash attention, checkpointing on.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_MODELS = Path(os.environ.get("REWARDOPS_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "models"
WORDS = "the of and a to in is you that it he was for on are as with his they I at be this have from".split()


def synth_pairs(n: int, seed: int = 0, max_len: int = 2048):
    """Text pairs with the reference length mix (about one token per word with this tokenizer)."""
    from rewardops.data.schema import Message, PreferencePair

    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = int(min(max_len // 2, max(16, rng.lognormvariate(5.3, 0.8))))
        c = int(min(max_len - p, max(8, rng.lognormvariate(5.6, 0.8))))
        r = int(min(max_len - p, max(8, rng.lognormvariate(5.6, 0.8))))
        words = lambda k: " ".join(rng.choice(WORDS) for _ in range(k))  # noqa: E731
        out.append(PreferencePair(id=f"b{i}", source="bench", conversation=[Message("user", words(p))],
                                  chosen=words(c), rejected=words(r)))
    return out


def ours(data_dir: str, out_dir: str, size: str, bs: int, steps: int, n_pairs: int) -> dict:
    from rewardops.training.config import resolve_config
    from rewardops.training.trainer import Trainer

    overrides = {"data": data_dir, "out": out_dir, "global_batch": bs, "max_steps": steps, "mlflow": False,
                 "export": False, "max_length": 4096, "micro_batch_tokens": 65536, "epochs": 100}
    if size != "tiny":
        overrides.update({"backbone": size, "gradient_checkpointing": True})
    config = resolve_config("demo-tiny-qwen3", overrides)
    trainer = Trainer(config, progress=False)
    rates, times, tokens = [], [], []
    for _ in range(steps):
        m = trainer.train_step()
        rates.append(m["perf/tokens_per_s"])
        times.append(m["perf/step_seconds"])
        tokens.append(m["perf/tokens_per_s"] * m["perf/step_seconds"])
    steady = slice(2, None)
    return {"impl": "rewardops (packed, no pad)", "tok_s": sum(tokens[steady]) / sum(times[steady]),
            "step_s": statistics.median(times[steady]), "padding_waste": 0.0}


def trl(encoded, model_path: str, bs: int, steps: int, grad_ckpt: bool | None) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    tok = AutoTokenizer.from_pretrained(model_path)
    from rewardops.rendering import ensure_distinct_pad

    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1, dtype=torch.float32)
    ensure_distinct_pad(tok, model)
    rows = [{"chosen_input_ids": c, "rejected_input_ids": r} for c, r in encoded]
    extra = {} if grad_ckpt is None else {"gradient_checkpointing": grad_ckpt}
    args = RewardConfig(output_dir=os.path.join(tempfile.gettempdir(), "trl_bench"), per_device_train_batch_size=bs,
                        max_steps=steps, logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=not torch.cuda.is_available(),
                        bf16=torch.cuda.is_available(), max_length=None, learning_rate=1e-3, remove_unused_columns=False,
                        dataloader_num_workers=0, **extra)
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    times, real, padded = [], [], []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, s, c, **k):
            self.t = time.perf_counter()

        def on_step_end(self, a, s, c, **k):
            times.append(time.perf_counter() - self.t)

    # Count the real and padded tokens of every batch TRL actually builds.
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        ids = batch.get("input_ids")
        if ids is None:
            ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]])
        mask = batch.get("attention_mask")
        if mask is None:
            mask = (ids != tok.pad_token_id).long()
        real.append(int(mask.sum()))
        padded.append(int(ids.numel()))
        return batch

    trainer.data_collator = counting
    trainer.train_dataset  # noqa: B018
    trainer.add_callback(Timer())
    trainer.train()
    # the dataloader may prefetch one batch ahead: pair each timed step with the batch it used
    n = len(times)
    real, padded = real[:n], padded[:n]
    steady = slice(2, None)
    name = "TRL RewardTrainer defaults" + ("" if grad_ckpt is None else f" (gradient_checkpointing={grad_ckpt})")
    return {"impl": name, "tok_s": sum(real[steady]) / sum(times[steady]), "step_s": statistics.median(times[steady]),
            "padding_waste": 1 - sum(real) / max(sum(padded), 1)}


QWEN3_SHAPES = {  # ../shared/perf/trl_reference.py
    "qwen3-0.6b": dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128),
    "qwen3-1.7b": dict(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
                       num_attention_heads=16, num_key_value_heads=8, head_dim=128),
}


def random_qwen3_folder(shape: str, root: Path) -> str:
    """A random-init Qwen3 sequence classifier of a paper size, with the Qwen3 tokenizer when the
    shared copy exists (SmolLM2's otherwise), saved as an HF folder both trainers load."""
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForSequenceClassification

    from rewardops.backbones import smollm2_tokenizer

    qwen_tok = SHARED_MODELS / "qwen3-tokenizer"
    tok = AutoTokenizer.from_pretrained(qwen_tok) if qwen_tok.is_dir() else smollm2_tokenizer()
    cfg = Qwen3Config(vocab_size=len(tok), max_position_embeddings=16384, num_labels=1,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=False, **QWEN3_SHAPES[shape])
    torch.manual_seed(0)
    model = Qwen3ForSequenceClassification(cfg)
    out = root / shape
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--bs", type=int, default=8)
    ap.add_argument("--size", default="tiny", help="tiny (CPU) or a backbone path/id for the GPU run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import transformers
    import trl as trl_pkg
    from transformers import AutoTokenizer

    from rewardops.backbones import resolve_backbone
    from rewardops.data.shards import write_pairs
    from rewardops.rendering import render_pair

    if args.size in QWEN3_SHAPES:
        model_path = random_qwen3_folder(args.size, Path(tempfile.mkdtemp(prefix="bench-backbone-")))
    else:
        model_path = resolve_backbone("tiny-qwen3" if args.size == "tiny" else args.size)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores, {args.threads} threads)"
    print(f"device: {device}; torch {torch.__version__}, transformers {transformers.__version__}, trl {trl_pkg.__version__}")
    pairs = synth_pairs(args.pairs)
    tok = AutoTokenizer.from_pretrained(model_path)
    encoded = [render_pair(tok, p) for p in pairs]
    per_pair = [len(c) + len(r) for c, r in encoded]
    print(f"{len(pairs)} pairs, mean real tokens per pair {sum(per_pair) / len(per_pair):.0f}, max {max(per_pair)}")

    with tempfile.TemporaryDirectory() as tmp:
        write_pairs(pairs, Path(tmp) / "data")
        backbone = "tiny" if args.size == "tiny" else model_path
        results = [ours(str(Path(tmp) / "data"), str(Path(tmp) / "out"), backbone, args.bs, args.steps, len(pairs))]
    print(json.dumps(results[-1]), flush=True)
    for ckpt in (None, False):
        results.append(trl(encoded, model_path, args.bs, args.steps, ckpt))
        print(json.dumps(results[-1]), flush=True)

    base = results[1]["tok_s"]
    print("\n| run | real tokens/s | median step s | padding waste | vs TRL defaults |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['impl']} | {r['tok_s']:,.0f} | {r['step_s']:.2f} | {r['padding_waste']:.1%} | {r['tok_s'] / base:.2f}x |")
    ratio = results[0]["tok_s"] / base
    print(f"\nratio ours / TRL defaults: {ratio:.2f}x (target >= 2x on CPU)")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": device, "results": results, "ratio": ratio}, indent=1))


if __name__ == "__main__":
    main()
