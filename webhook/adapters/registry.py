"""The OCI distribution client: can this identity pull this exact reference?

It asks exactly what containerd asks when it resolves a reference (core/remotes/docker/resolver.go):
``HEAD /v2/<name>/manifests/<ref>`` with all four manifest media types in ``Accept`` (without the
OCI types distribution answers 404 for OCI images; without the list types it silently resolves a
multi-arch tag to its amd64 child — research/test-infrastructure.md §1f), falling back to GET on
405 or a missing ``Docker-Content-Digest``. HEAD does not count against Docker Hub's pull limit;
GET does, so manifests are fetched only for the platform check and cached by digest (digests are
immutable). The platform check needs the body anyway, so the first check of a reference whose
manifest pullguard does not hold yet asks GET straight away instead of HEAD-then-GET: one request
fewer, and the same one counted pull (Docker Hub counts the manifest GET either way). Once the
body of the digest a tag last pointed to is cached, re-checks of the tag are HEADs again, and
while one such GET is in flight for a repository, concurrent checks of that repository (other
tags, other credentials) HEAD and share the body by digest.

Concurrent checks share the work that does not depend on who asks (single flight): while the
first request to a registry learns its challenge (the 401 that says Basic or Bearer, and where the
token realm is), the others wait for it instead of each collecting the same 401; one token
request per (realm, service, scope, credential) is in flight at a time; one GET per manifest
digest. So 200 images of one registry cost one challenge, not 200.

Every library exception is translated here into an ``Observation`` with a DESIGN 1.1 outcome;
nothing from httpx escapes. Credentials are sent only to this registry and the realm it names;
URLs in messages are redacted; bodies are read with caps on their decoded size (manifests:
containerd's 4*1048*1048; adapters/bodies.py, so a compressed answer cannot balloon past them).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from webhook.adapters.bodies import IDENTITY, TooLargeError, UnsupportedEncodingError, read_capped
from webhook.adapters.registry_auth import TokenCache, basic_header, broken_connection, fetch_token
from webhook.core.assess import ManifestInfo, Observation
from webhook.core.challenge import Challenge, parse_all, preferred
from webhook.core.destinations import literal_address
from webhook.core.errors import DestinationRefusedError, RegistryError
from webhook.core.identity import StaticCredential
from webhook.core.outcomes import describe_retry_after, describe_status, outcome_for
from webhook.core.platforms import Platform, normalize
from webhook.core.redact import redact_url
from webhook.core.reference import DIGEST_HEX_LENGTHS, ImageReference

K = TypeVar("K")
V = TypeVar("V")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST, "*/*"))

#: containerd's limit for a manifest (core/remotes/docker/resolver.go ``MaxManifestSize``).
MAX_MANIFEST_BYTES = 4 * 1048 * 1048
MAX_CONFIG_BYTES = 8 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
MAX_REDIRECTS = 5
MAX_TAG_PAGES = 10
DOCKER_HUB_ENDPOINT = "https://registry-1.docker.io"
USER_AGENT = "pullguard/0.1 (+https://github.com/pullguard)"
#: How long an anonymous Basic refusal seen in passing answers the visibility probe (the engine's
#: default ``cache.negativeTTLSeconds``: a repository made public is noticed as soon as elsewhere).
REFUSAL_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    plain_http: frozenset[str] = frozenset()
    #: registry host -> base URL actually contacted (mirrors, tests, ECR/AR endpoint overrides)
    endpoints: Mapping[str, str] = field(default_factory=dict)
    request_timeout: float = 2.0
    concurrency_per_registry: int = 16
    manifest_cache_size: int = 4096


@dataclass(slots=True)
class _Answer:
    response: httpx.Response
    body: bytes
    authenticated: bool  # a non-anonymous credential was accepted by the token server / sent as Basic
    challenge_error: str | None


class _FailureError(Exception):
    def __init__(self, observation: Observation) -> None:
        super().__init__(observation.detail or observation.result)
        self.observation = observation


def _digest_of(data: bytes, algorithm: str) -> str | None:
    if algorithm not in ("sha256", "sha512"):
        return None
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _media(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip()


def _error_code(body: bytes) -> tuple[str | None, str | None]:
    try:
        doc = json.loads(body[:MAX_ERROR_BYTES])
    except ValueError:
        return None, None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code")
        message = errors[0].get("message")
        return (str(code) if code else None), (str(message)[:300] if message else None)
    return None, None


class RegistryClient:
    """Speaks the distribution API as one identity at a time; owns tokens and manifest caches."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        options: RegistryOptions,
        *,
        tokens: TokenCache | None = None,
        on_request: Callable[[str, str, int | None, float], None] | None = None,
    ) -> None:
        self._http = http
        self.options = options
        # not ``tokens or …``: an empty TokenCache is falsy (it has __len__) and would be replaced
        self._tokens = tokens if tokens is not None else TokenCache()
        self._challenges: dict[str, Challenge] = {}
        #: base URL -> the first request still learning that registry's challenge (single flight)
        self._learning: dict[str, asyncio.Future[None]] = {}
        #: base URLs that answered an unauthenticated request without a challenge
        self._open: set[str] = set()
        self._token_flights: dict[tuple[str, str, str, str], asyncio.Task[tuple[str, float]]] = {}
        self._manifest_flights: dict[str, asyncio.Task[ManifestInfo]] = {}
        #: (base, repository) -> an unauthenticated manifest request met Basic: when, and the answer
        self._refusals: OrderedDict[tuple[str, str], tuple[float, _Answer]] = OrderedDict()
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._manifests: OrderedDict[str, ManifestInfo] = OrderedDict()
        #: (base, repository, tag or digest) -> the digest it last resolved to (bounded)
        self._resolved: OrderedDict[tuple[str, str, str], str] = OrderedDict()
        #: repositories with a GET of a not-yet-held manifest in flight: concurrent checks of the
        #: repository HEAD meanwhile and share bodies by digest (tags of one digest: not one GET each)
        self._getting: set[tuple[str, str]] = set()
        self._on_request = on_request
        #: requests sent, per registry host (tests and the benchmark count them)
        self.requests: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- endpoints -------------------------------------------------------------------------------

    def base_url(self, domain: str) -> str:
        """Where ``domain``'s API lives: an override, Docker Hub's endpoint, or http(s)://domain."""
        override = self.options.endpoints.get(domain)
        if override:
            return override.rstrip("/")
        if domain == "docker.io":
            return DOCKER_HUB_ENDPOINT
        scheme = "http" if domain in self.options.plain_http else "https"
        return f"{scheme}://{domain}"

    def _limit(self, base: str) -> asyncio.Semaphore:
        sem = self._limits.get(base)
        if sem is None:
            sem = self._limits[base] = asyncio.Semaphore(self.options.concurrency_per_registry)
        return sem

    # -- the wire --------------------------------------------------------------------------------

    async def _raw(
        self, method: str, url: str, headers: dict[str, str], cap: int
    ) -> tuple[httpx.Response, bytes]:
        """One request, following redirects by hand: credentials never cross to another origin."""
        origin = urlsplit(url)[:2]
        for _ in range(MAX_REDIRECTS + 1):
            started = time.monotonic()
            host = urlsplit(url).netloc
            self.requests[host] += 1
            status: int | None = None
            try:
                # httpx bounds each phase (connect, each read); this bounds the whole exchange, so a
                # registry that trickles its answer one byte at a time cannot hold a check hostage.
                async with asyncio.timeout(self.options.request_timeout):
                    response, body = await self._exchange(method, url, headers, cap)
                status = response.status_code
            except TimeoutError:
                raise _FailureError(
                    Observation(
                        "timeout",
                        detail=f"{host} did not answer {method} within {self.options.request_timeout:g}s",
                    )
                ) from None
            finally:
                if self._on_request is not None:
                    self._on_request(host, method, status, time.monotonic() - started)
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                if urlsplit(url)[:2] != origin:
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                if response.status_code == 303:
                    method = "GET"
                continue
            return response, body
        raise _FailureError(
            Observation("undetermined", detail=f"more than {MAX_REDIRECTS} redirects from {redact_url(url)}")
        )

    async def _exchange(
        self, method: str, url: str, headers: dict[str, str], cap: int
    ) -> tuple[httpx.Response, bytes]:
        """Send one request and read at most ``cap`` bytes of its body (none for HEAD)."""
        request = self._http.build_request(method, url, headers=headers, timeout=self.options.request_timeout)
        response = await self._http.send(request, stream=True)
        try:
            if method == "HEAD":
                return response, b""
            try:
                return response, await read_capped(response, cap)
            except TooLargeError:
                raise _FailureError(
                    Observation("undetermined", status=response.status_code, detail=_too_large(url, cap))
                ) from None
            except UnsupportedEncodingError as exc:
                raise _FailureError(
                    Observation(
                        "undetermined",
                        status=response.status_code,
                        detail=f"{redact_url(url)} answered with Content-Encoding {exc}, "
                        "which pullguard does not decode (it asks for identity)",
                    )
                ) from None
        finally:
            await response.aclose()

    async def _authorization(
        self, base: str, scope: str, cred: StaticCredential | None
    ) -> tuple[str | None, bool]:
        """An Authorization header for ``base`` from what it asked before (no 401 round trip)."""
        challenge = self._challenges.get(base)
        if challenge is None:
            return None, False
        if challenge.scheme == "basic":
            return (basic_header(cred), True) if cred is not None else (None, False)
        if challenge.scheme == "bearer":
            key = (challenge.realm or "", challenge.service or "", scope, cred.fingerprint() if cred else "-")
            token = self._tokens.get(key)
            if token is None:
                token = await self._shared_token(key, challenge, scope, cred)
            return f"Bearer {token}", cred is not None
        return None, False

    async def _shared_token(
        self, key: tuple[str, str, str, str], challenge: Challenge, scope: str, cred: StaticCredential | None
    ) -> str:
        """One token request per key at a time; the others await the same answer (or error)."""
        flight = self._token_flights.get(key)
        if flight is None:

            async def fetch() -> tuple[str, float]:
                try:
                    token, ttl = await fetch_token(
                        self._http, challenge, scope, cred, self.options.request_timeout
                    )
                    self._tokens.put(key, token, ttl)
                    return token, ttl
                finally:
                    self._token_flights.pop(key, None)

            flight = self._token_flights[key] = asyncio.ensure_future(fetch())
            flight.add_done_callback(_retrieve)
        # shield: a check that gives up (its deadline) does not cancel the request others await
        token, _ = await asyncio.shield(flight)
        return token

    async def _learn_first(self, base: str) -> asyncio.Future[None] | None:
        """Wait while another request learns ``base``'s challenge; or become that request.

        Returns the future to resolve when this request is the one learning (None otherwise).
        """
        if base in self._challenges or base in self._open:
            return None
        pending = self._learning.get(base)
        if pending is not None:
            await asyncio.shield(pending)
            return None
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._learning[base] = first
        return first

    def _learnt(self, base: str, first: asyncio.Future[None] | None, challenged: bool) -> None:
        if first is None:
            return
        if not challenged and base not in self._challenges:
            self._open.add(base)  # answered without asking for credentials: nothing to wait for
        self._learning.pop(base, None)
        if not first.done():
            first.set_result(None)

    async def _send(
        self,
        method: str,
        url: str,
        base: str,
        repo: str,
        cred: StaticCredential | None,
        accept: str | None,
        cap: int,
    ) -> _Answer:
        scope = f"repository:{repo}:pull"
        headers = {"User-Agent": USER_AGENT, **IDENTITY}
        if accept:
            headers["Accept"] = accept
        first = await self._learn_first(base)
        try:
            auth, authenticated = await self._authorization(base, scope, cred)
            if auth:
                headers["Authorization"] = auth
            response, body = await self._raw(method, url, headers, cap)
            if first is not None and response.status_code == 401:
                learnt = preferred(parse_all(response.headers.get_list("www-authenticate")))
                if learnt is not None:
                    self._challenges[base] = Challenge(
                        learnt.scheme, {k: v for k, v in learnt.params.items() if k != "error"}
                    )
        finally:
            self._learnt(base, first, base in self._challenges)
        if response.status_code != 401:
            return _Answer(response, body, authenticated, None)
        challenge = preferred(parse_all(response.headers.get_list("www-authenticate")))
        if challenge is None:
            return _Answer(response, body, authenticated, None)
        if auth is None and challenge.scheme == "basic" and "/manifests/" in url:
            self._remember_refusal(base, repo, _Answer(response, body, False, challenge.error))
        if auth is not None:
            # We already presented what this registry asked for: the refusal is the answer.
            if challenge.scheme == "bearer" and challenge.error != "invalid_token":
                return _Answer(response, body, authenticated, challenge.error)
            if challenge.scheme == "basic":
                return _Answer(response, body, False, challenge.error)
        self._challenges[base] = Challenge(
            challenge.scheme, {k: v for k, v in challenge.params.items() if k != "error"}
        )
        if challenge.scheme == "bearer" and auth is not None:
            self._tokens_forget(base, scope, cred)  # our token was invalid_token: never reuse it
        auth, authenticated = await self._authorization(base, scope, cred)
        if auth is None:
            return _Answer(response, body, False, challenge.error)
        headers["Authorization"] = auth
        response, body = await self._raw(method, url, headers, cap)
        error = None
        if response.status_code == 401:
            again = preferred(parse_all(response.headers.get_list("www-authenticate")))
            error = again.error if again else None
            if challenge.scheme == "basic":
                authenticated = False
        return _Answer(response, body, authenticated, error)

    def _tokens_forget(self, base: str, scope: str, cred: StaticCredential | None) -> None:
        challenge = self._challenges.get(base)
        if challenge is not None:
            key = (challenge.realm or "", challenge.service or "", scope, cred.fingerprint() if cred else "-")
            self._tokens.discard(key)

    # -- the questions ---------------------------------------------------------------------------

    async def check(
        self, ref: ImageReference, cred: StaticCredential | None, *, want_manifest: bool
    ) -> Observation:
        """Can ``cred`` (None: anonymous) pull ``ref``? With the manifest facts for the platform check."""
        base = self.base_url(ref.domain)
        try:
            async with self._limit(base):
                return await self._check(ref, cred, base, want_manifest)
        except _FailureError as failure:
            return failure.observation
        except (RegistryError, DestinationRefusedError, httpx.HTTPError, OSError) as exc:
            return self._observe_exception(exc, base)
        except (httpx.InvalidURL, UnicodeError) as exc:  # a Location or host httpx cannot parse (IDNA too)
            host = urlsplit(base).hostname or ""
            literal = literal_address(host)
            means = f" ({host} denotes {literal} to the C library; not contacted)" if literal else ""
            return Observation(
                "undetermined",
                detail=f"{urlsplit(base).netloc} led to a URL pullguard cannot use: {str(exc)[:160]}{means}",
            )

    def _observe_exception(self, exc: BaseException, base: str) -> Observation:
        host = urlsplit(base).netloc
        if isinstance(exc, RegistryError):
            return Observation(exc.outcome, exc.status, exc.code, exc.message)
        if isinstance(exc, DestinationRefusedError):
            return Observation("refused-destination", detail=exc.message)
        if isinstance(exc, httpx.TimeoutException | TimeoutError):
            return Observation(
                "timeout", detail=f"no answer from {host} within {self.options.request_timeout:g}s"
            )
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower():
            return Observation(
                "unreachable", detail=f"TLS to {host} failed: the certificate is not trusted ({text[:160]})"
            )
        if isinstance(exc, httpx.RemoteProtocolError) and "Receive buffer too long" in text:
            return Observation(
                "undetermined",
                detail=f"{host} sent response headers larger than pullguard reads (h11: {text[:80]})",
            )
        if isinstance(exc, httpx.RemoteProtocolError) and "location header" in text:
            # httpx parses every Location, even when it does not follow it (octal IPv4, bad ports)
            return Observation(
                "undetermined", detail=f"{host} redirected to a URL pullguard cannot use: {text[:160]}"
            )
        broke = broken_connection(exc)
        if broke is not None:
            return Observation("unreachable", detail=f"the connection to {host} {broke}")
        return Observation("unreachable", detail=f"cannot connect to {host}: {text[:200]}")

    def _remember_refusal(self, base: str, repo: str, answer: _Answer) -> None:
        """An unauthenticated request to ``repo`` met a Basic challenge: anonymous pulls are refused.

        With Basic auth there is no token dance: a request without credentials *is* the anonymous
        pull, so the 401 the first credentialed check collects while learning the challenge is
        also the answer to "is it public?" for that repository — the probe need not ask again.
        """
        seen = (time.monotonic(), answer)
        _bounded_put(self._refusals, (base, repo), seen, self.options.manifest_cache_size)

    def _known_refusal(self, base: str, repo: str) -> _Answer | None:
        hit = self._refusals.get((base, repo))
        if hit is None or time.monotonic() - hit[0] > REFUSAL_SECONDS:
            return None
        return hit[1]

    async def _check(
        self, ref: ImageReference, cred: StaticCredential | None, base: str, want: bool
    ) -> Observation:
        url = f"{base}/v2/{ref.path}/manifests/{ref.manifest_reference}"
        if cred is None and (refused := self._known_refusal(base, ref.path)) is not None:
            return await self._failure(refused, url, base, ref, cred)
        key = (base, ref.path, ref.manifest_reference)
        known = ref.digest or self._resolved.get(key)
        repository = (base, ref.path)
        if want and (known is None or known not in self._manifests) and repository not in self._getting:
            self._getting.add(repository)
            try:
                answer = await self._send("GET", url, base, ref.path, cred, ACCEPT, MAX_MANIFEST_BYTES)
            finally:
                self._getting.discard(repository)
        else:
            answer = await self._send("HEAD", url, base, ref.path, cred, ACCEPT, 0)
        response = answer.response
        digest = response.headers.get("docker-content-digest")
        if response.status_code == 405 or (response.status_code == 200 and not digest and not answer.body):
            answer = await self._send("GET", url, base, ref.path, cred, ACCEPT, MAX_MANIFEST_BYTES)
            response = answer.response
            digest = response.headers.get("docker-content-digest")  # what the GET announces
        status = response.status_code
        if status != 200:
            return await self._failure(answer, url, base, ref, cred)
        if digest and not well_formed_digest(digest):
            # It would go into the URL of the next request (a path, a query) and into the verdict.
            return Observation(
                "digest-mismatch",
                200,
                detail=f"the registry announced a malformed digest {_shown(digest)} for "
                f"{ref.manifest_reference}",
            )
        media = _media(response)
        if answer.body:
            algorithm = (ref.digest or digest or "sha256:").split(":")[0]
            computed = _digest_of(answer.body, algorithm)
            if ref.digest and computed and computed != ref.digest:
                return Observation(
                    "digest-mismatch", 200, detail=f"asked for {ref.digest}, received {computed}"
                )
            if digest and computed and digest.split(":")[0] == algorithm and computed != digest:
                return Observation("digest-mismatch", 200, detail=f"announced {digest}, body is {computed}")
            digest = digest or computed
        if ref.digest and digest and digest != ref.digest:
            return Observation(
                "digest-mismatch", 200, detail=f"asked for {ref.digest}, the registry announced {digest}"
            )
        digest = digest or ref.digest
        if media in SCHEMA1:
            return Observation(
                "undetermined",
                200,
                detail="the registry serves a Docker schema1 manifest; containerd 2.x refuses it",
            )
        info: ManifestInfo | None = None
        if want and digest:
            info = self._manifests.get(digest)
            if info is None:
                info = await self._shared_manifest(ref, cred, base, digest, media, answer.body or None)
        if digest:
            _bounded_put(self._resolved, key, digest, self.options.manifest_cache_size)
        return Observation("pullable", 200, digest=digest, manifest=info)

    async def _shared_manifest(
        self,
        ref: ImageReference,
        cred: StaticCredential | None,
        base: str,
        digest: str,
        media: str,
        body: bytes | None,
    ) -> ManifestInfo:
        """The manifest facts of ``digest``, fetched once however many checks want them at once.

        Content is addressed by digest, so whoever fetches it first answers for all (each of them
        has just been let see the digest). If that fetch fails, a waiter tries with its own
        credential: one identity's 429 or timeout is not another's answer.
        """
        key = f"{base} {digest}"
        flight = self._manifest_flights.get(key)
        if flight is not None:
            try:
                return await asyncio.shield(flight)
            except _FailureError:
                pass
            info = await self._manifest_info(ref, cred, base, digest, media, body)
            self._remember(digest, info)
            return info

        async def fetch() -> ManifestInfo:
            try:
                info = await self._manifest_info(ref, cred, base, digest, media, body)
                self._remember(digest, info)
                return info
            finally:
                self._manifest_flights.pop(key, None)

        flight = self._manifest_flights[key] = asyncio.ensure_future(fetch())
        flight.add_done_callback(_retrieve)
        return await asyncio.shield(flight)

    async def _failure(
        self, answer: _Answer, url: str, base: str, ref: ImageReference, cred: StaticCredential | None
    ) -> Observation:
        response = answer.response
        status = response.status_code
        body = answer.body
        if not body and status == 403:
            # HEAD carries no body; a 403's body says why (e.g. Artifact Registry's permission text).
            again = await self._send("GET", url, base, ref.path, cred, ACCEPT, MAX_ERROR_BYTES)
            if again.response.status_code == 403:
                body = again.body
        code, message = _error_code(body)
        if code is None and status == 401:
            code = "UNAUTHORIZED"
        outcome = outcome_for(
            status, code=code, challenge_error=answer.challenge_error, authenticated=answer.authenticated
        )
        detail = message
        if answer.challenge_error == "insufficient_scope":
            who = "accepted the credentials but" if answer.authenticated else "gave an anonymous token that"
            detail = f"the token server {who} grants no pull access (insufficient_scope)"
        elif answer.challenge_error:
            detail = f"{answer.challenge_error}" + (f": {message}" if message else "")
        retry = describe_retry_after(response.headers.get("retry-after"))
        if outcome == "rate-limited" and retry:
            detail = (detail + "; " if detail else "") + retry
        if outcome in ("unreachable", "undetermined", "timeout"):
            detail = f"{urlsplit(base).netloc} answered {describe_status(status, code)}" + (
                f": {message}" if message else ""
            )
            if status == 503 and retry:  # RFC 9110 15.6.4: how long the service expects to be down
                detail += f"; {retry}"
        return Observation(outcome, status, code, detail)

    def _remember(self, digest: str, info: ManifestInfo) -> None:
        _bounded_put(self._manifests, digest, info, self.options.manifest_cache_size)

    async def _manifest_info(
        self,
        ref: ImageReference,
        cred: StaticCredential | None,
        base: str,
        digest: str,
        media: str,
        body: bytes | None,
    ) -> ManifestInfo:
        if body is None:
            url = f"{base}/v2/{ref.path}/manifests/{digest}"
            answer = await self._send("GET", url, base, ref.path, cred, ACCEPT, MAX_MANIFEST_BYTES)
            if answer.response.status_code == 404 and ref.digest is None:
                # The registry announced this digest for the tag and now has no such manifest:
                # containerd fetches by the announced digest and fails the same way.
                raise _FailureError(
                    Observation(
                        "digest-mismatch",
                        404,
                        detail=f"the registry announced {digest} for {ref.manifest_reference} "
                        "but has no manifest with that digest (404)",
                    )
                )
            if answer.response.status_code != 200:
                raise _FailureError(await self._failure(answer, url, base, ref, cred))
            body = answer.body
            media = _media(answer.response) or media
            computed = _digest_of(body, digest.split(":", maxsplit=1)[0])
            if computed is not None and computed != digest:
                raise _FailureError(
                    Observation("digest-mismatch", 200, detail=f"asked for {digest}, received {computed}")
                )
        try:
            doc = json.loads(body)
        except ValueError:
            raise _FailureError(
                Observation("undetermined", 200, detail=f"the manifest {digest} is not JSON")
            ) from None
        if not isinstance(doc, dict):
            raise _FailureError(
                Observation("undetermined", 200, detail=f"the manifest {digest} is not a JSON object")
            )
        media = str(doc.get("mediaType") or media)
        if media in INDEX_TYPES or isinstance(doc.get("manifests"), list):
            children = tuple(
                _platform(m.get("platform")) if isinstance(m, dict) else None
                for m in doc.get("manifests") or []
            )
            return ManifestInfo(media, True, children)
        config = doc.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str) or not well_formed_digest(config_digest):
            return ManifestInfo(media, False)  # no platform to read; never a URL built from junk
        return ManifestInfo(
            media, False, config_platform=await self._config_platform(ref, cred, base, config_digest)
        )

    async def _config_platform(
        self, ref: ImageReference, cred: StaticCredential | None, base: str, digest: str
    ) -> Platform | None:
        url = f"{base}/v2/{ref.path}/blobs/{digest}"
        answer = await self._send("GET", url, base, ref.path, cred, None, MAX_CONFIG_BYTES)
        if answer.response.status_code != 200:
            return None
        computed = _digest_of(answer.body, digest.split(":", maxsplit=1)[0])
        if computed is not None and computed != digest:
            raise _FailureError(
                Observation("digest-mismatch", 200, detail=f"config blob {digest} arrived as {computed}")
            )
        try:
            doc = json.loads(answer.body)
        except ValueError:
            return None
        return _platform(doc) if isinstance(doc, dict) else None

    async def list_tags(
        self, ref: ImageReference, cred: StaticCredential | None
    ) -> tuple[list[str], bool] | None:
        """Tags of the repository (bounded), and whether the repository itself is missing."""
        base = self.base_url(ref.domain)
        url: str | None = f"{base}/v2/{ref.path}/tags/list?n=1000"
        tags: list[str] = []
        try:
            async with self._limit(base):
                for _ in range(MAX_TAG_PAGES):
                    if url is None:
                        break
                    answer = await self._send(
                        "GET", url, base, ref.path, cred, "application/json", MAX_MANIFEST_BYTES
                    )
                    if answer.response.status_code == 404:
                        code, _ = _error_code(answer.body)
                        return [], code == "NAME_UNKNOWN"
                    if answer.response.status_code != 200:
                        return None
                    doc: Any = json.loads(answer.body)
                    tags.extend(str(t) for t in (doc.get("tags") or []) if isinstance(t, str))
                    link = answer.response.headers.get("link", "")
                    url = urljoin(url, link.split(";")[0].strip("<> ")) if 'rel="next"' in link else None
        except (
            _FailureError,
            RegistryError,
            DestinationRefusedError,
            httpx.HTTPError,
            httpx.InvalidURL,  # a next-page Link httpx cannot parse
            OSError,
            ValueError,  # JSON, and UnicodeError (IDNA) among them
            AttributeError,
        ):
            return None
        return tags, False


