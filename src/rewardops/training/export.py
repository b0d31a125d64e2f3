"""Export a trained reward model as a plain Hugging Face folder that scores like the trainer.

The folder holds safetensors weights, config.json (num_labels=1, a pad token distinct from EOS),
the tokenizer and its chat template. Under ZeRO-3 every parameter is gathered first; the export
is refused if the `score` head is missing or all zero (the peers' most reported RM bug).
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

SCORE_KEY = "score.weight"


def gathered_state_dict(model: torch.nn.Module, zero_stage: int = 0) -> dict[str, torch.Tensor] | None:
    """A full fp32 CPU state dict on rank 0 (None on other ranks); ZeRO-3 shards are gathered."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    ctx: Any = nullcontext()
    if zero_stage == 3:
        import deepspeed

        ctx = deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None)
    with ctx:
        if rank != 0:
            return None
        return {k: v.detach().to("cpu", torch.float32).clone() for k, v in model.state_dict().items()}


def export_model(
    model: torch.nn.Module,
    tokenizer: Any,
    out_dir: str | Path,
    state_dict: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write the HF folder. `model` is the unwrapped *ForSequenceClassification module."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sd = state_dict if state_dict is not None else {k: v.detach().cpu().float() for k, v in model.state_dict().items()}
    score = sd.get(SCORE_KEY)
    if score is None:
        raise RuntimeError(f"export refused: no {SCORE_KEY} in the state dict (keys: {sorted(sd)[:8]}...)")
    if score.numel() == 0 or not torch.isfinite(score).all() or float(score.abs().sum()) == 0.0:
        raise RuntimeError(f"export refused: {SCORE_KEY} is empty, zero or non-finite (a ZeRO-3 shard not gathered?)")
    config = model.config
    config.num_labels = 1
    config.pad_token_id = tokenizer.pad_token_id
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise RuntimeError("export refused: pad token equals EOS; call rewardops.rendering.ensure_distinct_pad first")
    config.use_cache = True
    # The packed training attention is not something a loader knows: export the default one.
    trained_with = getattr(config, "_attn_implementation", None)
    model.set_attn_implementation("sdpa")
    try:
        model.save_pretrained(out, state_dict=sd, safe_serialization=True)
    finally:
        if trained_with and trained_with != "sdpa":
            model.set_attn_implementation(trained_with)
    tokenizer.save_pretrained(out)
    if getattr(tokenizer, "chat_template", None) and not (out / "chat_template.jinja").exists():
        (out / "chat_template.jinja").write_text(tokenizer.chat_template)
    if metadata:
        (out / "rewardops_training.json").write_text(json.dumps(metadata, indent=1, sort_keys=True, default=str))
    _check_export(out)
    return out


def _check_export(out: Path) -> None:
    from safetensors import safe_open

    files = sorted(out.glob("*.safetensors"))
    if not files:
        raise RuntimeError(f"{out}: export wrote no safetensors file")
    keys: set[str] = set()
    for f in files:
        with safe_open(str(f), framework="pt") as fh:
            keys.update(fh.keys())
    if SCORE_KEY not in keys:
        raise RuntimeError(f"{out}: exported weights have no {SCORE_KEY}")


def load_exported(path: str | Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) of an exported folder, the way a user loads it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=dtype, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    return model.eval(), tokenizer
