"""``pullguard serve``: uvicorn over TLS, with certificate hot reload and slow-client timeouts.

TLS (DESIGN 5): TLS 1.2 minimum, and for TLS 1.2 only ECDHE key exchange with AEAD ciphers
(AES-GCM, ChaCha20-Poly1305); TLS 1.3 suites are all AEAD. No compression, no renegotiation,
the server's cipher order. These are the choices of cert-manager's webhook server and of Go's
``crypto/tls`` defaults; no client certificate is asked for.

Certificate reload (cert-manager ``CertificateSource``; kopf's rotation check): a mounted Secret
changes by an atomic symlink swap and emits no useful file event, so every ``interval`` seconds
the certificate and key files are read and hashed; when the *content* changed, a complete new
``SSLContext`` is built from them and swapped in. New connections pick it up through the SNI
callback of the listening context (``SSLObject.context`` may be replaced during the handshake);
open connections keep theirs. A pair that does not load (half-written, key not matching) is
logged and retried next time; the old certificate keeps serving. Only the hashes are kept, never
the key bytes.

Slow clients: uvicorn times out idle keep-alive connections but not a client that connects and
then dribbles its request (slowloris). ``_TimedHttpToolsProtocol`` closes a connection whose request
head has not arrived within ``read_header_timeout`` seconds (Go ``http.Server.ReadHeaderTimeout``,
which cert-manager sets for the same reason), or whose body has not within ``read_timeout``.
The head timer runs from the connection's start and from the first byte of each later request;
an idle keep-alive connection between requests is left to the keep-alive timeout.
The TLS handshake itself is bounded by asyncio's 60 s ``ssl_handshake_timeout``.

Event loop: ``run`` drives the server on uvloop (libuv; its TLS and socket transports are
compiled, where asyncio's ``sslproto`` is Python) — under the B1 load of ``bench/admission.py`` that
took ~20% off the CPU of a cached admission. The TLS policy, the SNI swap of a reloaded certificate
and the timers of the slow-client timeouts are the same on both loops.

Shutdown: on SIGTERM uvicorn stops accepting, lets in-flight reviews finish for up to
``graceful_seconds``, then closes; the caller then closes the engine's clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("pullguard.server")

#: TLS 1.2 suites: forward secrecy (ECDHE) and AEAD only.
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1:!DSS"
#: How often the certificate files are re-read (cert-manager re-reads every 10 s).
RELOAD_INTERVAL = 10.0
#: Seconds a client has to send its request head (Go's ReadHeaderTimeout, against slowloris).
READ_HEADER_TIMEOUT = 10.0
#: Seconds a client has to send its whole body once the head arrived.
READ_TIMEOUT = 30.0
#: Idle keep-alive connections close after this many seconds (the API server reuses connections).
KEEP_ALIVE_TIMEOUT = 30
#: In-flight reviews get this long to finish on SIGTERM (webhook timeoutSeconds is at most 30).
GRACEFUL_SECONDS = 30


class CertificateError(Exception):
    """The certificate or key cannot be used; the message says which file and why."""


def _context(cert_file: str, key_file: str, sni: Callable[..., None] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise CertificateError(f"{exc.filename}: no such file") from None
    except ssl.SSLError as exc:
        raise CertificateError(
            f"{cert_file} / {key_file}: not a certificate and matching private key in PEM ({exc.reason})"
        ) from None
    except OSError as exc:
        raise CertificateError(f"{exc.filename or cert_file}: {exc.strerror}") from None
    if sni is not None:
        ctx.sni_callback = sni
    return ctx


def _digest(*paths: str) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    subject: str
    names: tuple[str, ...]
    not_after: dt.datetime
    fingerprint: str  # sha256 of the DER certificate


def describe(cert_file: str) -> CertificateInfo:
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            [str(n) for n in san.get_values_for_type(x509.DNSName)]
            + [str(n) for n in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    return CertificateInfo(cert.subject.rfc4514_string(), names, cert.not_valid_after_utc, fingerprint)


class CertificateSource:
    """The serving certificate: loaded at start, reloaded when the files' content changes."""

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        *,
        interval: float = RELOAD_INTERVAL,
        on_reload: Callable[[bool], None] | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.interval = interval
        self._on_reload = on_reload
        self._now = now
        self._listening: ssl.SSLContext | None = None
        self._current: ssl.SSLContext | None = None
        self._digest: str | None = None
        self.info: CertificateInfo | None = None
        self.failures = 0
        self.reloads = 0

    def load(self) -> ssl.SSLContext:
        """The first load; raises ``CertificateError`` (``serve`` refuses to start without one)."""
        digest = self._read_digest()
        self._listening = _context(self.cert_file, self.key_file, self._sni)
        self._current = self._listening
        self._digest = digest
        self.info = describe(self.cert_file)
        log.info("serving certificate loaded", extra={"fields": self._fields()})
        return self._listening

    @property
    def listening(self) -> ssl.SSLContext:
        """The context the listening socket was created with (loads on first use)."""
        return self._listening if self._listening is not None else self.load()

    def _read_digest(self) -> str:
        try:
            return _digest(self.cert_file, self.key_file)
        except OSError as exc:
            raise CertificateError(f"{exc.filename}: {exc.strerror}") from None

    def _sni(self, ssl_object: ssl.SSLObject, server_name: str | None, listening: ssl.SSLContext) -> None:
        current = self._current
        if current is not None and current is not listening:
            ssl_object.context = current

    def check(self) -> bool:
        """Reload if the files' content changed; True when a new certificate was swapped in."""
        try:
            digest = self._read_digest()
            if digest == self._digest:
                return False
            fresh = _context(self.cert_file, self.key_file)
            info = describe(self.cert_file)
            if self._read_digest() != digest:
                # Written while we read (a Secret update replaces the files one by one): what was
                # loaded may be neither pair. Try again on the next tick, when the writer is done.
                return False
        except (CertificateError, ValueError, OSError) as exc:
            self.failures += 1
            log.warning(
                "serving certificate changed but cannot be loaded; keeping the previous one",
                extra={"fields": {"error": str(exc), "consecutiveFailures": self.failures}},
            )
            if self._on_reload is not None:
                self._on_reload(False)
            return False
        self._current = fresh
        self._digest = digest
        self.info = info
        self.failures = 0
        self.reloads += 1
        log.info("serving certificate reloaded", extra={"fields": self._fields()})
        if self._on_reload is not None:
            self._on_reload(True)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # the watcher must outlive any surprise; the old certificate serves on
                log.exception("checking the serving certificate failed")

    def problem(self) -> str | None:
        """For ``/readyz``: None when a valid certificate serves, else why not."""
        if self._current is None or self.info is None:
            return "the serving certificate is not loaded"
        if self.info.not_after <= self._now():
            return f"the serving certificate expired at {self.info.not_after.isoformat()}"
        return None

    def _fields(self) -> dict[str, Any]:
        info = self.info
        if info is None:
            return {}
        return {
            "certFile": self.cert_file,
            "subject": info.subject,
            "names": list(info.names),
            "notAfter": info.not_after.isoformat(),
            "sha256": info.fingerprint,
        }


