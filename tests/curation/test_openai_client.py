"""The OpenAI-compatible client against a real HTTP server on loopback (tests/curation/openai_stub.py)."""

from __future__ import annotations

import json
import threading
from collections import defaultdict

import pytest

from rewardops.curation.llm.base import ChatRequest
from rewardops.curation.llm.openai_client import LLMConfigError, OpenAIChatClient, OpenAIConfig

from .openai_stub import OpenAIStub, Reply, user_text


def _client(stub: OpenAIStub, **kw) -> OpenAIChatClient:
    cfg = dict(base_url=stub.base_url, model="stub-model", api_key="sk-test", timeout_s=2.0, max_retries=3,
               backoff_s=0.01, backoff_max_s=0.05)
    cfg.update(kw)
    return OpenAIChatClient(OpenAIConfig(**cfg))


def _req(text: str, **kw) -> ChatRequest:
    return ChatRequest.of([{"role": "user", "content": text}], **kw)


def test_answers_in_order_with_bounded_concurrency_and_token_accounting():
    def responder(body):
        return Reply(content="echo:" + user_text(body), delay_s=0.05)

    with OpenAIStub(responder) as stub:
        client = _client(stub, concurrency=3)
        results = client.complete_many([_req(f"q{i}") for i in range(12)])
    assert [r.text for r in results] == [f"echo:q{i}" for i in range(12)]
    assert stub.max_in_flight <= 3
    assert stub.max_in_flight >= 2  # it did run concurrently
    assert all(a == "Bearer sk-test" for a in stub.auth)
    assert stub.requests[0]["model"] == "stub-model"
    assert client.usage.requests == 12 and client.usage.prompt_tokens == 12 * 11 and client.usage.completion_tokens == 36


def test_retries_500_garbage_and_timeouts_then_succeeds():
    seen = defaultdict(int)
    lock = threading.Lock()

    def responder(body):
        q = user_text(body)
        with lock:
            seen[q] += 1
            n = seen[q]
        if q == "flaky500" and n <= 2:
            return Reply(status=500)
        if q == "garbage" and n == 1:
            return Reply(raw=b"<html>bad gateway</html>")
        if q == "nochoices" and n == 1:
            return Reply(raw=json.dumps({"choices": []}).encode())
        if q == "slow" and n == 1:
            return Reply(content="late", delay_s=4.0)
        if q == "ratelimited" and n == 1:
            return Reply(status=429, headers={"Retry-After": "0"})
        return Reply(content="ok:" + q)

    with OpenAIStub(responder) as stub:
        client = _client(stub, timeout_s=1.5)
        qs = ["flaky500", "garbage", "nochoices", "slow", "ratelimited", "fine"]
        results = client.complete_many([_req(q) for q in qs])
    assert [r.text for r in results] == [f"ok:{q}" for q in qs]
    assert results[0].attempts == 3 and results[-1].attempts == 1
    assert client.usage.retries == 2 + 1 + 1 + 1 + 1
    assert client.usage.failures == 0


def test_gives_up_after_retries_and_does_not_retry_client_errors():
    def responder(body):
        q = user_text(body)
        if q == "always500":
            return Reply(status=503)
        if q == "bad-request":
            return Reply(status=400)
        if q == "hang":
            return Reply(content="never", delay_s=1.0)
        return Reply(refusal="I can't help with that.")

    with OpenAIStub(responder) as stub:
        client = _client(stub, timeout_s=0.2, max_retries=2)
        r500, r400, rhang, rrefuse = client.complete_many([_req("always500"), _req("bad-request"), _req("hang"), _req("refuse")])
        counts = defaultdict(int)
        for b in stub.requests:
            counts[user_text(b)] += 1
    assert not r500.ok and "HTTP 503" in r500.error and r500.attempts == 3
    assert not r400.ok and "HTTP 400" in r400.error and counts["bad-request"] == 1
    assert not rhang.ok and "timeout" in rhang.error and counts["hang"] == 3
    assert not rrefuse.ok and rrefuse.error.startswith("refused")
    assert client.usage.failures == 4


def test_disk_cache_keyed_by_request_content(tmp_path):
    with OpenAIStub(lambda body: Reply(content="a:" + user_text(body) + f":{body.get('seed')}")) as stub:
        client = _client(stub, cache_dir=tmp_path / "cache")
        first = client.complete_many([_req("x", seed=1), _req("y", seed=1)])
        again = _client(stub, cache_dir=tmp_path / "cache").complete_many([_req("x", seed=1), _req("x", seed=2)])
        n_requests = len(stub.requests)
    assert [r.text for r in first] == ["a:x:1", "a:y:1"]
    assert again[0].cached and again[0].text == "a:x:1"
    assert not again[1].cached and again[1].text == "a:x:2"  # a different seed is a different request
    assert n_requests == 3


def test_config_from_env_and_kubernetes_secret_file(tmp_path):
    secret = tmp_path / "api-key"
    secret.write_text("sk-from-secret\n")
    cfg = OpenAIConfig.from_env(env={"REWARDOPS_LLM_BASE_URL": "http://vllm:8000/v1/", "REWARDOPS_LLM_MODEL": "qwen",
                                     "REWARDOPS_LLM_API_KEY_FILE": str(secret), "REWARDOPS_LLM_CONCURRENCY": "5"})
    assert (cfg.base_url, cfg.model, cfg.api_key, cfg.concurrency) == ("http://vllm:8000/v1", "qwen", "sk-from-secret", 5)
    cfg = OpenAIConfig.from_env(env={"OPENAI_BASE_URL": "https://api.example/v1", "REWARDOPS_LLM_MODEL": "m",
                                     "OPENAI_API_KEY": "sk-env"})
    assert cfg.api_key == "sk-env"
    with pytest.raises(LLMConfigError, match="REWARDOPS_LLM_BASE_URL"):
        OpenAIConfig.from_env(env={})
    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(LLMConfigError, match="empty"):
        OpenAIConfig.from_env(env={"REWARDOPS_LLM_BASE_URL": "http://x", "REWARDOPS_LLM_MODEL": "m",
                                   "REWARDOPS_LLM_API_KEY_FILE": str(empty)})


def test_connection_refused_is_an_error_result_not_an_exception():
    client = OpenAIChatClient(OpenAIConfig(base_url="http://127.0.0.1:9/v1", model="m", max_retries=1, backoff_s=0.01))
    (res,) = client.complete_many([_req("x")])
    assert not res.ok and "connection error" in res.error and res.attempts == 2
