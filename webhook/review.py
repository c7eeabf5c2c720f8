"""One AdmissionReview, end to end: parse, pick the mode, check, answer, log, count.

The steps, each bounded by the API server's ``?timeout=`` (DESIGN 1.2):

1. ``core.admission.parse_review`` — a body that is not a review is answered with HTTP 400; a
   readable ``uid`` with a malformed review gets ``allowed: false``, code 400, the field named.
2. DELETE, CONNECT and subresources other than ``pods/ephemeralcontainers`` have nothing to
   pull: allowed, with an audit annotation saying so.
3. The namespace's ``pullguard.io/mode`` label overrides the configured mode (exempt namespaces
   are not even read).
4. The engine checks the object with Secrets and ServiceAccounts of **that namespace only**
   (``_OnlyNamespace`` refuses any other — DESIGN 5) and the node view (``nodeview``). Pods
   arrive through the API server, so their ServiceAccount's pull secrets are already merged.
5. On UPDATE, images unchanged against ``oldObject`` are marked ``changed: false``: they warn,
   they do not deny (DESIGN 4).
6. ``core.admission.respond`` builds the answer for the mode.

Work that has not finished shortly before the API server's deadline is abandoned: the images
still pending are ``timeout`` verdicts (the engine's own deadline, set a little earlier), and if
even that overruns, the answer is ``undecided`` — ``onUnknown`` decides, with a warning. Any
unexpected exception becomes that same well-formed answer: never an HTTP 500, never a silent
allow. One JSON log line per admission records uid, kind, namespace/name, verdict and duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from webhook.core.admission import (
    EPHEMERAL,
    AdmissionResponse,
    BadReview,
    Cause,
    ReviewRequest,
    Status,
    invalid,
    mark_unchanged,
    parse_review,
    parse_timeout,
    resolve_mode,
    respond,
    skipped,
    unchanged_fields,
    undecided,
)
from webhook.core.identity import AccountResult, SecretResult, Unavailable
from webhook.core.verdict import ObjectVerdict
from webhook.engine import Engine
from webhook.metrics import Metrics
from webhook.nodeview import ClusterViews
from webhook.ports import NamespaceSource, SecretSource
from webhook.settings import Config

R = TypeVar("R")

log = logging.getLogger("pullguard.admission")

#: Without ``?timeout=`` the safety net sits this far behind ``timeouts.deadlineSeconds``.
SAFETY_MARGIN = 1.0
#: Of the API server's timeout, keep this share (at least ``MIN_RESERVE`` s) for the answer's trip.
RESERVE_SHARE = 0.1
MIN_RESERVE = 0.2
#: The engine's deadline sits this far before the hard stop, so its partial verdict wins the race.
ENGINE_LEAD = 0.15
#: Reads from the Kubernetes API (the Namespace's labels, Nodes, Secrets, ServiceAccounts) may use
#: at most this share of the engine's budget: a slow API server must leave the registry checks time
#: to give per-image verdicts, not push the whole review into the safety net's generic answer.
CLUSTER_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class Answer:
    """What ``POST /validate`` sends: an HTTP status and a JSON document."""

    status: int
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Budget:
    hard: float  # seconds until the answer must be written
    engine: float  # seconds the engine may spend


def budget(deadline_seconds: float, timeout_param: str | None) -> Budget:
    """The time the review may take, from ``timeouts.deadlineSeconds`` and ``?timeout=``."""
    limit = parse_timeout(timeout_param)
    if limit is None:
        return Budget(deadline_seconds + SAFETY_MARGIN, deadline_seconds)
    hard = max(0.05, limit - max(MIN_RESERVE, limit * RESERVE_SHARE))
    return Budget(hard, max(0.0, min(deadline_seconds, hard - ENGINE_LEAD)))


class _OnlyNamespace:
    """A ``SecretSource`` that reads nothing outside the reviewed object's namespace, in time.

    Each read gets what is left of the review's cluster budget (``CLUSTER_SHARE``); a read that
    does not answer by then is ``Unavailable`` — planned as kubelet plans a Secret it cannot
    read, with a finding that says why — instead of holding the whole review.
    """

    def __init__(
        self,
        inner: SecretSource,
        namespace: str,
        until: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self.namespace = namespace
        self._until = until
        self._clock = clock

    async def within_budget(self, read: Awaitable[R]) -> R | Unavailable:
        if self._until is None:
            return await read
        left = max(0.0, self._until - self._clock())
        try:
            return await asyncio.wait_for(read, left)
        except TimeoutError:
            return Unavailable(f"no answer from the Kubernetes API within {left:.2f}s")

    def _refuse(self, namespace: str) -> Unavailable:
        return Unavailable(
            f"pullguard reads Secrets and ServiceAccounts only in the reviewed object's namespace "
            f"({self.namespace}), not in {namespace}"
        )

    async def get_secret(self, namespace: str, name: str) -> SecretResult:
        if namespace != self.namespace:
            return self._refuse(namespace)
        return await self.within_budget(self._inner.get_secret(namespace, name))

    async def get_service_account(self, namespace: str, name: str) -> AccountResult:
        if namespace != self.namespace:
            return self._refuse(namespace)
        return await self.within_budget(self._inner.get_service_account(namespace, name))


@dataclass(slots=True)
class _Progress:
    """What is known so far, for the log line and for an answer after a timeout."""

    mode: str
    namespace: str | None = None
    verdict: ObjectVerdict | None = None


class Reviewer:
    """Answers AdmissionReviews; one instance serves the whole process."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        secrets: SecretSource,
        views: ClusterViews,
        *,
        namespaces: NamespaceSource | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.engine = engine
        self.secrets = secrets
        self.views = views
        self.namespaces = namespaces
        self.metrics = metrics
        self._clock = clock

    async def review(self, body: bytes, timeout_param: str | None = None) -> Answer:
        started = self._clock()
        parsed = parse_review(body)
        if isinstance(parsed, BadReview):
            return self._bad(parsed, started)
        progress = _Progress(self.config.mode, parsed.namespace)
        limits = budget(self.config.timeouts.deadline_seconds, timeout_param)
        on_unknown = self.config.on_unknown
        try:
            response = await asyncio.wait_for(self._decide(parsed, progress, started, limits), limits.hard)
        except TimeoutError:
            response = undecided(
                parsed.uid,
                progress.mode,
                on_unknown,
                f"the check did not finish within {limits.hard:.2f}s (the API server's timeout)",
            )
        except Exception as exc:
            log.exception("internal error reviewing %s (uid %s)", parsed.display, parsed.uid)
            response = undecided(
                parsed.uid,
                progress.mode,
                on_unknown,
                f"internal error ({type(exc).__name__}); see pullguard's log",
            )
        self._record(parsed, progress, response, started, timeout_param)
        return Answer(200, response.to_review())

    # -- deciding -------------------------------------------------------------------------------

    async def _decide(
        self, req: ReviewRequest, progress: _Progress, started: float, limits: Budget
    ) -> AdmissionResponse:
        if req.operation not in ("CREATE", "UPDATE") or req.object is None:
            return skipped(req.uid, f"{req.operation} has no images to pull")
        if req.sub_resource and (req.sub_resource != EPHEMERAL or req.kind != "Pod"):
            return skipped(req.uid, f"subresource {req.kind}/{req.sub_resource} has no images to pull")
        namespace = req.namespace or _namespace_of(req.object) or "default"
        progress.namespace = namespace
        notes: list[str] = []
        exempt = namespace in self.config.exempt_namespaces
        until = started + limits.engine * CLUSTER_SHARE
        secrets = _OnlyNamespace(self.secrets, namespace, until, self._clock)
        if self.namespaces is not None and not exempt:
            labels = await secrets.within_budget(self.namespaces.namespace_labels(namespace))
            if isinstance(labels, Unavailable):
                notes.append(
                    f"labels of namespace {namespace} unreadable ({labels.reason}); mode {self.config.mode}"
                )
                labels = None
            progress.mode, note = resolve_mode(self.config.mode, labels)
            if note:
                notes.append(note)
        view = await self.views.view(pods_admitted=True, within=until - self._clock())
        verdict = await self.engine.check_object(
            req.object,
            view,
            secrets,
            default_namespace=namespace,
            source="admission",
            deadline=started + limits.engine,
        )
        if verdict is None:
            return skipped(req.uid, f"{req.kind} has no pod template")
        if req.operation == "UPDATE" and req.old_object is not None and not verdict.exempt:
            fields = unchanged_fields(req.uid, req.object, req.old_object, namespace)
            if isinstance(fields, BadReview):
                return invalid(req.uid, fields.field, fields.message)
            verdict = mark_unchanged(verdict, fields, self.config.on_unknown)
        progress.verdict = verdict
        return respond(req.uid, verdict, progress.mode, self.config.on_unknown, notes)

    # -- the two other exits --------------------------------------------------------------------

    def _bad(self, bad: BadReview, started: float) -> Answer:
        if bad.uid is not None:
            response = invalid(bad.uid, bad.field, bad.message, bad.api_version)
            self._log(
                {"uid": bad.uid, "verdict": "invalid", "allowed": False, "code": 400, "field": bad.field},
                started,
            )
            self._count("invalid", "other", self.config.mode, "other", started, ())
            return Answer(200, response.to_review())
        causes = (Cause(bad.field, bad.message),) if bad.field else ()
        document = Status(
            400, "BadRequest", f"pullguard: not an AdmissionReview: {bad.message}", causes
        ).document()
        self._log({"uid": None, "verdict": "rejected", "code": 400, "field": bad.field or None}, started)
        self._count("invalid", "other", self.config.mode, "other", started, ())
        return Answer(400, document)

    # -- records --------------------------------------------------------------------------------

    def _record(
        self,
        req: ReviewRequest,
        progress: _Progress,
        response: AdmissionResponse,
        started: float,
        timeout_param: str | None,
    ) -> None:
        verdict = progress.verdict
        images = verdict.images if verdict is not None and response.decision != "invalid" else ()
        fields: dict[str, Any] = {
            "uid": req.uid,
            "kind": req.kind,
            "namespace": progress.namespace,
            "name": req.name or _name_of(req.object),
            "operation": req.operation,
            "subResource": req.sub_resource or None,
            "dryRun": req.dry_run,
            "mode": progress.mode,
            "verdict": response.decision,
            "allowed": response.allowed,
            "code": response.status.code if response.status else None,
            "images": len(images),
            "failing": [
                {"field": i.field, "outcome": i.outcome, "changed": i.changed}
                for i in images
                if i.failed or i.unknown
            ][:20],
            "findings": [
                {"code": f.code, "field": f.field, "message": f.message}
                for f in (verdict.findings if verdict is not None else ())
            ][:20],
            "warnings": len(response.warnings),
            "timeout": timeout_param[:40] if timeout_param else None,
        }
        self._log(fields, started)
        self._count(
            response.decision, req.kind, progress.mode, req.operation, started, [i.outcome for i in images]
        )

    def _log(self, fields: Mapping[str, Any], started: float) -> None:
        record = dict(fields)
        record["durationMs"] = round((self._clock() - started) * 1000, 2)
        log.info("admission", extra={"fields": record})

    def _count(
        self,
        verdict: str,
        kind: str,
        mode: str,
        operation: str,
        started: float,
        outcomes: list[str] | tuple[()],
    ) -> None:
        if self.metrics is not None:
            self.metrics.admission(verdict, kind, mode, operation, self._clock() - started, outcomes)


def _namespace_of(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    ns = meta.get("namespace") if isinstance(meta, Mapping) else None
    return ns if isinstance(ns, str) and ns else None


def _name_of(obj: Mapping[str, Any] | None) -> str | None:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    if not isinstance(meta, Mapping):
        return None
    name = meta.get("name") or meta.get("generateName")
    return name if isinstance(name, str) else None
