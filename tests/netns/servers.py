"""Small local servers for the network-guard tests that count what reaches them.

The guard tests on the host network use them on 127.0.0.x, and ``metadata_probe.py`` uses them
inside a loopback-only namespace on 169.254.169.254 and [fd00:ec2::254]. Each server counts
accepted TCP connections separately from requests, so "the server saw nothing" covers the TCP
handshake too. TLS is negotiated in the handler thread after the connection is counted. A
failed certificate check therefore still shows up as one connection, which tells "the guard
stopped it" apart from "TLS stopped it". Standard library only (plus the ``ssl`` context a test
passes in).
"""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Handler(http.server.BaseHTTPRequestHandler):
    """``/redirect?to=URL`` answers 302 to URL; every other path answers 200 naming the server."""

    protocol_version = "HTTP/1.1"
    server: _CountingHTTPServer

    def do_GET(self) -> None:
        self.server.owner.record_request(self.path)
        parts = urlsplit(self.path)
        if parts.path == "/redirect":
            target = parse_qs(parts.query)["to"][0]
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"served by {self.server.owner.host}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the counters are the record."""


class _CountingHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: CountingServer

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = self.socket.accept()
        self.owner.record_connection()
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        context = self.owner.ssl_context
        if context is not None:
            try:
                request = context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.owner.record_tls_failure(exc)
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is not a test failure; the counters say what happened."""


class CountingServer:
    """An HTTP (or HTTPS, given ``ssl_context``) server on ``host:port`` in a daemon thread.

    Use it as a context manager. ``port=0`` picks a free port. ``connections``, ``requests``,
    ``paths``, ``sni`` and ``tls_failures`` record what arrived.
    """

    def __init__(self, host: str, port: int = 0, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.connections = 0
        self.requests = 0
        self.paths: list[str] = []
        self.sni: list[str | None] = []
        self.tls_failures: list[str] = []
        self._lock = threading.Lock()
        if ssl_context is not None:
            ssl_context.sni_callback = self._record_sni
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_class = type("Server", (_CountingHTTPServer,), {"address_family": family})
        self._server: _CountingHTTPServer = server_class((host, port), _Handler)
        self._server.owner = self
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, path: str = "/", *, host: str | None = None, scheme: str | None = None) -> str:
        """A URL for this server; ``host`` replaces the address (a name or another spelling of it)."""
        name = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme or ('https' if self.ssl_context else 'http')}://{name}:{self.port}{path}"

    def reset(self) -> None:
        with self._lock:
            self.connections = self.requests = 0
            self.paths.clear()
            self.sni.clear()
            self.tls_failures.clear()

    def record_connection(self) -> None:
        with self._lock:
            self.connections += 1

    def record_request(self, path: str) -> None:
        with self._lock:
            self.requests += 1
            self.paths.append(path)

    def record_tls_failure(self, exc: BaseException) -> None:
        with self._lock:
            self.tls_failures.append(str(exc))

    def _record_sni(self, _sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        with self._lock:
            self.sni.append(name)

    def __enter__(self) -> CountingServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def counting_server(
    host: str, port: int = 0, *, ssl_context: ssl.SSLContext | None = None
) -> Iterator[CountingServer]:
    """``CountingServer`` as a ``with`` target (for fixtures)."""
    with CountingServer(host, port, ssl_context=ssl_context) as server:
        yield server
