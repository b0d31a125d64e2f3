"""The chat request/result types every backend speaks, and token accounting."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    """One chat-completions call. `seed` distinguishes samples and retries (and cache entries)."""

    messages: tuple[tuple[str, str], ...]
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = None
    # An OpenAI `response_format`, e.g. {"type": "json_schema", "json_schema": {...}}.
    response_format: dict[str, Any] | None = None

    @classmethod
    def of(cls, messages: Sequence[dict[str, str]], **kw: Any) -> "ChatRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), **kw)

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def cache_key(self, model: str) -> str:
        """Content hash of everything that determines the answer."""
        blob = json.dumps(
            {
                "model": model,
                "messages": self.messages,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
                "seed": self.seed,
                "response_format": self.response_format,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class ChatResult:
    """The answer text, or `error` saying why there is none after all retries."""

    text: str | None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    attempts: int = 0
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.text is not None


@dataclass
class TokenUsage:
    """Running totals per backend; thread-safe so worker threads can add to it."""

    requests: int = 0
    cache_hits: int = 0
    failures: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, result: ChatResult) -> None:
        with self._lock:
            self.requests += 1
            self.cache_hits += int(result.cached)
            self.failures += int(not result.ok)
            self.retries += max(0, result.attempts - 1)
            if not result.cached:
                self.prompt_tokens += result.prompt_tokens
                self.completion_tokens += result.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "failures": self.failures,
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


@runtime_checkable
class ChatBackend(Protocol):
    """Answers many chat requests; per-request failures come back as results, never raise."""

    name: str
    usage: TokenUsage

    def complete_many(self, requests: Sequence[ChatRequest]) -> list[ChatResult]: ...
