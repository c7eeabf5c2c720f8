"""Registry authentication the way containerd does it: Basic, or Bearer tokens from the realm.

containerd (core/remotes/docker/authorizer.go, auth/fetch.go) reacts to a 401's challenge:
``Basic`` → send the credentials on every request; ``Bearer`` → fetch a token for
``repository:<path>:pull`` from the realm — POST an OAuth2 password grant when it has a password,
falling back to GET with Basic credentials on 400/401/404 (and 405 when a username is set); GET
anonymously when it has none. Tokens are cached per (realm, service, scope, credential
fingerprint) until shortly before ``expires_in`` (default 60 s, token spec). Challenges are
remembered per registry so later requests are authorised up front (one round trip, not two).

The credential goes only to the registry its keyring key matched and to the realm that registry
names; the network guard checks the realm's address like any other (DESIGN 5).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from webhook.adapters.bodies import IDENTITY, TooLargeError, UnsupportedEncodingError, read_capped
from webhook.core.challenge import Challenge
from webhook.core.errors import RegistryError
from webhook.core.identity import StaticCredential
from webhook.core.outcomes import Phase, describe_retry_after, outcome_for
from webhook.core.redact import redact_url

#: Tokens are refreshed this long before they expire, so a check never races the expiry.
EXPIRY_MARGIN = 10.0
DEFAULT_EXPIRES_IN = 60.0
MAX_TOKEN_RESPONSE = 256 * 1024
CLIENT_ID = "pullguard"


@dataclass(frozen=True, slots=True)
class CachedToken:
    token: str
    expires_at: float


def basic_header(cred: StaticCredential) -> str:
    # surrogateescape: kubelet keeps undecodable bytes of an ``auth`` field as they are.
    raw = f"{cred.username}:{cred.password.reveal()}".encode("utf-8", "surrogateescape")
    return "Basic " + base64.b64encode(raw).decode("ascii")


class TokenCache:
    """Bearer tokens keyed by (realm, service, scope, credential fingerprint)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int = 4096) -> None:
        self._tokens: dict[tuple[str, str, str, str], CachedToken] = {}
        self._clock = clock
        self._max = max_entries

    def get(self, key: tuple[str, str, str, str]) -> str | None:
        hit = self._tokens.get(key)
        if hit is None:
            return None
        if hit.expires_at - EXPIRY_MARGIN <= self._clock():
            self._tokens.pop(key, None)
            return None
        return hit.token

    def put(self, key: tuple[str, str, str, str], token: str, expires_in: float) -> None:
        if len(self._tokens) >= self._max:
            # Drop the entry closest to expiry: cheap, bounded, and never evicts a fresh token first.
            oldest = min(self._tokens, key=lambda k: self._tokens[k].expires_at)
            self._tokens.pop(oldest, None)
        self._tokens[key] = CachedToken(token, self._clock() + expires_in)

    def discard(self, key: tuple[str, str, str, str]) -> None:
        self._tokens.pop(key, None)

    def __len__(self) -> int:
        return len(self._tokens)


async def _capped(
    client: httpx.AsyncClient, request: httpx.Request, realm: str
) -> tuple[httpx.Response, bytes]:
    """Send ``request`` and read at most ``MAX_TOKEN_RESPONSE`` bytes: a realm is the registry's
    choice, and a hostile one must not make the webhook buffer an endless body."""
    response = await client.send(request, stream=True)
    where = redact_url(realm)
    try:
        body = await read_capped(response, MAX_TOKEN_RESPONSE)
    except TooLargeError:
        raise RegistryError(
            "undetermined", f"token server {where} sent more than {MAX_TOKEN_RESPONSE} bytes"
        ) from None
    except UnsupportedEncodingError as exc:
        raise RegistryError(
            "undetermined", f"token server {where} answered with Content-Encoding {exc}, which is not decoded"
        ) from None
    finally:
        await response.aclose()
    return response, body


def _read_token(response: httpx.Response, body: bytes, realm: str) -> tuple[str, float]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError(
            "undetermined", f"token server {redact_url(realm)} answered {response.status_code} with no JSON"
        ) from None
    if not isinstance(doc, dict):
        raise RegistryError("undetermined", f"token server {redact_url(realm)} answered a non-object")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise RegistryError("undetermined", f"token server {redact_url(realm)} sent no token")
    expires = doc.get("expires_in")
    expires_in = float(expires) if isinstance(expires, int | float) and expires > 0 else DEFAULT_EXPIRES_IN
    return token, expires_in


