"""AdmissionReview ``admission.k8s.io/v1``: read a request, write the response (DESIGN 1.2).

Pure: bytes and verdicts in, values out. The webhook's two failure channels (STYLE rule 6) are
decided here, after kopf ``_kits/webhooks.py::_serve`` and one step further:

* a body that is not an AdmissionReview at all (not JSON, another kind, no ``request.uid``) is
  the webhook's own error: ``BadReview(uid=None)``, answered with HTTP 400 and the reason;
* a review whose ``uid`` can be read but which is malformed elsewhere is answered with a
  well-formed review, ``allowed: false``, ``status.code: 400`` and the field path — a bare 4xx
  would be decided by ``failurePolicy``, and ``Ignore`` would turn it into a silent allow.

Responses follow the API server's rules (k8s.io/api admission/v1 ``AdmissionResponse``;
apiserver ``webhook/request/admissionreview.go`` ``VerifyAdmissionResponse``): same ``uid``;
``status`` is a ``metav1.Status``; ``warnings`` should stay within 120 characters each; and
``auditAnnotations`` keys must not contain ``/`` — the dispatcher prefixes them with the webhook
name (``validating/dispatcher.go``: ``key := h.Name + "/" + k``) and ``checkKeyFormat`` drops a
key with two slashes. So the verdict is sent twice: as ``verdict``, which a webhook named
``validate.pullguard.io`` shows in the audit log as ``validate.pullguard.io/verdict``, and as
``pullguard.io/verdict``, the key DESIGN 1.2 promises to readers of the AdmissionReview response
(the API server logs a warning and drops that one from the audit log).

Modes (DESIGN 4): enforce denies (code 403, one message with every failing image's four answers
and fix), warn allows with one kubectl warning per failing image, audit allows with the audit
annotation only. On UPDATE only images that changed against ``oldObject`` can deny; the others
warn. ``dryRun`` reviews are answered exactly like the others (a check has no side effects).

Not here: reading Namespaces, running the engine, clocks and metrics (``webhook/review.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from webhook.core.errors import InputError
from webhook.core.findings import Finding
from webhook.core.render import (
    audit_annotation,
    clip,
    denial_message,
    finding_warning,
    warning,
)
from webhook.core.verdict import ImageVerdict, ObjectVerdict, is_allowed
from webhook.core.workloads import PodTemplate, extract

API_VERSION = "admission.k8s.io/v1"
#: v1beta1 has the same shape; a misconfigured webhook (admissionReviewVersions: [v1beta1]) is
#: told so in a response it can read instead of an HTTP error failurePolicy might ignore.
LEGACY_API_VERSION = "admission.k8s.io/v1beta1"
KIND = "AdmissionReview"
#: The response's audit annotation key; the API server stores it as ``<webhook name>/verdict``.
AUDIT_KEY = "verdict"
#: DESIGN 1.2's key, in every response too (the API server keeps only single-slash keys, see above).
CONTRACT_AUDIT_KEY = "pullguard.io/verdict"
MODE_AUDIT_KEY = "mode"
MODE_LABEL = "pullguard.io/mode"
MODES = ("enforce", "warn", "audit")
OPERATIONS = ("CREATE", "UPDATE", "DELETE", "CONNECT")
#: What an answer decided (``AdmissionResponse.decision``; the metrics' ``verdict`` label).
DECISIONS = ("allowed", "denied", "warned", "audited", "invalid", "skipped", "error")
#: The only subresource whose admission can add images (kubectl debug).
EPHEMERAL = "ephemeralcontainers"
#: The API server keeps at most 4096 bytes of warnings per request (apiserver ``warning``
#: recorder); 30 x 120 stays under it, the last slot says how many were left out.
MAX_WARNINGS = 30


@dataclass(frozen=True, slots=True)
class BadReview:
    """A request pullguard cannot review; ``uid`` None means it is not a review at all."""

    uid: str | None
    field: str
    message: str
    api_version: str = API_VERSION


@dataclass(frozen=True, slots=True)
class ReviewRequest:
    """The parts of ``AdmissionReview.request`` pullguard uses."""

    uid: str
    kind: str  # request.kind.kind
    group: str
    version: str
    operation: str
    namespace: str | None
    name: str | None
    sub_resource: str
    object: Mapping[str, Any] | None
    old_object: Mapping[str, Any] | None
    dry_run: bool
    api_version: str = API_VERSION

    @property
    def display(self) -> str:
        ns = f"{self.namespace}/" if self.namespace else ""
        sub = f"/{self.sub_resource}" if self.sub_resource else ""
        return f"{self.kind}{sub} {ns}{self.name or '<unnamed>'}"


@dataclass(frozen=True, slots=True)
class Cause:
    """One ``metav1.StatusCause``: which field, and what is wrong with it."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"


