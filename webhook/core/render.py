"""Human renderings of a verdict: the CLI text, the webhook denial, warnings, the audit annotation.

Every rendering answers the same four questions — exists? public? which identity? permitted? —
then why and the fix, so the words a developer reads in CI, in ``kubectl apply`` and in
``pullguard explain`` are the same. Colour is the caller's choice (only on a TTY).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from webhook.core.findings import Finding
from webhook.core.outcomes import describe_status
from webhook.core.verdict import ImageVerdict, ObjectVerdict, Report

WARNING_LIMIT = 120

_RED, _GREEN, _YELLOW, _DIM, _BOLD, _RESET = (
    "\033[31m",
    "\033[32m",
    "\033[33m",
    "\033[2m",
    "\033[1m",
    "\033[0m",
)


def _mark(image: ImageVerdict) -> str:
    if image.outcome == "pullable":
        return "✓"
    if image.outcome == "skipped" or not image.checked:
        return "-"
    return "?" if image.unknown else "✗"


def exists_answer(image: ImageVerdict) -> str:
    if image.exists is True:
        return "yes"
    if image.exists is False:
        return "no — the registry let pullguard look and found nothing"
    if not image.checked:
        return "not checked"
    if image.outcome in ("unauthorized", "forbidden"):
        return "unknown — no identity could see the repository (does not exist or is private)"
    return "unknown"


def visibility_answer(image: ImageVerdict) -> str:
    return {
        "public": "public — an anonymous pull works",
        "private": "private — an anonymous pull is refused",
    }.get(image.visibility, "not checked" if not image.checked else "unknown")


def permission_answer(image: ImageVerdict) -> str:
    deciding = next(
        (a for a in image.attempts if a.identity == image.identity and a.result != "not-tried"), None
    )
    shown = describe_status(deciding.status, deciding.code) if deciding is not None else ""
    status = f" ({shown})" if shown else ""
    if image.outcome in ("pullable", "platform-mismatch"):
        return "yes"
    if image.outcome == "not-found":
        return "yes — it may look, there is nothing to pull"
    if image.outcome in ("unauthorized", "forbidden"):
        return "no" + status
    if not image.checked:
        return "not checked"
    return "unknown" + status


def identity_answer(image: ImageVerdict) -> str:
    ident = image.identity
    if ident is None:
        return "none — decided before any credential is used"
    key = f", key {ident.key}" if ident.key else ""
    return ident.display + key


def _platform_line(image: ImageVerdict) -> str:
    p = image.platforms
    req = ", ".join(p.required) or "any"
    if p.available is None:
        return f"{req} required"
    state = {True: "ok", False: "MISSING", None: "unknown"}[p.ok]
    return f"{req} required; available {', '.join(p.available)} — {state}"


def image_lines(image: ImageVerdict, color: bool = False) -> list[str]:
    """The block describing one image (the same for ``check`` and ``explain``)."""

    def c(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    tone = (
        _GREEN if image.outcome == "pullable" else (_YELLOW if image.unknown or not image.checked else _RED)
    )
    head = f"{_mark(image)} {image.container or '-'}  {image.image}  {c(tone, image.outcome)}"
    rows = [
        ("field", image.field),
        ("reference", image.reference or "-"),
        ("exists?", exists_answer(image)),
        ("public?", visibility_answer(image)),
        ("identity", identity_answer(image)),
        ("permitted?", permission_answer(image)),
        ("platforms", _platform_line(image)),
    ]
    if image.digest:
        rows.append(("digest", image.digest))
    rows.append(("why" if image.outcome != "pullable" else "result", image.message))
    if image.fix:
        rows.append(("fix", c(_BOLD, image.fix)))
    lines = [head] + [f"    {c(_DIM, f'{k:<11}')} {v}" for k, v in rows]
    for n, a in enumerate(image.attempts, 1):
        status = describe_status(a.status, a.code)
        key = f" [{a.identity.key}]" if a.identity.key else ""
        label = "tried" if n == 1 else ""
        tail = f" {status}" if status else ""
        who = a.identity.display_with_group
        lines.append(f"    {c(_DIM, f'{label:<11}')} {n}. {who}{key} → {a.result}{tail}")
    return lines


def _finding_line(f: Finding) -> str:
    mark = "✗" if f.severity == "error" else "!"
    where = f"{f.field}: " if f.field else ""
    return f"{mark} {where}{f.message}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def render_text(report: Report, color: bool = False) -> str:
    """The CLI's text output: per object, its findings and every image's four answers."""
    out: list[str] = []
    for result in report.results:
        ref = result.object
        verdict = "allowed" if result.allowed else "will not pull"
        if result.exempt:
            verdict = f"skipped ({result.exempt})"
        head = f"{'✓' if result.allowed else '✗'} {ref.display}  {verdict}"
        if ref.source:
            head += f"  [{ref.source}]"
        out.append(f"{_BOLD}{head}{_RESET}" if color else head)
        for f in result.findings:
            out.append("  " + _finding_line(f))
        for image in result.images:
            out.extend("  " + line for line in image_lines(image, color))
        out.append("")
    out.append(summary_line(report))
    return "\n".join(out) + "\n"


def summary_line(report: Report) -> str:
    """``3 objects, 5 images: 4 pullable, 1 not pullable, 0 unknown`` (the last line of every report)."""
    s = report.summary
    return (
        f"{_count(s.objects, 'object')}, {_count(s.images, 'image')}: {s.pullable} pullable, "
        f"{s.not_pullable} not pullable, {s.unknown} unknown"
        + (f", {s.skipped} skipped" if s.skipped else "")
        + (" (offline: no registry contacted)" if report.offline else "")
    )


def _sentence(text: str) -> str:
    """``text`` ending in one full stop ("did you mean 1.4.2?" keeps its question mark)."""
    return text if text.endswith((".", "?", "!")) else text + "."


def image_summary(image: ImageVerdict) -> str:
    """One paragraph: the image, its outcome, the four answers, why, and the fix (CI and denials)."""
    return (
        f"{image.image}: {image.outcome}. exists: {exists_answer(image)}; "
        f"visibility: {image.visibility}; identity: {identity_answer(image)}; "
        f"permitted: {permission_answer(image)}. {_sentence(image.message)}"
        + (f" Fix: {_sentence(image.fix)}" if image.fix else "")
    )


def _one_line(image: ImageVerdict) -> str:
    return f"{image.field} {image_summary(image)}"


def denial_message(
    result: ObjectVerdict, failing: Iterable[ImageVerdict], findings: Iterable[Finding]
) -> str:
    """The webhook's ``status.message``: every failing image with its four answers and fix."""
    images = list(failing)
    errors = [f for f in findings if f.severity == "error"]
    total = len(result.images)
    if images:
        head = (
            f"pullguard: {len(images)} of {total} image{'s' if total != 1 else ''} of "
            f"{result.object.display} will not pull"
        )
    else:  # only findings deny (a container without an image): no image count to give
        head = f"pullguard: {result.object.display} cannot run as written"
    lines = [head] + [f"- {_one_line(i)}" for i in images] + [f"- {_finding_line(f)}" for f in errors]
    return "\n".join(lines)


