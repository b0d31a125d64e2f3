"""A real HTTP server on 127.0.0.1 (the shared loopback helper) that speaks the OpenAI
chat-completions protocol, with a scripted `responder(body) -> Reply` so tests can make it slow,
fail, or answer garbage."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from support.loopback import LoopbackServer, Request, Response


@dataclass
class Reply:
    content: str | None = None
    status: int = 200
    delay_s: float = 0.0
    raw: bytes | None = None  # send these bytes as the body instead of a completion
    refusal: str | None = None
    headers: dict[str, str] | None = None


def completion(content: str | None, refusal: str | None = None, prompt_tokens: int = 11, completion_tokens: int = 3) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "stub",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": refusal}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class OpenAIStub:
    """The chat-completions endpoint on the shared loopback server (tests/support/loopback.py)."""

    def __init__(self, responder: Callable[[dict[str, Any]], Reply]) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.server = LoopbackServer(self.handle, "OpenAI stand-in")

    def handle(self, req: Request) -> Response:
        if req.method != "POST" or req.path.rstrip("/") != "/v1/chat/completions":
            return Response(404)
        body = req.json()
        with self._lock:
            self.requests.append(body)
            self.auth.append(req.headers.get("Authorization"))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            reply = self.responder(body)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            payload = reply.raw if reply.raw is not None else json.dumps(
                completion(reply.content, reply.refusal) if reply.status == 200 else {"error": {"message": "scripted"}}
            ).encode()
            return Response(reply.status, payload, "application/json", dict(reply.headers or {}))
        finally:
            with self._lock:
                self.in_flight -= 1

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def __enter__(self) -> "OpenAIStub":
        self.server.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.__exit__(*exc)


def user_text(body: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in body["messages"] if m["role"] == "user")