@dataclass(frozen=True, slots=True)
class Status:
    code: int
    reason: str
    message: str
    causes: tuple[Cause, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "Failure",
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
        }
        if self.causes:
            out["details"] = {
                "causes": [{"reason": c.reason, "field": c.field, "message": c.message} for c in self.causes]
            }
        return out

    def document(self) -> dict[str, Any]:
        """A whole ``metav1.Status`` object: the body of an HTTP error to the API server."""
        return {"apiVersion": "v1", "kind": "Status", **self.to_json()}


@dataclass(frozen=True, slots=True)
class AdmissionResponse:
    """``AdmissionReview.response``; ``decision`` is for logs and metrics only (never sent)."""

    uid: str
    allowed: bool
    decision: str  # allowed | denied | warned | audited | invalid | skipped | error
    status: Status | None = None
    warnings: tuple[str, ...] = ()
    audit: Mapping[str, str] = field(default_factory=dict)
    api_version: str = API_VERSION

    def to_review(self) -> dict[str, Any]:
        response: dict[str, Any] = {"uid": self.uid, "allowed": self.allowed}
        if self.status is not None:
            response["status"] = self.status.to_json()
        if self.warnings:
            response["warnings"] = list(self.warnings)
        if self.audit:
            contract = {CONTRACT_AUDIT_KEY: self.audit[AUDIT_KEY]} if AUDIT_KEY in self.audit else {}
            response["auditAnnotations"] = {**contract, **self.audit}
        return {"apiVersion": self.api_version, "kind": KIND, "response": response}


# -- reading ------------------------------------------------------------------------------------


def _type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
    }.get(type(value), type(value).__name__)


def _optional_str(request: Mapping[str, Any], key: str, uid: str, api: str) -> str | BadReview | None:
    value = request.get(key)
    if value is None or isinstance(value, str):
        return value
    return BadReview(uid, f"request.{key}", f"request.{key} must be a string, found {_type(value)}", api)


def parse_review(body: bytes) -> ReviewRequest | BadReview:
    """Read an AdmissionReview; every problem names the field (``request.object.kind``...)."""
    try:
        doc = json.loads(body)
    except RecursionError:
        return BadReview(None, "", "the body nests deeper than any AdmissionReview")
    except UnicodeDecodeError:
        return BadReview(None, "", "the body is not UTF-8 JSON")
    except ValueError as exc:
        return BadReview(None, "", f"the body is not JSON ({_json_problem(exc)})")
    if not isinstance(doc, dict):
        return BadReview(None, "", f"the body is a JSON {_type(doc)}, not an AdmissionReview object")
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind != KIND:
        return BadReview(None, "kind", f"kind is {_shown(kind)}, expected {KIND}")
    if api not in (API_VERSION, LEGACY_API_VERSION):
        return BadReview(None, "apiVersion", f"apiVersion is {_shown(api)}, expected {API_VERSION}")
    request = doc.get("request")
    if not isinstance(request, dict):
        return BadReview(None, "request", f"request must be an object, found {_type(request)}")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid.strip():
        return BadReview(None, "request.uid", "request.uid must be a non-empty string")
    if api == LEGACY_API_VERSION:
        return BadReview(
            uid,
            "apiVersion",
            f"pullguard answers {API_VERSION} only; set admissionReviewVersions: [v1] in the webhook "
            "configuration",
            api,
        )
    return _parse_request(uid, request)


