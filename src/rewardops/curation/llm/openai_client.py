"""An OpenAI-compatible chat-completions client (vLLM, SGLang, hosted APIs) over httpx.

Bounded concurrency (an asyncio semaphore), retries with exponential backoff and jitter on
timeouts, connection errors, 408/429/5xx and unreadable bodies, per-request timeouts, a disk
cache keyed by request content, and token accounting. A request that still fails comes back as
a `ChatResult` with `error` set; callers decide what "no answer" means.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from rewardops.curation.llm.base import ChatRequest, ChatResult, TokenUsage
from rewardops.curation.llm.cache import DiskCache
from rewardops.errors import ConfigError

log = logging.getLogger(__name__)

# Where a Kubernetes Secret holding the key is mounted by our charts (overridable).
DEFAULT_SECRET_FILE = "/var/run/secrets/rewardops/llm/api-key"
RETRY_STATUS = {408, 409, 425, 429}


class LLMConfigError(ConfigError):
    pass


def _read_secret_file(path: str | Path) -> str:
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise LLMConfigError(f"{path}: cannot read the API key file ({exc})") from exc
    if not key:
        raise LLMConfigError(f"{path}: the API key file is empty")
    return key


@dataclass
class OpenAIConfig:
    base_url: str
    model: str
    api_key: str | None = None
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 20.0
    cache_dir: Path | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> "OpenAIConfig":
        """REWARDOPS_LLM_BASE_URL / _MODEL / _API_KEY, or _API_KEY_FILE (a mounted Secret);
        OPENAI_BASE_URL / OPENAI_API_KEY as fallbacks. Explicit overrides win."""
        env = dict(os.environ if env is None else env)
        base_url = overrides.pop("base_url", None) or env.get("REWARDOPS_LLM_BASE_URL") or env.get("OPENAI_BASE_URL")
        model = overrides.pop("model", None) or env.get("REWARDOPS_LLM_MODEL")
        if not base_url:
            raise LLMConfigError("no LLM server: set REWARDOPS_LLM_BASE_URL (e.g. http://vllm:8000/v1)")
        if not model:
            raise LLMConfigError("no LLM model: set REWARDOPS_LLM_MODEL")
        api_key = overrides.pop("api_key", None) or env.get("REWARDOPS_LLM_API_KEY") or env.get("OPENAI_API_KEY")
        key_file = env.get("REWARDOPS_LLM_API_KEY_FILE")
        if not api_key and key_file:
            api_key = _read_secret_file(key_file)
        elif not api_key and Path(DEFAULT_SECRET_FILE).is_file():
            api_key = _read_secret_file(DEFAULT_SECRET_FILE)
        if "REWARDOPS_LLM_CONCURRENCY" in env:
            overrides.setdefault("concurrency", int(env["REWARDOPS_LLM_CONCURRENCY"]))
        if "REWARDOPS_LLM_TIMEOUT_S" in env:
            overrides.setdefault("timeout_s", float(env["REWARDOPS_LLM_TIMEOUT_S"]))
        if "REWARDOPS_LLM_CACHE" in env:
            overrides.setdefault("cache_dir", Path(env["REWARDOPS_LLM_CACHE"]))
        return cls(base_url=base_url.rstrip("/"), model=model, api_key=api_key, **overrides)


class _Garbage(Exception):
    """A 200 answer we cannot read (not JSON, no choices)."""


def _parse_body(body: Any) -> tuple[str | None, str | None, int, int, str | None]:
    """(text, refusal, prompt_tokens, completion_tokens, finish_reason) of a chat completion."""
    if not isinstance(body, dict) or not isinstance(body.get("choices"), list) or not body["choices"]:
        raise _Garbage("no choices in the answer")
    choice = body["choices"][0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise _Garbage("choice has no message")
    text, refusal = message.get("content"), message.get("refusal")
    if text is not None and not isinstance(text, str):
        raise _Garbage("message content is not text")
    if text is None and not refusal:
        raise _Garbage("message has neither content nor refusal")
    usage = body.get("usage") or {}
    return (
        text,
        str(refusal) if refusal else None,
        int(usage.get("prompt_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
        choice.get("finish_reason"),
    )


class OpenAIChatClient:
    """`complete_many(requests)` -> results in order. Safe to call from sync code."""

    def __init__(self, config: OpenAIConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.name = config.model
        self.usage = TokenUsage()
        self.cache = DiskCache(config.cache_dir) if config.cache_dir else None
        self._transport = transport

    @classmethod
    def from_env(cls, **overrides: Any) -> "OpenAIChatClient":
        return cls(OpenAIConfig.from_env(**overrides))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        return headers

    def _body(self, req: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": req.message_dicts(),
            "temperature": req.temperature,
            "max_tokens": req.max_tokens,
            "n": 1,
        }
        if req.seed is not None:
            body["seed"] = req.seed
        if req.response_format is not None:
            body["response_format"] = req.response_format
        return body

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.config.backoff_max_s)
            except ValueError:
                pass
        base = min(self.config.backoff_s * (2 ** (attempt - 1)), self.config.backoff_max_s)
        return base * (0.5 + random.random() / 2)

    async def _one(self, client: httpx.AsyncClient, sem: asyncio.Semaphore, req: ChatRequest) -> ChatResult:
        key = req.cache_key(self.config.model)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return ChatResult(text=hit["text"], cached=True, finish_reason=hit.get("finish_reason"),
                              prompt_tokens=hit.get("prompt_tokens", 0), completion_tokens=hit.get("completion_tokens", 0))
        last_error = "not attempted"
        attempts = 0
        for attempt in range(1, self.config.max_retries + 2):
            attempts = attempt
            retry_after = None
            async with sem:
                try:
                    resp = await client.post("/chat/completions", json=self._body(req), headers=self._headers())
                except httpx.TimeoutException:
                    last_error = f"timeout after {self.config.timeout_s:g}s"
                except httpx.TransportError as exc:
                    last_error = f"connection error: {exc.__class__.__name__}: {exc}"
                else:
                    if resp.status_code == 200:
                        try:
                            text, refusal, pt, ct, finish = _parse_body(resp.json())
                        except (ValueError, _Garbage) as exc:
                            last_error = f"unreadable answer: {exc}"
                        else:
                            if refusal is not None:
                                return ChatResult(None, f"refused: {refusal[:200]}", pt, ct, attempts=attempts)
                            if self.cache is not None:
                                self.cache.put(key, {"text": text, "finish_reason": finish,
                                                     "prompt_tokens": pt, "completion_tokens": ct})
                            return ChatResult(text, None, pt, ct, attempts=attempts, finish_reason=finish)
                    else:
                        last_error = f"HTTP {resp.status_code}: {resp.text[:200]}"
                        if resp.status_code not in RETRY_STATUS and resp.status_code < 500:
                            return ChatResult(None, last_error, attempts=attempts)  # our fault: retrying won't help
                        retry_after = resp.headers.get("retry-after")
            if attempt <= self.config.max_retries:
                log.debug("LLM request attempt %d failed (%s); retrying", attempt, last_error)
                await asyncio.sleep(self._backoff(attempt, retry_after))
        return ChatResult(None, last_error, attempts=attempts)

    async def _all(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        sem = asyncio.Semaphore(self.config.concurrency)
        limits = httpx.Limits(max_connections=self.config.concurrency, max_keepalive_connections=self.config.concurrency)
        async with httpx.AsyncClient(
            base_url=self.config.base_url,
            timeout=httpx.Timeout(self.config.timeout_s),
            limits=limits,
            transport=self._transport,
        ) as client:
            results = await asyncio.gather(*(self._one(client, sem, r) for r in requests))
        for r in results:
            self.usage.add(r)
        return list(results)

    def complete_many(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        if not requests:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._all(requests))
        # Called from inside an event loop (a notebook): run on a private loop in a thread.
        out: list[list[ChatResult]] = []
        t = threading.Thread(target=lambda: out.append(asyncio.run(self._all(requests))))
        t.start()
        t.join()
        return out[0]