def _token_error(response: httpx.Response, realm: str, method: str) -> RegistryError:
    status = response.status_code
    outcome = outcome_for(status, phase=Phase.TOKEN)
    what = {401: "rejected the credentials", 403: "refused the credentials"}.get(status, f"answered {status}")
    if 300 <= status < 400:
        what += " (a redirect; token requests do not follow redirects)"
    retry = response.headers.get("retry-after")
    advice = describe_retry_after(retry) if outcome == "rate-limited" or status == 503 else None
    return RegistryError(
        outcome,
        f"token server {redact_url(realm)} {what}: {method} {status}" + (f"; {advice}" if advice else ""),
        status=status,
        code="UNAUTHORIZED" if status == 401 else None,
        url=redact_url(realm),
        retry_after=float(retry) if retry and retry.isdigit() else None,
    )


async def fetch_token(
    client: httpx.AsyncClient,
    challenge: Challenge,
    scope: str,
    cred: StaticCredential | None,
    timeout: float,
) -> tuple[str, float]:
    """A token for ``scope`` from the challenge's realm: POST grant first when there is a password.

    Transport failures become ``RegistryError`` naming the token server (timeout, unreachable);
    a refused realm address raises ``DestinationRefusedError`` from the guarded client unchanged.
    """
    realm = challenge.realm or ""
    if not realm.startswith(("https://", "http://")):
        raise RegistryError("undetermined", f"the registry named an unusable token realm {realm!r}")
    where = redact_url(realm)
    try:
        async with asyncio.timeout(timeout):
            return await _exchange_token(client, challenge, realm, scope, cred, timeout)
    except (TimeoutError, httpx.TimeoutException):
        raise RegistryError(
            "timeout", f"token server {where} did not answer within {timeout:g}s", url=where
        ) from None
    except httpx.HTTPError as exc:
        broke = broken_connection(exc)
        raise RegistryError(
            "unreachable",
            f"token server {where}: the connection {broke}"
            if broke
            else f"cannot reach token server {where}: {str(exc)[:160] or type(exc).__name__}",
            url=where,
        ) from None
    except (httpx.InvalidURL, UnicodeError) as exc:  # IDNA, ports, octal IPv4 httpx refuses to parse
        raise RegistryError(
            "undetermined", f"the registry named an unusable token realm {where}: {str(exc)[:160]}"
        ) from None


def broken_connection(exc: BaseException) -> str | None:
    """``broke …`` when an established connection failed mid-exchange (reset, truncated); else None.

    httpx raises ``ReadError``/``WriteError`` for a reset (often with no text) and
    ``RemoteProtocolError`` for a peer that hung up early or sent a short body (h11). The registry
    client words its own failures with it too.
    """
    if not isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return None
    text = str(exc)
    if "complete message body" in text:
        return f"broke: the answer was incomplete ({text[:160]})"
    return f"broke before it answered ({text[:160] or 'connection reset'})"


async def _exchange_token(
    client: httpx.AsyncClient,
    challenge: Challenge,
    realm: str,
    scope: str,
    cred: StaticCredential | None,
    timeout: float,
) -> tuple[str, float]:
    service = challenge.service or ""
    if cred is not None and cred.password:
        form = {
            "grant_type": "password",
            "username": cred.username,
            "password": cred.password.reveal(),
            "service": service,
            "scope": scope,
            "client_id": CLIENT_ID,
        }
        request = client.build_request("POST", realm, data=form, headers=IDENTITY, timeout=timeout)
        response, body = await _capped(client, request, realm)
        if response.status_code == 200:
            return _read_token(response, body, realm)
        fallback = {400, 401, 404} | ({405} if cred.username else set())
        if response.status_code not in fallback:
            raise _token_error(response, realm, "POST")
        tried = f"POST {response.status_code}, then GET"
    else:
        tried = "GET"
    params = {"service": service, "scope": scope} if service else {"scope": scope}
    headers = {**IDENTITY, "Authorization": basic_header(cred)} if cred is not None else dict(IDENTITY)
    request = client.build_request("GET", realm, params=params, headers=headers, timeout=timeout)
    response, body = await _capped(client, request, realm)
    if response.status_code != 200:
        raise _token_error(response, realm, tried)
    return _read_token(response, body, realm)
