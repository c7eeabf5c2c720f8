"""The webhook's HTTP surface (FastAPI): ``POST /validate``, ``/healthz``, ``/readyz``, ``/metrics``.

A composition root kept thin: the review itself is ``webhook.review.Reviewer``. What this module
guarantees is the transport contract of DESIGN 1.2 — whatever happens, ``/validate`` answers
with a review or with HTTP 400 (or 413 for a body larger than any AdmissionReview), never with
an HTTP 500: a bug in pullguard is caught here, logged, and answered as an undetermined review
(``onUnknown`` decides, with a warning) when the ``uid`` is readable, or as HTTP 400 when it is
not — so a ``failurePolicy: Ignore`` cannot turn pullguard's crash into a silent allow.

A review whose caller has gone (the API server closes the connection when its ``?timeout=``
passes) is cancelled rather than finished: under overload, work nobody will read must not delay
the reviews still awaited (found by ``bench/soak.py``; without it an overloaded webhook kept
answering requests whose callers had all given up, and answered none in time). Loads shared
through the caches are shielded (``webhook/memo.py``), so a cancelled review never cancels
another's registry request.

``/readyz`` is ready once the serving certificate is loaded (the server passes ``readiness``);
``/healthz`` only says the event loop answers. No docs or OpenAPI routes are served.

``POST /validate`` is served by ``_Validate``, a plain ASGI handler in front of FastAPI: the API
server calls it on every admission, and FastAPI's middleware stack, routing and dependency
solving were about a quarter of the CPU of a cached admission (``bench/profile_admission.py``;
the review itself needs none of them — it reads bytes and writes a JSON document). Everything
else — the other routes, a GET of ``/validate`` (405), unknown paths (404) — is FastAPI's.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from webhook.adapters.kube import KubeCluster
from webhook.assembly import Assembly
from webhook.core.admission import AdmissionResponse, Status
from webhook.metrics import CONTENT_TYPE, Metrics
from webhook.review import Answer, Reviewer
from webhook.settings import Config

log = logging.getLogger("pullguard.app")

#: The API server caps a request body at 3 MiB (apiserver ``MaxRequestBodyBytes``); a review
#: carries ``object`` and ``oldObject``, so anything beyond 8 MiB cannot be one.
MAX_BODY = 8 * 1024 * 1024

Readiness = Callable[[], str | None]  # None: ready; else why not


def _not_ready() -> str | None:
    return "no serving certificate source is attached"


def _salvage_uid(body: bytes) -> str | None:
    """The uid of a body that made pullguard fail, if one can be read at all."""
    try:
        doc = json.loads(body)
        uid = doc["request"]["uid"]
    except Exception:
        return None
    return uid if isinstance(uid, str) and uid.strip() else None


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _json(document: Any) -> bytes:
    """What Starlette's ``JSONResponse`` writes (compact, UTF-8, no NaN)."""
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class _TooLargeError(Exception):
    def __init__(self, declared: str | None) -> None:
        self.declared = declared


class _Validate:
    """``POST /validate`` as plain ASGI; every other request goes to ``fallback`` (FastAPI)."""

    def __init__(self, reviewer: Reviewer, fallback: FastAPI) -> None:
        self.reviewer = reviewer
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/validate" or scope["method"] != "POST":
            await self.fallback(scope, receive, send)
            return
        status, document = await self._answer(scope, receive)
        payload = b"" if document is None else _json(document)
        headers = [(b"content-length", str(len(payload)).encode()), (b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, Any]:
        body = b""
        try:
            body = await _body(scope, receive)
            review = asyncio.ensure_future(self.reviewer.review(body, _query_param(scope, "timeout")))
            answer = await _unless_abandoned(receive, review)
            if answer is None:
                return 499, None  # nobody reads it (nginx's "client closed request")
            return answer.status, answer.document
        except _TooLargeError as exc:
            if exc.declared is not None:
                message = f"the body is {exc.declared} bytes; no AdmissionReview exceeds {MAX_BODY}"
            else:
                message = f"the body exceeds {MAX_BODY} bytes; no AdmissionReview is that large"
            return 413, Status(413, "RequestEntityTooLarge", f"pullguard: {message}").document()
        except Exception as exc:
            log.exception("internal error in /validate")
            uid = _salvage_uid(body)
            if uid is None:
                message = f"pullguard: the request could not be read ({type(exc).__name__})"
                return 400, Status(400, "BadRequest", message).document()
            # Not known to be a valid review, so never allowed (the Reviewer applies onUnknown to
            # failures after a review parsed; this is the net below it).
            message = f"pullguard: internal error ({type(exc).__name__}) reading this review; see its log"
            response = AdmissionResponse(uid, False, "error", Status(500, "InternalError", message))
            return 200, response.to_review()


async def _caller_gone(receive: Receive) -> None:
    """Returns when the client disconnects (after the body, ASGI ``receive`` waits for exactly that)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_abandoned(receive: Receive, review: asyncio.Future[Answer]) -> Answer | None:
    """The review's answer, or None (and the review cancelled) if the caller disconnects first."""
    gone = asyncio.ensure_future(_caller_gone(receive))
    waiting: set[asyncio.Future[Any]] = {review, gone}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # the handler itself is cancelled (shutdown): take the review along
        review.cancel()
        raise
    finally:
        gone.cancel()
    if review.done():
        return review.result()
    review.cancel()
    log.info("the caller disconnected before the answer; review abandoned")
    return None


async def _body(scope: Scope, receive: Receive) -> bytes:
    """The request body, refused (``_TooLargeError``) past ``MAX_BODY`` — declared or actually sent."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            declared = value.decode("latin-1")
            if declared.isdigit() and int(declared) > MAX_BODY:
                raise _TooLargeError(declared)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: the client is gone
            raise ConnectionError("the client disconnected before sending the whole review")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLargeError(None)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _query_param(scope: Scope, name: str) -> str | None:
    """Like Starlette's ``request.query_params.get``: the last value, blank values kept."""
    found = None
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if key == name:
            found = value
    return found


def create_app(reviewer: Reviewer, metrics: Metrics, readiness: Readiness = _not_ready) -> _Validate:
    """The ASGI application; ``reviewer`` owns the engine and the cluster readers."""
    app = FastAPI(title="pullguard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/validate")
    async def validate(request: Request) -> Response:  # never reached: _Validate answers every POST
        raise AssertionError("POST /validate is served by _Validate")

    @app.get("/healthz")
    async def healthz() -> Response:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        problem = readiness()
        if problem is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": problem}, status_code=503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return _Validate(reviewer, app)


def reviewer_for(config: Config, assembly: Assembly, metrics: Metrics | None = None) -> Reviewer:
    """The Reviewer over an assembly: its engine, its cluster (labels only from a real one)."""
    cluster = assembly.cluster
    namespaces = cluster if isinstance(cluster, KubeCluster) else None
    return Reviewer(config, assembly.engine, cluster, assembly.views, namespaces=namespaces, metrics=metrics)
