"""The only way pullguard makes HTTP connections: an httpx client whose every TCP connection is guarded.

What: ``make_client`` builds the ``httpx.AsyncClient`` that the registry client, token requests
and redirects use. Every connection its pool opens goes through ``GuardedNetworkBackend.connect_tcp``.
That method checks the host string (``core.destinations.refusal_for_host``), resolves the name
once, checks every resolved address (``refusal``), and connects to a checked address literal.

Why: DESIGN 5 and the OWASP Server-Side Request Forgery Prevention Cheat Sheet. Registry hosts,
token realms and redirect targets come from users and from registries, and must not reach the
instance metadata service or the local host. Three details matter:

- The check sits at the socket layer, not on URLs. Redirects, token realms and HTTP/2 connections
  all open connections through the pool, so no caller can forget the check. This also covers a
  caller that passes ``follow_redirects=True``.
- Resolve once, check, then connect to the checked address. If we validated a name and then let
  the socket layer resolve it again, a DNS server answering with a short TTL could return a
  public address to the check and 169.254.169.254 to the connect (DNS rebinding; OWASP lists it
  as the classic bypass). The inner backend is given an IP literal, so it never resolves
  anything. TLS still verifies the original host name: httpcore passes ``server_hostname`` from
  the request's origin (or the ``sni_hostname`` extension) to ``start_tls``, never the address
  we connected to (httpcore ``_async/connection.py``, ``AsyncHTTPConnection._connect``).
- A name that resolves to several addresses is connected only through the allowed ones, and
  refused when none is allowed. Refused addresses are never contacted, so filtering keeps the
  guarantee. Refusing the whole name would instead break legitimate dual-stack and split-horizon
  registries, for example one whose AAAA record is a ULA while ``allowPrivate`` is false. The
  skipped addresses are logged.

How ``DestinationRefusedError`` reaches callers: it is raised inside ``connect_tcp`` and is not
an httpcore exception. httpx's ``map_httpcore_exceptions`` re-raises unknown exceptions
unchanged, and ``request_context`` only decorates ``httpx.RequestError``. So
``AsyncClient.request``/``send``/``stream`` raise the very ``DestinationRefusedError`` object, not
an ``httpx.ConnectError``. httpcore's connection retries only cover ``ConnectError`` and
``ConnectTimeout``, so a refusal is never retried. Resolution failures become
``httpx.ConnectError`` and a resolution that outlives the connect timeout becomes
``httpx.ConnectTimeout``, the same types httpx raises when its own resolver fails.
tests/test_http_guard.py pins all of this.

Deliberately not here: redirect policy and credential stripping (the registry client follows
redirects itself), and retries. The default resolver needs an asyncio event loop; pullguard runs
only on asyncio.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

from webhook.core.destinations import DestinationPolicy, literal_address, refusal, refusal_for_host
from webhook.core.errors import ConfigError, ConfigProblem, DestinationRefusedError

__all__ = [
    "GuardedNetworkBackend",
    "GuardedTransport",
    "Resolver",
    "make_client",
    "make_ssl_context",
    "system_resolver",
]

logger = logging.getLogger(__name__)

#: ``(host, port) -> addresses``. Each address is an IP literal; an IPv6 zone, if any, is
#: written ``%zone``. Raise ``OSError`` (e.g. ``socket.gaierror``) when the name does not resolve.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]

#: httpcore's socket option shape (``httpcore._backends.base.SOCKET_OPTION``, not exported).
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]

#: Keep-alive lifetime, as httpx's default: long enough for a check's burst of requests to one
#: registry, short enough that a registry's changed DNS answer is picked up within seconds.
KEEPALIVE_SECONDS = 5.0


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve with the C library (``loop.getaddrinfo``, which runs in the default executor)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(sockaddr[0]) for _family, _type, _proto, _canonname, sockaddr in infos]


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to destinations the policy allows.

    It wraps ``inner`` (default: ``httpcore.AnyIOBackend``, which is what httpcore's default
    backend uses on asyncio). ``resolver`` defaults to ``system_resolver``. Tests inject both:
    a resolver to control DNS answers, and an inner backend to observe where a connection goes
    without sending a packet.
    """

    def __init__(
        self,
        policy: DestinationPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self._resolve: Resolver = resolver or system_resolver
        self._inner: httpcore.AsyncNetworkBackend = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        reason = refusal_for_host(host, self.policy)
        if reason is not None:
            raise DestinationRefusedError(host, literal_address(host), reason)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        literal = literal_address(host)
        addresses = [literal] if literal is not None else await self._resolve_once(host, port, timeout)
        allowed = self._allowed(host, addresses)
        options = list(socket_options) if socket_options is not None else None
        for index, address in enumerate(allowed):
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=remaining, local_address=local_address, socket_options=options
                )
            except httpcore.ConnectError:  # refused or unreachable: try the next checked address
                if index == len(allowed) - 1:
                    raise
        raise AssertionError("unreachable: _allowed never returns an empty list")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refused: a Unix socket is never a registry, and would bypass the address check."""
        raise DestinationRefusedError(path, None, "Unix domain sockets are never contacted")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)

    async def _resolve_once(self, host: str, port: int, timeout: float | None) -> list[str]:
        """Resolve ``host`` exactly once, within the connect timeout, deduplicating answers in order."""
        try:
            async with asyncio.timeout(timeout):
                answers = await self._resolve(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from exc
        except (OSError, UnicodeError) as exc:  # gaierror; UnicodeError: a name IDNA cannot encode
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(a) for a in answers))
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}: no addresses")
        return addresses

    def _allowed(self, host: str, addresses: list[str]) -> list[str]:
        """The addresses the policy allows, in resolver order; raises when there is none."""
        refused = {a: r for a in addresses if (r := refusal(a, self.policy)) is not None}
        allowed = [a for a in addresses if a not in refused]
        if not allowed:
            first = addresses[0]
            many = (
                f"all {len(addresses)} addresses it resolves to are refused; " if len(addresses) > 1 else ""
            )
            raise DestinationRefusedError(host, first, many + refused[first])
        if refused:
            logger.info("%s: skipping refused addresses: %s", host, "; ".join(refused.values()))
        return [literal_address(a) or a for a in allowed]


class GuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connection pool opens connections through a guarded backend.

    httpx 0.28 has no constructor argument for httpcore's ``network_backend``, so we build the
    transport as usual and then replace its pool with one that has the same settings plus our
    backend. The alternative is a transport written from scratch. That would have to copy httpx's
    request conversion and its ``map_httpcore_exceptions``, which is what gives callers the
    documented ``httpx.*`` exception types. ``_pool`` is the transport's only state and is
    private, so the constructor fails closed if it is missing. A test sends a request and
    checks that the guard saw it.
    """

    def __init__(
        self,
        backend: GuardedNetworkBackend,
        *,
        ssl_context: ssl.SSLContext,
        http2: bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=64, keepalive_expiry=KEEPALIVE_SECONDS)
        super().__init__(verify=ssl_context, trust_env=False, http1=True, http2=http2, limits=limits)
        if type(getattr(self, "_pool", None)) is not httpcore.AsyncConnectionPool:
            raise RuntimeError(
                "httpx.AsyncHTTPTransport no longer keeps its pool in _pool, "
                "so the SSRF guard cannot be installed"
            )
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=backend,
        )
        self.backend = backend


