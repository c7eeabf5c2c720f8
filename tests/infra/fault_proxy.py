"""A fault-injecting HTTP proxy in front of the real docker-registry or the token server.

What: ``FaultProxy(upstream_url)`` listens on a loopback address and forwards every request to
``upstream_url`` (the real ``/usr/bin/docker-registry`` or ``tests/infra/tokenserver.py``)
unchanged, except requests a ``Rule`` matches: those get the rule's ``Fault`` instead of, or on
top of, the real answer. Each fault is one way registries and their proxies misbehave in the
field (issue 10; OCI distribution-spec ``spec.md`` for the status codes and headers; RFC 9110
15.4 for redirects, 10.2.3 for ``Retry-After``):

- ``delay``: hold the request this long before forwarding (a registry slower than the timeout);
- ``status``: answer a status (500, 503, 429 …) with a distribution-spec error body and headers
  (``Retry-After``), never contacting the upstream;
- ``reset``: close the TCP connection with a RST (``SO_LINGER`` 0) before any answer;
- ``truncate``: forward the real answer but announce the full ``Content-Length``, send only the
  first half of the body and hang up;
- ``wrong_digest``: forward the real answer with a ``Docker-Content-Digest`` for other bytes;
- ``header``: forward the real answer with one header set to ``value`` (a malformed digest, a
  header larger than any client keeps);
- ``huge``: a manifest body of ``size`` bytes (HEAD announces it, without a digest, as a registry
  that cannot compute one does, so the client must GET it);
- ``gzip_bomb``: a ``Content-Encoding: gzip`` body that inflates to ``size`` bytes from a few
  hundred KiB (a client that inflates whole network chunks holds ~1000x each chunk in memory);
- ``encode``: forward, and compress the real body with ``gzip`` or ``deflate`` although the client
  asked for identity (or label it ``br`` without compressing: an encoding the client cannot undo);
- ``redirect_loop``: 307 to the same URL, forever; ``redirect``: 307 to ``target``;
- ``realm``: forward, and rewrite the ``realm`` of the real ``WWW-Authenticate`` challenge;
- ``drip``: forward, and write the real answer (status line and headers included) one chunk of
  ``chunk`` bytes every ``interval`` seconds — the slow drip that per-read timeouts never catch.

Why a proxy and not tests/support/scripted.py: the scripted server invents every answer. Here the
real registry answers (its digests, its challenges, its token flow) and only the fault is
synthetic, so a test shows what pullguard does when a real exchange goes wrong at one step.

What not: no TLS termination (the tests' registries are plain HTTP on loopback; TLS failures are
tested against the real registry with a real certificate elsewhere), no HTTP/2, one request per
connection (``Connection: close`` on every answer, so each request is matched afresh). Standard
library only (``http.server``, ``http.client``), served by tests/infra/_http.py.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import re
import socket
import struct
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.infra._http import LoopbackHTTP, QuietHandler

#: Headers that describe one hop, not the message (RFC 9110 7.6.1); never forwarded as they are.
_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"}
)
_REALM = re.compile(r'realm="[^"]*"')
_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass(frozen=True)
class Fault:
    """One fault; build it with the constructors below rather than by hand."""

    kind: str
    seconds: float = 0.0
    status: int = 0
    headers: Mapping[str, str] = field(default_factory=dict)
    size: int = 0
    target: str = ""
    chunk: int = 1

    @staticmethod
    def delay(seconds: float) -> Fault:
        return Fault("delay", seconds=seconds)

    @staticmethod
    def answer(status: int, headers: Mapping[str, str] | None = None) -> Fault:
        return Fault("status", status=status, headers=dict(headers or {}))

    @staticmethod
    def reset() -> Fault:
        return Fault("reset")

    @staticmethod
    def truncate() -> Fault:
        return Fault("truncate")

    @staticmethod
    def wrong_digest() -> Fault:
        return Fault("wrong_digest")

    @staticmethod
    def header(name: str, value: str) -> Fault:
        return Fault("header", headers={name: value})

    @staticmethod
    def huge(size: int = 10 * 1024 * 1024) -> Fault:
        return Fault("huge", size=size)

    @staticmethod
    def gzip_bomb(size: int = 64 * 1024 * 1024) -> Fault:
        return Fault("gzip_bomb", size=size)

    @staticmethod
    def encode(coding: str) -> Fault:
        return Fault("encode", target=coding)

    @staticmethod
    def redirect_loop() -> Fault:
        return Fault("redirect_loop")

    @staticmethod
    def redirect(target: str) -> Fault:
        return Fault("redirect", target=target)

    @staticmethod
    def realm(url: str) -> Fault:
        return Fault("realm", target=url)

    @staticmethod
    def drip(interval: float, chunk: int = 1) -> Fault:
        return Fault("drip", seconds=interval, chunk=chunk)


@dataclass
class Rule:
    """``method`` (None: any) and a regular expression searched in the request path (query included).

    ``times``: how many requests the rule applies to (None: all); ``hits`` counts them.
    """

    path: str
    fault: Fault
    method: str | None = None
    times: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (self.method is None or self.method == method) and re.search(self.path, path) is not None


@dataclass(frozen=True)
class Seen:
    """One request that reached the proxy, and the fault it got (None: forwarded untouched)."""

    method: str
    path: str
    fault: str | None
    headers: Mapping[str, str]


class FaultProxy(LoopbackHTTP):
    """``with FaultProxy(registry.url) as proxy: proxy.add(Rule(r"/manifests/", Fault.answer(503)))``."""

    thread_name = "fault-proxy"
    quiet_errors = True  # a client that gives up mid-answer is what half of these faults are about
    backlog = 64

    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"the fault proxy forwards to http://host:port, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.host = host
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()

    # -- the tests' side -------------------------------------------------------------------------

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget every rule and every recorded request (between tests on a shared proxy)."""
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def requests(self, fault: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if fault is None or s.fault == fault]

    def _take(self, method: str, path: str, headers: Mapping[str, str]) -> Fault | None:
        with self._lock:
            rule = next((r for r in self.rules if r.matches(method, path)), None)
            if rule is not None:
                rule.hits += 1
            self.seen.append(Seen(method, path, rule.fault.kind if rule else None, headers))
            return rule.fault if rule else None

    # -- the wire --------------------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self.read_body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                fault = owner._take(self.command, self.path, headers)
                if fault is None:
                    self._relay(*owner._forward(self.command, self.path, headers, body))
                    return
                kind = fault.kind
                if kind == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                if kind == "status":
                    self._synthetic(fault)
                    return
                if kind in ("redirect", "redirect_loop"):
                    location = fault.target if kind == "redirect" else self.path
                    self._send(307, {"Location": location}, b"")
                    return
                if kind == "huge":
                    self._huge(fault.size)
                    return
                if kind == "gzip_bomb":
                    bomb = _bomb(fault.size)
                    headers = {"Content-Type": _MANIFEST, "Content-Encoding": "gzip"}
                    with contextlib.suppress(OSError):  # the client stopped reading at its cap
                        self._send(200, headers, bomb)
                    return
                if kind == "delay":
                    time.sleep(fault.seconds)
                status, reply_headers, reply = owner._forward(self.command, self.path, headers, body)
                if kind == "wrong_digest":
                    reply_headers = _replace(
                        reply_headers, "Docker-Content-Digest", "sha256:" + hashlib.sha256(b"lie").hexdigest()
                    )
                elif kind == "realm":
                    realm = f'realm="{fault.target}"'
                    reply_headers = [
                        (k, _REALM.sub(realm, v) if k.lower() == "www-authenticate" else v)
                        for k, v in reply_headers
                    ]
                elif kind == "header":
                    for name, value in fault.headers.items():
                        reply_headers = _replace(reply_headers, name, value)
                elif kind == "encode" and self.command != "HEAD":
                    reply = _encoded(reply, fault.target)
                    reply_headers = _replace(reply_headers, "Content-Encoding", fault.target)
                if kind == "truncate" and self.command != "HEAD" and len(reply) > 1:
                    self._relay(status, reply_headers, reply[: len(reply) // 2], announce=len(reply))
                elif kind == "drip":
                    self._drip(status, reply_headers, reply, fault.seconds, fault.chunk)
                else:
                    self._relay(status, reply_headers, reply)

            def _send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self._relay(status, list(headers.items()), body)

            def _relay(
                self, status: int, headers: list[tuple[str, str]], body: bytes, announce: int | None = None
            ) -> None:
                self.wfile.write(_head(status, headers, len(body) if announce is None else announce))
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def _synthetic(self, fault: Fault) -> None:
                code = {429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}.get(fault.status, "UNKNOWN")
                body = (
                    b'{"errors":[{"code":"' + code.encode() + b'","message":"injected by the fault proxy"}]}'
                )
                headers = {"Content-Type": "application/json", **fault.headers}
                self._send(fault.status, headers, body)

            def _huge(self, size: int) -> None:
                headers = [("Content-Type", _MANIFEST)]
                self.wfile.write(_head(200, headers, size))
                if self.command != "HEAD":
                    block = b" " * 65536
                    try:
                        for _ in range(size // len(block)):
                            self.wfile.write(block)
                        self.wfile.write(b" " * (size % len(block)))
                    except OSError:
                        pass  # the client stopped reading at its cap: that is the point
                self.close_connection = True

            def _drip(
                self, status: int, headers: list[tuple[str, str]], body: bytes, interval: float, chunk: int
            ) -> None:
                data = _head(status, headers, len(body)) + (b"" if self.command == "HEAD" else body)
                try:
                    for i in range(0, len(data), chunk):
                        self.wfile.write(data[i : i + chunk])
                        self.wfile.flush()
                        time.sleep(interval)
                except OSError:
                    pass  # the client gave up: the timeout under test
                self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any  # noqa: N815

        return Handler

    def _forward(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The upstream's whole answer to the same request (``Host`` and hop headers adjusted)."""
        host, port = self.upstream
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            sent = {k: v for k, v in headers.items() if k not in _HOP and k not in ("host", "content-length")}
            conn.request(method, path, body=body or None, headers=sent)
            response = conn.getresponse()
            reply = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP | {"content-length"}]
            if method == "HEAD" and response.getheader("content-length"):
                kept.append(("X-Upstream-Length", str(response.getheader("content-length"))))
            return response.status, kept, reply
        finally:
            conn.close()


def _encoded(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    elif coding == "deflate":  # RFC 9110 8.4.1.2: the zlib format
        packer = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
    else:
        return body  # labelled only
    return packer.compress(body) + packer.flush()


@functools.cache
def _bomb(size: int) -> bytes:
    """``size`` spaces, gzip-compressed (about 1000:1), computed once per size."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = b" " * (1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join([*parts, packer.compress(b" " * (size % len(block))), packer.flush()])


def _replace(headers: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() != name.lower()] + [(name, value)]


def _head(status: int, headers: list[tuple[str, str]], length: int) -> bytes:
    reason = http.client.responses.get(status, "Unknown")
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers if k.lower() != "x-upstream-length"]
    upstream = next((v for k, v in headers if k.lower() == "x-upstream-length"), None)
    lines.append(f"Content-Length: {upstream if upstream is not None and length == 0 else length}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