def warning(image: ImageVerdict) -> str:
    """One kubectl warning (at most 120 characters) for a failing or unknown image."""
    who = image.identity.display if image.identity else ""
    text = f"pullguard: {image.container or image.field} {image.reference or image.image}: {image.outcome}"
    if who and image.outcome not in ("not-found", "invalid-reference", "pullable"):
        text += f" as {who}"
    if image.suggestions:
        text += f" (did you mean {image.suggestions[0]}?)"
    return clip(text)


def finding_warning(f: Finding) -> str:
    return clip(f"pullguard: {f.message}")


def clip(text: str, limit: int = WARNING_LIMIT) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (kubectl warnings: 120, DESIGN 1.2)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def audit_annotation(result: ObjectVerdict) -> str:
    """Compact JSON for the ``verdict`` audit annotations (no credentials, bounded)."""
    doc = {
        "allowed": result.allowed,
        "images": [_audit_image(i) for i in result.images[:50]],
        "findings": [f.code for f in result.findings][:20],
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def _audit_image(image: ImageVerdict) -> dict[str, object]:
    ident = image.identity
    out: dict[str, object] = {
        "field": image.field,
        "reference": image.reference,
        "outcome": image.outcome,
        "identity": f"{ident.kind}:{ident.name}" if ident and ident.name else (ident.kind if ident else None),
    }
    if not image.changed:
        out["changed"] = False  # UPDATE: unchanged against oldObject, so it could only warn
    return out