def _parse_request(uid: str, request: Mapping[str, Any]) -> ReviewRequest | BadReview:
    operation = request.get("operation")
    if operation not in OPERATIONS:
        return BadReview(
            uid,
            "request.operation",
            f"request.operation is {_shown(operation)}, expected one of {OPERATIONS}",
        )
    gvk = request.get("kind")
    if not isinstance(gvk, dict):
        return BadReview(uid, "request.kind", f"request.kind must be an object, found {_type(gvk)}")
    for key in ("group", "version", "kind"):
        if not isinstance(gvk.get(key, ""), str):
            return BadReview(uid, f"request.kind.{key}", f"request.kind.{key} must be a string")
    kind = gvk.get("kind") or ""
    if not kind:
        return BadReview(uid, "request.kind.kind", "request.kind.kind must be a non-empty string")
    strings: dict[str, str | None] = {}
    for key in ("namespace", "name", "subResource"):
        value = _optional_str(request, key, uid, API_VERSION)
        if isinstance(value, BadReview):
            return value
        strings[key] = value
    dry_run = request.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        return BadReview(uid, "request.dryRun", f"request.dryRun must be a boolean, found {_type(dry_run)}")
    objects: dict[str, Mapping[str, Any] | None] = {}
    for key, required in (
        ("object", operation in ("CREATE", "UPDATE")),
        ("oldObject", operation == "UPDATE"),
    ):
        value = request.get(key)
        if value is None and not required:
            objects[key] = None
            continue
        if not isinstance(value, dict):
            return BadReview(
                uid,
                f"request.{key}",
                f"request.{key} must be an object for {operation}, found {_type(value)}",
            )
        problem = _object_problem(value, f"request.{key}", kind, strings["namespace"])
        if problem is not None:
            return BadReview(uid, problem[0], problem[1])
        objects[key] = _with_kind(value, kind, str(gvk.get("group") or ""), str(gvk.get("version") or ""))
    return ReviewRequest(
        uid=uid,
        kind=kind,
        group=str(gvk.get("group") or ""),
        version=str(gvk.get("version") or ""),
        operation=str(operation),
        namespace=strings["namespace"] or None,
        name=strings["name"] or None,
        sub_resource=strings["subResource"] or "",
        object=objects["object"],
        old_object=objects["oldObject"],
        dry_run=dry_run,
    )


def _object_problem(
    obj: Mapping[str, Any], where: str, kind: str, namespace: str | None
) -> tuple[str, str] | None:
    for key in ("apiVersion", "kind"):
        if key in obj and not isinstance(obj[key], str):
            return f"{where}.{key}", f"{where}.{key} must be a string, found {_type(obj[key])}"
    if obj.get("kind") and obj["kind"] != kind:
        return f"{where}.kind", f"{where}.kind is {_shown(obj['kind'])} but request.kind.kind is {kind!r}"
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return f"{where}.metadata", f"{where}.metadata must be an object, found {_type(meta)}"
    if isinstance(meta, dict):
        for key in ("name", "namespace", "generateName"):
            if meta.get(key) is not None and not isinstance(meta[key], str):
                return f"{where}.metadata.{key}", f"{where}.metadata.{key} must be a string"
        # The API server sets both; if they disagreed, which namespace's Secrets would apply?
        if meta.get("namespace") and namespace and meta["namespace"] != namespace:
            return (
                f"{where}.metadata.namespace",
                f"{where}.metadata.namespace is {meta['namespace']!r} but request.namespace is {namespace!r}",
            )
    return None


def _with_kind(obj: Mapping[str, Any], kind: str, group: str, version: str) -> Mapping[str, Any]:
    """The API server always serialises kind and apiVersion; fill them in if a caller did not."""
    if obj.get("kind") and obj.get("apiVersion"):
        return obj
    out = dict(obj)
    if not out.get("kind"):
        out["kind"] = kind
    if not out.get("apiVersion"):
        out["apiVersion"] = f"{group}/{version}" if group else version
    return out


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return "missing" if value is None else f"a {_type(value)}"


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)[:100]


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_timeout(value: str | None) -> float | None:
    """The API server's ``?timeout=`` (a Go ``time.Duration``: ``10s``, ``1m0s``, ``9.5s``) in seconds.

    None when absent or unreadable: the caller then uses its own deadline.
    """
    if not value or len(value) > 40:
        return None
    if value == "0":
        return 0.0
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total if pos == len(value) and pos > 0 else None


