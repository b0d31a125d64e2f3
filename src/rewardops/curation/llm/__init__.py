"""LLM backends for attribute annotation and judging.

- `OpenAIChatClient`: any OpenAI-compatible chat-completions server (vLLM, SGLang, hosted APIs).
- `LocalHFChat`: an in-process Hugging Face causal LM (default SmolLM2-135M-Instruct) that can
  generate and, for judging, compare the likelihood of fixed verdicts.
"""

from rewardops.curation.llm.base import ChatBackend, ChatRequest, ChatResult, TokenUsage

__all__ = ["ChatBackend", "ChatRequest", "ChatResult", "TokenUsage"]
