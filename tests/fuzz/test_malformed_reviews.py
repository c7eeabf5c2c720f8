"""Hypothesis against the running webhook over TLS: malformed bodies never get an HTTP 500 and never
``allowed: true``.

Three families of bodies, each unable to be a valid review:

* arbitrary bytes;
* arbitrary JSON values (they lack the AdmissionReview envelope);
* a valid Pod CREATE review with one to three *breaking* mutations — a required field deleted or
  given a value of the wrong type, anywhere from the envelope down to a container's image. Every
  mutation here makes the review unusable, so the answer must be HTTP 400 or, with a readable uid,
  ``allowed: false`` with ``status.code: 400``.

The base review's image points at a refused destination, so even a mutation that slipped through
would be denied with 403 rather than allowed — and the ``code == 400`` check would catch it.

A fourth family is structured but wrong (``tests/fuzz/structured.py``): nodes of a valid Pod,
Deployment or CronJob review at any depth swapped for random JSON. Some of those still parse, so
pullguard's pure reader run in-process is the oracle: whatever it refuses must come back refused
(HTTP 400, or ``allowed: false`` with code 400), and no image of a review it accepts may be
called pullable (they all point at a refused destination).
``make fuzz`` runs 100,000 examples (``PULLGUARD_FUZZ_EXAMPLES``); ``make test`` a few hundred.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.structured import structured_reviews
from tests.fuzz.tally import EXAMPLES, counts_for, tally
from tests.support.reviews import pod, review
from tests.support.webhook import RunningWebhook, running_webhook
from webhook.core.admission import BadReview, parse_review
from webhook.core.errors import InputError
from webhook.core.workloads import extract

UID = "fuzz-uid"
COUNTS: dict[str, int] = {"bytes": 0, "json": 0, "mutated": 0, "structured": 0}
TARGET = "webhook: AdmissionReview bodies over TLS"

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=16,
)
_not_str = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.lists(_scalars, max_size=2)
)
_not_str_truthy = (
    st.booleans().filter(bool)
    | st.integers().filter(bool)
    | st.lists(_scalars, min_size=1, max_size=2)
    | st.just({"a": 1})
)
_not_dict = _not_str | st.text(max_size=8)
_not_dict_present = _not_dict.filter(lambda v: v is not None)
_not_list_present = (
    st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.dictionaries(st.text(max_size=4), _scalars, max_size=2)
).filter(lambda v: v is not None)
_DELETE = object()

#: (path, values that break it). Paths index lists with [n].
BREAKING: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("apiVersion", st.text(max_size=20).filter(lambda v: not v.startswith("admission.k8s.io/")) | _not_str),
    ("kind", st.text(max_size=20).filter(lambda v: v != "AdmissionReview") | _not_str),
    ("request", _not_dict),
    ("request.uid", _not_str | st.sampled_from(["", "   ", "\t"])),
    (
        "request.operation",
        st.text(max_size=10).filter(lambda v: v not in ("CREATE", "UPDATE", "DELETE", "CONNECT")) | _not_str,
    ),
    ("request.kind", _not_dict),
    ("request.kind.kind", _not_str | st.just("")),
    ("request.kind.group", _not_str),
    ("request.kind.version", _not_str),
    ("request.namespace", _not_str.filter(lambda v: v is not None)),
    ("request.name", _not_str.filter(lambda v: v is not None)),
    ("request.subResource", _not_str.filter(lambda v: v is not None)),
    ("request.dryRun", (st.integers() | st.text(max_size=5) | st.lists(_scalars, max_size=2))),
    ("request.object", _not_dict),
    (
        "request.object.kind",
        _not_str.filter(lambda v: v is not None) | st.sampled_from(["Deployment", "Secret", "pod"]),
    ),
    ("request.object.apiVersion", _not_str.filter(lambda v: v is not None)),
    ("request.object.metadata", _not_dict_present),
    ("request.object.metadata.namespace", _not_str.filter(lambda v: v is not None)),
    ("request.object.metadata.name", _not_str.filter(lambda v: v is not None)),
    ("request.object.spec", _not_dict),
    ("request.object.spec.containers", _not_list_present),
    ("request.object.spec.containers[0]", _not_dict_present),
    ("request.object.spec.containers[0].image", _not_str_truthy | st.just(0) | st.just(0.0) | st.just(False)),
    ("request.object.spec.initContainers", _not_list_present),
    ("request.object.spec.imagePullSecrets", _not_list_present),
    ("request.object.spec.imagePullSecrets[0]", _not_dict_present),
    ("request.object.spec.imagePullSecrets[0].name", _not_str.filter(lambda v: v is not None)),
    ("request.object.spec.nodeSelector", _not_list_present.filter(lambda v: not isinstance(v, dict))),
    ("request.object.spec.nodeSelector.disk", _not_str.filter(lambda v: v is not None)),
    ("request.object.spec.tolerations", _not_list_present),
    ("request.object.spec.tolerations[0]", _not_dict_present),
    (
        "request.object.spec.affinity",
        _not_str_truthy.filter(lambda v: not isinstance(v, dict)) | st.just("x"),
    ),
    ("request.object.spec.serviceAccountName", _not_str_truthy),
    ("request.object.spec.volumes", _not_list_present),
    ("request.object.spec.volumes[0]", _not_dict_present),
    ("request.object.spec.volumes[0].image", _not_dict_present),
]
REQUIRED = [
    "apiVersion",
    "kind",
    "request",
    "request.uid",
    "request.operation",
    "request.kind",
    "request.object",
]


def _base() -> dict[str, Any]:
    obj = pod(
        "web", "shop", ["127.0.0.1:9/team/app:1.0"], pull_secrets=["regcred"], init_images=["127.0.0.1:9/x:1"]
    )
    spec = obj["spec"]
    spec["nodeSelector"] = {"disk": "ssd"}
    spec["tolerations"] = [{"key": "k", "operator": "Exists"}]
    spec["volumes"] = [{"name": "v", "image": {"reference": "127.0.0.1:9/models:1"}}]
    return review(obj, uid=UID)


def _parts(path: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.split("."):
        name, _, index = part.partition("[")
        out.append(name)
        if index:
            out.append(int(index.rstrip("]")))
    return out


def _apply(doc: dict[str, Any], path: str, value: Any) -> bool:
    """Set (or delete) ``path``; False when an earlier mutation removed its parent."""
    node: Any = doc
    parts = _parts(path)
    for part in parts[:-1]:
        if isinstance(part, int):
            if not isinstance(node, list) or len(node) <= part:
                return False
        elif not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or len(node) <= last:
            return False
    elif not isinstance(node, dict):
        return False
    if value is _DELETE:
        if isinstance(last, int) or last not in node:
            return False
        del node[last]
    else:
        node[last] = value
    return True


@st.composite
def mutated_reviews(draw: st.DrawFn) -> bytes:
    doc = _base()
    applied = 0
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 9)) == 0:
            path, value = draw(st.sampled_from(REQUIRED)), _DELETE
        else:
            path, values = draw(st.sampled_from(BREAKING))
            value = draw(values)
        applied += _apply(doc, path, copy.deepcopy(value) if value is not _DELETE else value)
    if applied == 0:  # every later mutation fell under an earlier one: break the uid instead
        doc["request"] = None
    return json.dumps(doc).encode()


bodies = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=300)),
    st.tuples(st.just("json"), _json.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.just("mutated"), mutated_reviews()),
    st.tuples(st.just("structured"), structured_reviews()),
)


def reader_refuses(body: bytes) -> bool:
    """The oracle: pullguard's pure reader refuses the review, or the object in it."""
    parsed = parse_review(body)
    if isinstance(parsed, BadReview):
        return True
    if parsed.object is None or parsed.operation not in ("CREATE", "UPDATE"):
        return False
    try:
        extract(parsed.object, parsed.namespace or "default", "admission")
    except InputError:
        return True
    return False


