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
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

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


def _bad_request(message: str, code: int = 400) -> JSONResponse:
    reason = {400: "BadRequest", 413: "RequestEntityTooLarge"}.get(code, "BadRequest")
    return JSONResponse(Status(code, reason, f"pullguard: {message}").document(), status_code=code)


async def _read_body(request: Request) -> bytes | JSONResponse:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return _bad_request(f"the body is {declared} bytes; no AdmissionReview exceeds {MAX_BODY}", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return _bad_request(f"the body exceeds {MAX_BODY} bytes; no AdmissionReview is that large", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _caller_gone(request: Request) -> None:
    """Returns when the client disconnects (after the body, ASGI ``receive`` waits for exactly that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _unless_abandoned(request: Request, review: asyncio.Future[Answer]) -> Answer | None:
    """The review's answer, or None (and the review cancelled) if the caller disconnects first."""
    gone = asyncio.ensure_future(_caller_gone(request))
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


def create_app(reviewer: Reviewer, metrics: Metrics, readiness: Readiness = _not_ready) -> FastAPI:
    """The ASGI application; ``reviewer`` owns the engine and the cluster readers."""
    app = FastAPI(title="pullguard", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/validate")
    async def validate(request: Request) -> Response:
        body = b""
        try:
            read = await _read_body(request)
            if isinstance(read, JSONResponse):
                return read
            body = read
            review = asyncio.ensure_future(reviewer.review(body, request.query_params.get("timeout")))
            answer = await _unless_abandoned(request, review)
            if answer is None:
                return Response(status_code=499)  # nobody reads it (nginx's "client closed request")
            return JSONResponse(answer.document, status_code=answer.status)
        except Exception as exc:
            log.exception("internal error in /validate")
            uid = _salvage_uid(body)
            if uid is None:
                return _bad_request(f"the request could not be read ({type(exc).__name__})")
            # Not known to be a valid review, so never allowed (the Reviewer applies onUnknown to
            # failures after a review parsed; this is the net below it).
            message = f"pullguard: internal error ({type(exc).__name__}) reading this review; see its log"
            response = AdmissionResponse(uid, False, "error", Status(500, "InternalError", message))
            return JSONResponse(response.to_review())

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

    return app


def reviewer_for(config: Config, assembly: Assembly, metrics: Metrics | None = None) -> Reviewer:
    """The Reviewer over an assembly: its engine, its cluster (labels only from a real one)."""
    cluster = assembly.cluster
    namespaces = cluster if isinstance(cluster, KubeCluster) else None
    return Reviewer(config, assembly.engine, cluster, assembly.views, namespaces=namespaces, metrics=metrics)