def resolve_mode(default: str, labels: Mapping[str, str] | None) -> tuple[str, str | None]:
    """The mode for a namespace: its ``pullguard.io/mode`` label, else ``default``; and a note."""
    raw = (labels or {}).get(MODE_LABEL)
    if raw is None:
        return default, None
    value = raw.strip().lower()
    if value in MODES:
        return value, None
    return default, (
        f"namespace label {MODE_LABEL}={_shown(raw)} is not enforce, warn or audit; using {default}"
    )


# -- UPDATE: which images changed ---------------------------------------------------------------


def _within(prefix: str, field_path: str | None, message: str) -> tuple[str, str]:
    """An object-relative problem named from the review: ``spec.x ...`` -> ``request.object.spec.x ...``."""
    if not field_path:
        return prefix, f"{prefix}: {message}"
    where = f"{prefix}.{field_path}"
    if message.startswith(field_path):
        return where, f"{prefix}.{message}"
    return where, f"{where}: {message}"


def _pull_context(template: PodTemplate) -> tuple[Any, ...]:
    """What decides who pulls and where: if it changed, every image's answer may have changed."""
    return (
        tuple(r.name for r in template.pull_secrets),
        template.service_account,
        dict(template.node_selector),
        json.dumps(template.affinity, sort_keys=True, default=str),
        json.dumps(list(template.tolerations), sort_keys=True, default=str),
    )


def unchanged_fields(
    uid: str, new: Mapping[str, Any], old: Mapping[str, Any], namespace: str | None
) -> frozenset[str] | BadReview:
    """Field paths of ``new``'s images that ``old`` already had, under the same pull identity.

    An image counts as unchanged when the same reference appears anywhere among the old
    object's images (a reordered or renamed container keeps its image) and the pod's pull
    context — ``imagePullSecrets``, the ServiceAccount, ``nodeSelector``, affinity, tolerations —
    is the same. A changed context can change every answer, so then every image is "changed".
    """
    try:
        old_template = extract(old, namespace, "admission")
    except InputError as exc:
        where, message = _within("request.oldObject", exc.field, exc.message)
        return BadReview(uid, where, message)
    try:
        new_template = extract(new, namespace, "admission")
    except InputError:
        return frozenset()  # the engine reports the new object's problem with its field
    if old_template is None or new_template is None:
        return frozenset()
    if _pull_context(old_template) != _pull_context(new_template):
        return frozenset()
    before = {site.image for site in old_template.images}
    return frozenset(site.field for site in new_template.images if site.image in before)


def mark_unchanged(verdict: ObjectVerdict, fields: frozenset[str], on_unknown: str) -> ObjectVerdict:
    """The verdict with ``changed: false`` on ``fields``' images, and ``allowed`` recomputed."""
    if not fields:
        return verdict
    images = tuple(replace(i, changed=False) if i.field in fields else i for i in verdict.images)
    allowed = is_allowed(images, verdict.findings, on_unknown)
    return replace(verdict, images=images, allowed=allowed)


# -- answering ----------------------------------------------------------------------------------


def _bounded(warnings: Iterable[str]) -> tuple[str, ...]:
    unique = list(dict.fromkeys(clip(w) for w in warnings))
    if len(unique) <= MAX_WARNINGS:
        return tuple(unique)
    kept = unique[: MAX_WARNINGS - 1]
    return (*kept, f"pullguard: {len(unique) - len(kept)} more warnings; see the audit annotation")


def _object_finding(f: Finding) -> bool:
    """Findings about the reviewed object (not the cluster's or pullguard's own configuration)."""
    return f.field is not None and not f.field.startswith("cluster.")


def _annotations(verdict: ObjectVerdict, mode: str) -> dict[str, str]:
    return {AUDIT_KEY: audit_annotation(verdict), MODE_AUDIT_KEY: mode}