class _TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus read-header and read timeouts (see the module docstring).

    httptools (llhttp, in C) rather than h11 (pure Python): parsing the request and writing the
    response through h11 were about a sixth of the CPU of a cached admission (B1). The phases are
    those of Go's ``http.Server``: waiting for a request head (``read_header_timeout``, from the
    connection's start and from the first byte of each later request), then for its body
    (``read_timeout``), then none while pullguard works on the answer.
    """

    read_header_timeout: float = READ_HEADER_TIMEOUT
    read_timeout: float = READ_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._reading: str | None = None
        self._receiving = False  # between a request's first byte and its last
        self._unanswered = 0  # requests received whose response is not complete yet

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._reading = phase
        self._read_timer = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = None
        self._reading = None

    def _too_slow(self) -> None:
        phase = self._reading
        self._read_timer = None
        if self.transport.is_closing():
            return
        log.info(
            "closing a connection: the request %s did not arrive in time",
            "head" if phase == "head" else "body",
            extra={"fields": {"client": f"{self.client[0]}:{self.client[1]}" if self.client else None}},
        )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("head", self.read_header_timeout)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._receiving = True
        if self._reading != "head":  # a pipelined request behind one being answered
            self._arm("head", self.read_header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if not self.transport.is_closing():
            self._arm("body", self.read_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._receiving = False
        self._unanswered += 1
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._unanswered = max(0, self._unanswered - 1)
        if self.transport.is_closing() or self._receiving or self._unanswered:
            return
        # Between requests the connection is idle: uvicorn's keep-alive timeout governs it (as Go's
        # IdleTimeout would). The head timer starts again with the next request's first byte
        # (on_message_begin); armed here it would cut every idle keep-alive connection at
        # read_header_timeout.
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def _protocol(read_header_timeout: float, read_timeout: float) -> type[_TimedHttpToolsProtocol]:
    return type(
        "TimedHttpToolsProtocol",
        (_TimedHttpToolsProtocol,),
        {"read_header_timeout": read_header_timeout, "read_timeout": read_timeout},
    )


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal capture: ``Server.serve`` handles SIGTERM/SIGINT itself.

    uvicorn re-raises a captured SIGTERM once it has stopped, which kills the process before the
    caller can close its clients and exit 0; pullguard stops on the signal and returns instead.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port — read it back with ``getsockname``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP
    # (base_events._set_nodelay), and without it Nagle + delayed ACKs add ~40 ms per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` (a server's ``serve`` and its clean-up) to completion on a new uvloop loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


class Server:
    """uvicorn serving ``app`` over TLS from ``certs`` on ``sock``; ``serve()`` until stopped."""

    def __init__(
        self,
        app: Any,
        certs: CertificateSource,
        sock: socket.socket,
        *,
        read_header_timeout: float = READ_HEADER_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        keep_alive: int = KEEP_ALIVE_TIMEOUT,
        graceful_seconds: int = GRACEFUL_SECONDS,
    ) -> None:
        self.certs = certs
        self.sock = sock
        # read once: uvicorn closes the socket on shutdown, and its fd number is then reused
        host, port = sock.getsockname()[:2]
        self._address = (str(host), int(port))
        context = certs.listening

        def factory(_config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
            return context

        self.config = uvicorn.Config(
            app,
            http=_protocol(read_header_timeout, read_timeout),
            lifespan="off",
            access_log=False,
            log_config=None,
            timeout_keep_alive=keep_alive,
            timeout_graceful_shutdown=graceful_seconds,
            ssl_context_factory=factory,
            server_header=False,
            proxy_headers=False,
        )
        self.uvicorn = _Uvicorn(self.config)

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    @property
    def url(self) -> str:
        host, port = self.address
        return f"https://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def started(self) -> bool:
        return bool(self.uvicorn.started)

    def stop(self) -> None:
        """Ask for a graceful stop (thread-safe: uvicorn polls the flag); a second call forces it."""
        if self.uvicorn.should_exit:
            self.uvicorn.force_exit = True
        self.uvicorn.should_exit = True

    def _on_signal(self, signum: int) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        self.stop()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal, signum)
                handled.append(signum)
        watcher = asyncio.ensure_future(self.certs.watch())
        log.info("listening", extra={"fields": {"url": self.url}})
        try:
            await self.uvicorn.serve(sockets=[self.sock])
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            for handled_signal in handled:
                loop.remove_signal_handler(handled_signal)