def make_ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """TLS 1.2 or later, host names verified, trusting the system store plus ``ca_file``.

    The system store is what the node's containerd trusts, unlike certifi's bundle, which is
    httpx's default. Note that OpenSSL itself honours ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when it
    loads the system store. ``ca_file`` adds private registries' CAs (DESIGN 1.3
    ``network.caFile``). A file that cannot be read becomes a ``ConfigError`` naming that key.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:  # SSLError: not PEM/DER certificates
            raise ConfigError(
                ca_file, [ConfigProblem("network.caFile", f"cannot load CA file: {exc}")]
            ) from exc
    return context


def make_client(
    *,
    policy: DestinationPolicy,
    timeout: float,
    ca_file: str | None = None,
    http2: bool = True,
    max_connections: int = 64,
    resolver: Resolver | None = None,
) -> httpx.AsyncClient:
    """The guarded ``httpx.AsyncClient`` that every pullguard HTTP request goes through.

    - ``trust_env=False``: with ``HTTP(S)_PROXY``/``ALL_PROXY`` honoured, httpx would connect to the
      proxy (whose address passes the check) and let the proxy reach 169.254.169.254 for us.
      ``SSL_CERT_FILE`` and ``.netrc`` are not read either. Configuration comes from DESIGN 1.3,
      not from the environment (STYLE rule 11).
    - ``follow_redirects=False``: the registry client follows redirects itself, so that it can
      strip credentials across hosts (DESIGN 5). Every hop is still checked here.
    - HTTP/2 is offered by ALPN on TLS connections; HTTP/1.1 remains available.
    - ``timeout`` applies to each phase (resolve + connect, read, write, pool wait).
    """
    if http2:
        # httpcore imports h2 (and hpack's 0.1 s Huffman table) at the first TLS connection; do it
        # here, at start, so the first image a webhook checks does not pay for it.
        import h2.connection  # noqa: F401
    backend = GuardedNetworkBackend(policy, resolver=resolver)
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=KEEPALIVE_SECONDS,
    )
    transport = GuardedTransport(backend, ssl_context=make_ssl_context(ca_file), http2=http2, limits=limits)
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(timeout),
        trust_env=False,
        follow_redirects=False,
    )