def _noteworthy(image: ImageVerdict, on_unknown: str) -> bool:
    return image.failed or (image.unknown and image.checked and on_unknown != "allow")


def invalid(uid: str, field_path: str, message: str, api_version: str = API_VERSION) -> AdmissionResponse:
    """``allowed: false``, code 400, naming the field: the review could be addressed, not read."""
    text = f"pullguard: malformed AdmissionReview: {message}"
    note = {"allowed": False, "invalid": {"field": field_path, "message": clip(message, 300)}}
    return AdmissionResponse(
        uid,
        False,
        "invalid",
        Status(400, "BadRequest", text, (Cause(field_path, message),)),
        audit={AUDIT_KEY: json.dumps(note, separators=(",", ":"), sort_keys=True)},
        api_version=api_version,
    )


def skipped(uid: str, reason: str) -> AdmissionResponse:
    """Nothing to pull (DELETE, a subresource, not a workload): allowed, and the audit log says why."""
    note = json.dumps({"allowed": True, "skipped": reason}, separators=(",", ":"), sort_keys=True)
    return AdmissionResponse(uid, True, "skipped", audit={AUDIT_KEY: note})


def respond(
    uid: str, verdict: ObjectVerdict, mode: str, on_unknown: str, notes: Sequence[str] = ()
) -> AdmissionResponse:
    """The answer for a checked object in ``mode`` (enforce | warn | audit)."""
    invalid_object = next((f for f in verdict.findings if f.code == "invalid-object"), None)
    if invalid_object is not None:
        where, message = _within("request.object", invalid_object.field, invalid_object.message)
        return invalid(uid, where, message)
    if verdict.exempt:
        note = json.dumps({"allowed": True, "exempt": verdict.exempt}, separators=(",", ":"), sort_keys=True)
        return AdmissionResponse(uid, True, "skipped", audit={AUDIT_KEY: note, MODE_AUDIT_KEY: mode})
    audit = _annotations(verdict, mode)
    blocking = [i for i in verdict.images if i.blocks(on_unknown)]
    errors = [f for f in verdict.findings if f.severity == "error"]
    others = [i for i in verdict.images if _noteworthy(i, on_unknown) and i not in blocking]
    findings = [f for f in verdict.findings if _object_finding(f) and f.severity != "error"]
    notes_ = [f"pullguard: {n}" for n in notes]
    if mode == "audit":
        decision = "allowed" if verdict.allowed and not others else "audited"
        return AdmissionResponse(uid, True, decision, audit=audit)
    if mode == "enforce" and not verdict.allowed:
        message = denial_message(verdict, blocking, errors)
        warnings = _bounded([*notes_, *(warning(i) for i in others), *(finding_warning(f) for f in findings)])
        return AdmissionResponse(
            uid, False, "denied", Status(403, "Forbidden", message), warnings=warnings, audit=audit
        )
    failing = [*blocking, *others]
    warnings = _bounded(
        [
            *notes_,
            *(warning(i) for i in failing),
            *(finding_warning(f) for f in errors),
            *(finding_warning(f) for f in findings),
        ]
    )
    decision = "warned" if failing or errors else "allowed"
    return AdmissionResponse(uid, True, decision, warnings=warnings, audit=audit)


def undecided(uid: str, mode: str, on_unknown: str, reason: str) -> AdmissionResponse:
    """pullguard could not finish (its deadline, an internal error): ``onUnknown`` decides.

    Its own blindness must not block a deploy unless asked to (``onUnknown: deny``), and it is
    never silent: a warning and the audit annotation say what happened.
    """
    note = json.dumps({"allowed": None, "undetermined": reason}, separators=(",", ":"), sort_keys=True)
    audit = {AUDIT_KEY: note, MODE_AUDIT_KEY: mode}
    text = f"pullguard: could not check this object: {reason}"
    if on_unknown == "deny" and mode == "enforce":
        return AdmissionResponse(uid, False, "error", Status(503, "ServiceUnavailable", text), audit=audit)
    warnings = () if mode == "audit" or on_unknown == "allow" else (clip(text),)
    return AdmissionResponse(uid, True, "error", warnings=warnings, audit=audit)