@pytest.fixture(scope="module")
def webhook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWebhook]:
    # the most permissive configuration: if anything could slip through as allowed, it would here
    config = {"mode": "warn", "onUnknown": "allow"}
    with running_webhook(config, trustme.CA(), Path(tmp_path_factory.mktemp("fuzz"))) as running:
        yield running


@pytest.fixture(scope="module")
def client(webhook: RunningWebhook) -> Iterator[httpx.Client]:
    with webhook.client(timeout=30) as c:
        yield c


def test_the_valid_base_review_is_checked(client: httpx.Client) -> None:
    """The control: unmutated, the base review parses and is checked (its images are refused)."""
    resp = client.post("/validate", content=json.dumps(_base()))
    assert resp.status_code == 200
    verdict = json.loads(resp.json()["response"]["auditAnnotations"]["verdict"])
    assert [i["outcome"] for i in verdict["images"]] == ["refused-destination"] * 3


@pytest.mark.timeout(120 + EXAMPLES // 25)  # ~3.5-6 ms an example; make fuzz runs 100,000
@counts_for(TARGET)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(body=bodies)
def test_no_malformed_body_gets_a_500_or_an_allow(client: httpx.Client, body: tuple[str, bytes]) -> None:
    family, content = body
    COUNTS[family] += 1
    tally(TARGET)
    resp = client.post("/validate", content=content)

    assert resp.status_code in (200, 400), (resp.status_code, content[:300])
    doc = resp.json()
    if resp.status_code == 400:
        assert doc["kind"] == "Status" and doc["code"] == 400 and doc["message"].startswith("pullguard: ")
        return
    response = doc["response"]
    if family == "structured":
        assert response["uid"] == json.loads(content)["request"]["uid"]
        if not reader_refuses(content):
            # accepted by the reader: checked (never pullable: every image is refused) or skipped
            audit = response.get("auditAnnotations", {})
            if "verdict" in audit:
                verdict = json.loads(audit["verdict"])
                assert all(i["outcome"] != "pullable" for i in verdict.get("images", [])), verdict
            return
    response = doc["response"]
    assert response["allowed"] is False, content[:300]
    assert response["status"]["code"] == 400, (response, content[:300])
    if family == "mutated":
        assert response["uid"] == UID


def test_report_how_many_bodies_were_tried() -> None:
    total = sum(COUNTS.values())
    print(f"\nfuzzed {total} malformed bodies: {COUNTS}")
    assert total >= min(EXAMPLES, 1) or total == 0