_LOWER_HEX = re.compile(r"[0-9a-f]+", re.ASCII)


def well_formed_digest(digest: str) -> bool:
    """go-digest ``Digest.Validate`` for the algorithms containerd registers: exact lower-case hex."""
    algorithm, _, encoded = digest.partition(":")
    size = DIGEST_HEX_LENGTHS.get(algorithm)
    return size is not None and len(encoded) == size and _LOWER_HEX.fullmatch(encoded) is not None


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _too_large(url: str, cap: int) -> str:
    if cap == MAX_MANIFEST_BYTES:
        return (
            f"the manifest at {redact_url(url)} is larger than {cap} bytes, containerd's limit "
            "(MaxManifestSize); containerd refuses it as well"
        )
    return f"{redact_url(url)} sent more than {cap} bytes; refused"


def _bounded_put(cache: OrderedDict[K, V], key: K, value: V, size: int) -> None:
    """Store as the newest entry; drop the oldest past ``size`` (a small LRU of facts by key)."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a shared task's error as seen: its waiters may all have given up (their deadline)."""
    if not task.cancelled():
        task.exception()


def _platform(value: Any) -> Platform | None:
    if not isinstance(value, dict):
        return None
    os_, arch = value.get("os"), value.get("architecture")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        return None
    variant = value.get("variant") if isinstance(value.get("variant"), str) else ""
    version = value.get("os.version") if isinstance(value.get("os.version"), str) else ""
    return normalize(Platform(os_, arch, variant or "", version or ""))
