"""The verdict: what pullguard says about each image and each object (DESIGN 1.1 JSON schema).

One model serves every surface: ``--output json`` serialises it as is, the text, SARIF, GitHub
and JUnit renderers and the webhook's denial message read it. Field names and enumerations are a
public contract — change them only additively.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.core.findings import Finding
from webhook.core.identity import Identity
from webhook.core.objects import ObjectRef

SCHEMA_VERSION = "1"

#: Every outcome of DESIGN 1.1.
OUTCOMES = (
    "pullable",
    "not-found",
    "unauthorized",
    "forbidden",
    "platform-mismatch",
    "secret-malformed",
    "invalid-reference",
    "rate-limited",
    "unreachable",
    "timeout",
    "refused-destination",
    "digest-mismatch",
    "undetermined",
    "skipped",
)
#: Outcomes that mean "pullguard could not decide" (exit 3, ``onUnknown``).
UNKNOWN = frozenset({"rate-limited", "unreachable", "timeout", "undetermined"})
#: Outcomes that mean "will not pull".
DEFINITE_FAILURES = frozenset(OUTCOMES) - UNKNOWN - {"pullable", "skipped"}

#: When an image fails differently on several node groups, the verdict reports the most
#: actionable one: certain input errors first, then registry refusals, then unknowns.
_SEVERITY = {
    "invalid-reference": 0,
    "secret-malformed": 1,
    "not-found": 2,
    "unauthorized": 3,
    "forbidden": 4,
    "digest-mismatch": 5,
    "refused-destination": 6,
    "platform-mismatch": 7,
    "undetermined": 8,
    "rate-limited": 9,
    "timeout": 10,
    "unreachable": 11,
    "skipped": 12,
    "pullable": 13,
}


def worst(outcomes: Iterable[str]) -> str:
    """The outcome that decides an image checked on several node groups."""
    return min(outcomes, key=lambda o: _SEVERITY.get(o, 99), default="pullable")


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What happened (or would happen) when kubelet tries one identity."""

    identity: Identity
    result: str  # an outcome, or "not-tried"
    status: int | None = None
    code: str | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "identity": self.identity.to_json(),
            "result": self.result,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            out["message"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class PlatformCheck:
    required: tuple[str, ...]
    available: tuple[str, ...] | None = None
    ok: bool | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "required": list(self.required),
            "available": list(self.available) if self.available is not None else None,
            "ok": self.ok,
        }


@dataclass(frozen=True, slots=True)
class ImageVerdict:
    """The four answers for one image, and the fix."""

    field: str
    container: str | None
    image: str
    reference: str | None
    outcome: str
    exists: bool | None
    visibility: str  # public | private | unknown
    identity: Identity | None
    attempts: tuple[AttemptResult, ...]
    platforms: PlatformCheck
    digest: str | None
    message: str
    fix: str | None
    suggestions: tuple[str, ...] = ()
    failing_groups: tuple[str, ...] = ()
    checked: bool = True  # False when no registry was asked (--offline)
    #: On UPDATE, images that did not change against oldObject can only warn (DESIGN 4).
    changed: bool = True

    @property
    def failed(self) -> bool:
        return self.outcome in DEFINITE_FAILURES

    @property
    def unknown(self) -> bool:
        return self.outcome in UNKNOWN

    def blocks(self, on_unknown: str) -> bool:
        """Whether this image denies its object: a definite failure, or an unknown under
        ``onUnknown: deny`` — never an image unchanged on UPDATE (DESIGN 4)."""
        if not self.changed:
            return False
        return self.failed or (self.unknown and self.checked and on_unknown == "deny")

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "field": self.field,
            "container": self.container,
            "image": self.image,
            "reference": self.reference,
            "outcome": self.outcome,
            "exists": self.exists,
            "visibility": self.visibility,
            "identity": self.identity.to_json() if self.identity else None,
            "attempts": [a.to_json() for a in self.attempts],
            "platforms": self.platforms.to_json(),
            "digest": self.digest,
            "message": self.message,
            "fix": self.fix,
        }
        if self.suggestions:
            out["suggestions"] = list(self.suggestions)
        if self.failing_groups:
            out["failingNodeGroups"] = list(self.failing_groups)
        if not self.checked:
            out["checked"] = False
        if not self.changed:
            out["changed"] = False
        return out


@dataclass(frozen=True, slots=True)
class ObjectVerdict:
    object: ObjectRef
    allowed: bool
    findings: tuple[Finding, ...]
    images: tuple[ImageVerdict, ...]
    exempt: str | None = None  # why the whole object was skipped (exempt namespace)

    def to_json(self) -> dict[str, Any]:
        ref = self.object
        out: dict[str, Any] = {
            "object": {
                "apiVersion": ref.api_version,
                "kind": ref.kind,
                "namespace": ref.namespace,
                "name": ref.name,
                "source": ref.source,
            },
            "allowed": self.allowed,
            "findings": [f.to_json() for f in self.findings],
            "images": [i.to_json() for i in self.images],
        }
        if self.exempt:
            out["exempt"] = self.exempt
        return out


def is_allowed(images: Sequence[ImageVerdict], findings: Sequence[Finding], on_unknown: str) -> bool:
    """Whether an object passes: no definite failure, no error finding, unknowns per ``onUnknown``."""
    if any(f.severity == "error" for f in findings):
        return False
    return not any(image.blocks(on_unknown) for image in images)


@dataclass(frozen=True, slots=True)
class Summary:
    objects: int
    images: int
    pullable: int
    not_pullable: int
    unknown: int
    skipped: int

    def to_json(self) -> dict[str, int]:
        return {
            "objects": self.objects,
            "images": self.images,
            "pullable": self.pullable,
            "notPullable": self.not_pullable,
            "unknown": self.unknown,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class Report:
    results: tuple[ObjectVerdict, ...]
    offline: bool = False
    errors: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def summary(self) -> Summary:
        images = [i for r in self.results for i in r.images]
        return Summary(
            objects=len(self.results),
            images=len(images),
            pullable=sum(1 for i in images if i.outcome == "pullable"),
            not_pullable=sum(1 for i in images if i.failed),
            unknown=sum(1 for i in images if i.unknown and i.checked),
            skipped=sum(1 for i in images if i.outcome == "skipped"),
        )

    def exit_code(self, allow_unknown: bool = False) -> int:
        """0 all pull; 1 something will not; 3 nothing failed but something is unknown."""
        if any(i.failed for r in self.results for i in r.images):
            return 1
        if any(f.severity == "error" for r in self.results for f in r.findings):
            return 1
        if not allow_unknown and any(i.unknown and i.checked for r in self.results for i in r.images):
            return 3
        return 0

    def to_json(self) -> dict[str, object]:
        return {
            "pullguard": SCHEMA_VERSION,
            "summary": self.summary.to_json(),
            "results": [r.to_json() for r in self.results],
        }
