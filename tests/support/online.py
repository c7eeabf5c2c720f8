"""Helpers for tests that talk to the real local registries: a guarded client, credentials, refs.

Everything goes through pullguard's own adapters (``make_client`` + ``RegistryClient``) exactly as
the CLI and the webhook build them; nothing here replaces or patches pullguard code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from tests.infra.registry import RegistryProcess
from webhook.adapters.http import Resolver, make_client
from webhook.adapters.registry import RegistryClient, RegistryOptions
from webhook.adapters.registry_auth import TokenCache
from webhook.core.destinations import DestinationPolicy
from webhook.core.identity import StaticCredential
from webhook.core.redact import Secret
from webhook.core.reference import ImageReference, parse_normalized_named

T = TypeVar("T")

LOOPBACK = DestinationPolicy(allow_loopback=True)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh event loop (each test owns its loop and its clients)."""
    return asyncio.run(coro)


def cred(username: str, password: str) -> StaticCredential:
    return StaticCredential(username, Secret(password))


def ref(text: str) -> ImageReference:
    return parse_normalized_named(text)


def client(
    registries: Iterable[RegistryProcess] = (),
    *,
    policy: DestinationPolicy = LOOPBACK,
    ca_file: str | None = None,
    request_timeout: float = 2.0,
    plain_http: Iterable[str] | None = None,
    resolver: Resolver | None = None,
    tokens: TokenCache | None = None,
    endpoints: dict[str, str] | None = None,
    on_request: Callable[[str, str, int | None, float], None] | None = None,
) -> RegistryClient:
    """A ``RegistryClient`` as ``assembly.build`` makes it; plain HTTP for the non-TLS ``registries``."""
    regs = list(registries)
    hosts = set(plain_http) if plain_http is not None else {r.host for r in regs if not r.tls}
    if ca_file is None:
        ca_file = next((str(r.ca_file) for r in regs if r.tls), None)
    http = make_client(policy=policy, timeout=request_timeout, ca_file=ca_file, resolver=resolver)
    options = RegistryOptions(
        plain_http=frozenset(hosts), endpoints=endpoints or {}, request_timeout=request_timeout
    )
    return RegistryClient(http, options, tokens=tokens, on_request=on_request)
