"""A scripted HTTP server for registry MISBEHAVIOUR the real registry cannot produce.

This is a wire-level fake, used only where the real ``docker-registry`` cannot be made to act
the way a test needs (STYLE rule 8, after regclient ``internal/reqresp``): content whose digest is
not the one announced or asked for, 429 with ``Retry-After``, 5xx, answers that never come or
trickle in, bodies larger than any manifest, redirects to other origins, token realms that point
somewhere else. Everything a real registry does is tested against the real registry instead.

Each route is ``(method, path) -> Reply`` (or a callable taking the request and returning one);
every request is recorded with its headers, so tests can assert what pullguard sent (never a
credential to the wrong host). Served by tests/infra/_http.py on 127.0.0.x:0 in a daemon thread;
``connections`` counts the TCP connections accepted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.infra._http import LoopbackHTTP, QuietHandler


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0  # seconds before the status line is sent
    trickle: float = 0.0  # seconds between body chunks of 16 bytes (a slow drip)
    length: int | None = None  # Content-Length to announce (default: len(body))


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: Mapping[str, str]


Route = Reply | Callable[[Seen], Reply]


class ScriptedServer(LoopbackHTTP):
    """``with ScriptedServer("127.0.0.1") as s: s.route("HEAD", "/v2/x/manifests/v1", Reply(...))``."""

    thread_name = "scripted-registry"
    quiet_errors = True  # a client that gives up mid-answer (timeouts are the point) is not an error

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[tuple[str, str], Route] = {}
        self.seen: list[Seen] = []
        self.connections = 0
        self._lock = threading.Lock()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                self.read_body()
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                with owner._lock:
                    owner.seen.append(seen)
                path = urlsplit(self.path).path
                route = owner.routes.get((self.command, path))
                if route is None and self.command == "GET":
                    # A registry answers GET as it answers HEAD, plus the body: a path scripted only
                    # for HEAD answers a GET alike (pullguard GETs a manifest it does not hold yet).
                    route = owner.routes.get(("HEAD", path))
                reply = route(seen) if callable(route) else route
                if reply is None:
                    reply = Reply(
                        404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"NOT_FOUND"}]}'
                    )
                if reply.delay:
                    time.sleep(reply.delay)
                self.send_response(reply.status)
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.send_header(
                    "Content-Length", str(reply.length if reply.length is not None else len(reply.body))
                )
                self.end_headers()
                if reply.length is not None and reply.length != len(reply.body):
                    self.close_connection = True  # hang up after a short body: a truncated answer
                if self.command == "HEAD":
                    return
                try:
                    if reply.trickle:
                        for i in range(0, len(reply.body), 16):
                            self.wfile.write(reply.body[i : i + 16])
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_HEAD = do_POST = do_PUT = _any  # noqa: N815 - http.server dispatches on these names

        return Handler

    def connected(self) -> None:
        with self._lock:
            self.connections += 1

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def route(self, method: str, path: str, reply: Route) -> None:
        self.routes[(method, path)] = reply

    def requests(self, method: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if method is None or s.method == method]
