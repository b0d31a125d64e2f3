"""One loopback HTTP server for every stand-in the tests need (Kubernetes API, KFP API, OpenAI).

A stand-in is a function `handle(request) -> Response`; `LoopbackServer(handle)` serves it on
127.0.0.1 on a free port from a thread, records every call, turns an exception in the handler into
a 500 (and a test failure when the server stops), and is stopped by its context manager. A
`contract(request, response) -> [problems]` checks every exchange (tests/support/contracts.py); a
problem is a test failure when the server stops. `Response.streamed` holds a connection open while
its iterator yields (a followed log):

    def handle(req: Request) -> Response:
        return Response.json(200, {"ok": True}) if req.path == "/healthz" else Response.json(404, {})

    with LoopbackServer(handle) as server:
        requests.get(server.url + "/healthz")
    assert server.calls == [("GET", "/healthz")]
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def parts(self) -> list[str]:
        return [p for p in self.path.strip("/").split("/") if p]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None  # sent as it comes, the connection closed at its end

    @classmethod
    def streamed(cls, status: int, chunks: Iterator[bytes], content_type: str = "text/plain") -> Response:
        return cls(status, b"", content_type, {}, chunks)

    @classmethod
    def json(cls, status: int, value: Any, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(value).encode(), "application/json", headers or {})

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain") -> Response:
        return cls(status, text.encode(), content_type)


class LoopbackServer:
    """`handle` served on 127.0.0.1 (see the module docstring)."""

    def __init__(self, handle: Callable[[Request], Response], name: str = "stand-in",
                 contract: Callable[[Request, Response], list[str]] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.handle = handle
        self.name = name
        self.contract = contract
        self.calls: list[tuple[str, str]] = []
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(self.command, url.path, urllib.parse.parse_qs(url.query),
                                  {k: v for k, v in self.headers.items()}, self.rfile.read(length) if length else b"")
                with server._lock:
                    server.calls.append((request.method, request.path))
                    server.requests.append(request)
                try:
                    response = server.handle(request)
                except Exception as exc:  # a stand-in bug is a test failure, not a dropped connection
                    with server._lock:
                        server.errors.append(f"{request.method} {request.path}: {exc!r}")
                    response = Response.json(500, {"error": repr(exc)})
                if server.contract is not None:
                    problems = server.contract(request, response)
                    if problems:
                        with server._lock:
                            server.errors.extend(f"contract: {p}" for p in problems)
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.content_type)
                    if response.stream is None:
                        self.send_header("Content-Length", str(len(response.body)))
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    if response.stream is None:
                        self.wfile.write(response.body)
                    else:
                        self.close_connection = True  # HTTP/1.0: the body ends when the connection does
                        for chunk in response.stream:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout under test)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.tls = tls
        if tls is not None:  # HTTPS with the caller's certificate (an API server's, as a pod sees it)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True, name=f"loopback-{name}")

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        assert self.errors == [], f"{self.name} failed while serving: {self.errors}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class ServedStandIn:
    """What every stand-in exposes of the `LoopbackServer` it runs as `self.server`: its url, the
    calls and requests it answered, the contract errors it found, and start/stop as a context."""

    server: LoopbackServer
    url = property(lambda self: self.server.url)
    calls = property(lambda self: self.server.calls)
    requests = property(lambda self: self.server.requests)
    errors = property(lambda self: self.server.errors)

    def __enter__(self):  # noqa: ANN204 - the stand-in itself
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)
