"""The threaded loopback HTTP server under the tests' small wire-level servers.

What: ``LoopbackHTTP``, a base that gives a server ``start()``/``stop()``, ``with``, ``port`` and
``url``: it serves the request handler class ``handler()`` returns on ``host`` (127.0.0.1 unless
set), port 0, in a daemon thread — over TLS when ``tls_context()`` returns a context, negotiated
in the connection's own thread so one stuck client cannot hold up the accept loop; and
``QuietHandler``, a ``BaseHTTPRequestHandler`` that does not log (the servers record what they
were asked) and writes a whole reply (``reply``/``reply_json``) in one call.

Why: the fakes, the token server and the scripted registry repeated the same bind / serve_forever
thread / Content-Length / shutdown code; each now holds only its own wire format.

What not: no routing and no state. tests/netns/servers.py does not use it: it must stay standard
library only for the network-namespace child, and importing ``tests.infra`` loads third-party
modules. Built on Python's ``http.server``/``socketserver`` (``ThreadingHTTPServer``,
``serve_forever``/``shutdown``; ``request_queue_size`` is the ``listen()`` backlog).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: each server records the requests it was asked."""

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(
        self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status: int, doc: object, headers: Mapping[str, str] | None = None) -> None:
        self.reply(status, json.dumps(doc).encode(), "application/json", headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: LoopbackHTTP, handler: type[BaseHTTPRequestHandler]) -> None:
        self.owner = owner
        self.request_queue_size = owner.backlog  # read by server_activate() in __init__
        super().__init__((owner.host, 0), handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        pair = self.socket.accept()
        self.owner.connected()
        return pair

    def finish_request(self, request: Any, client_address: Any) -> None:
        context = self.owner.tls_context()
        if context is not None:
            try:
                request = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return  # the client refused the certificate (a test's point) or hung up
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.owner.quiet_errors:
            return
        super().handle_error(request, client_address)


class LoopbackHTTP:
    """Subclasses define ``handler()``; they may set ``host``, ``backlog``, ``thread_name``."""

    host = "127.0.0.1"
    #: the listen() backlog; http.server's default of 5 drops SYNs from clients that connect in bursts
    backlog = 5
    thread_name = "loopback-http"
    #: True: a handler exception (a client that gave up mid-answer) prints no traceback
    quiet_errors = False
    _http: _Server | None = None
    _http_thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def tls_context(self) -> ssl.SSLContext | None:
        """A server-side context to speak HTTPS; plain HTTP by default."""
        return None

    def connected(self) -> None:
        """Called once per accepted TCP connection (a hook for servers that count them)."""

    def start(self) -> Self:
        if self._http is None:
            self._http = _Server(self, self.handler())
            self._http_thread = threading.Thread(
                target=self._http.serve_forever, args=(0.05,), name=self.thread_name, daemon=True
            )
            self._http_thread.start()
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(timeout=5)
            self._http_thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError(f"{self.thread_name} is not running")
        return int(self._http.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_context() is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"
