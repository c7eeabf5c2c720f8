"""The two failure channels of DESIGN 1.2, over real TLS: never an HTTP 500, never a silent allow.

* a body that is not an AdmissionReview -> HTTP 400 with a precise message;
* a review whose uid can be read but which is malformed -> a well-formed review,
  ``allowed: false``, ``status.code: 400``, the offending field named.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trustme

from tests.support.reviews import pod, review
from tests.support.webhook import RunningWebhook, running_webhook

IMAGE = "registry.example/team/app:1.0"  # never contacted: every case below fails before a registry


def _valid() -> dict[str, Any]:
    return review(pod("web", "shop", [IMAGE]), uid="uid-1")


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        parts = path.replace("]", "").replace("[", ".").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node[part]
        last = parts[-1]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()

MALFORMED_REVIEWS = [
    pytest.param(
        _set("request.object.spec.containers[0].image", 42),
        "request.object.spec.containers[0].image",
        id="image-not-a-string",
    ),
    pytest.param(
        _set("request.object.spec.containers", {"name": "c"}),
        "request.object.spec.containers",
        id="containers-not-a-list",
    ),
    pytest.param(_set("request.object.spec", "nope"), "request.object.spec", id="spec-not-an-object"),
    pytest.param(
        _set("request.object.spec.imagePullSecrets", [{"name": 7}]),
        "request.object.spec.imagePullSecrets[0].name",
        id="pull-secret-name-not-a-string",
    ),
    pytest.param(
        _set("request.object.spec.nodeSelector", {"disk": 1}),
        'request.object.spec.nodeSelector["disk"]',
        id="node-selector-value-not-a-string",
    ),
    pytest.param(_set("request.object", [1, 2]), "request.object", id="object-not-an-object"),
    pytest.param(
        _set("request.object.kind", "Deployment"), "request.object.kind", id="object-kind-disagrees"
    ),
    pytest.param(
        _set("request.object.metadata", "x"), "request.object.metadata", id="metadata-not-an-object"
    ),
    pytest.param(
        _set("request.object.metadata.namespace", "kube-system"),
        "request.object.metadata.namespace",
        id="object-namespace-disagrees-with-the-request",
    ),
    pytest.param(_set("request.operation", "PATCH"), "request.operation", id="unknown-operation"),
    pytest.param(_set("request.kind", _DELETE), "request.kind", id="kind-missing"),
    pytest.param(_set("request.kind.kind", ""), "request.kind.kind", id="kind-empty"),
    pytest.param(_set("request.namespace", 5), "request.namespace", id="namespace-not-a-string"),
    pytest.param(_set("request.dryRun", "yes"), "request.dryRun", id="dry-run-not-a-boolean"),
    pytest.param(
        lambda doc: doc["request"].update(operation="UPDATE", oldObject=None),
        "request.oldObject",
        id="update-without-old-object",
    ),
    pytest.param(
        lambda doc: doc["request"].update(
            operation="UPDATE",
            oldObject={"kind": "Pod", "spec": {"containers": [{"name": "c", "image": ["x"]}]}},
        ),
        "request.oldObject.spec.containers[0].image",
        id="old-object-image-not-a-string",
    ),
]


@pytest.fixture(scope="module")
def webhook(test_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWebhook]:
    """The most permissive configuration: if anything could slip through as allowed, it would here."""
    with running_webhook({"mode": "warn", "onUnknown": "allow"}, test_ca, tmp_path_factory.mktemp("c")) as wh:
        yield wh


@pytest.mark.parametrize(("mutate", "field"), MALFORMED_REVIEWS)
def test_a_malformed_review_with_a_readable_uid_is_refused_naming_the_field(
    webhook: Any, mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    body = copy.deepcopy(_valid())
    mutate(body)

    resp = webhook.review(body)

    assert resp.status_code == 200
    doc = resp.json()
    assert (doc["apiVersion"], doc["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    response = doc["response"]
    assert response["uid"] == "uid-1"
    assert response["allowed"] is False
    status = response["status"]
    assert (status["code"], status["reason"]) == (400, "BadRequest")
    assert status["details"]["causes"][0]["field"] == field
    assert field in status["message"]


NOT_REVIEWS = [
    pytest.param(b"", "the body is not JSON (Expecting value at line 1 column 1)", id="empty"),
    pytest.param(
        b"{not json", "the body is not JSON (Expecting property name enclosed in double quotes", id="not-json"
    ),
    pytest.param(b"\xff\xfe\x00", "the body is not", id="not-utf8"),
    pytest.param(b"[1, 2]", "the body is a JSON array, not an AdmissionReview object", id="array"),
    pytest.param(b'{"kind": "Pod"}', "kind is 'Pod', expected AdmissionReview", id="a-pod"),
    pytest.param(
        b'{"kind": "AdmissionReview", "apiVersion": "v1"}',
        "apiVersion is 'v1', expected admission.k8s.io/v1",
        id="wrong-api-version",
    ),
    pytest.param(
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}',
        "request must be an object, found null",
        id="no-request",
    ),
    pytest.param(
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"uid": 3}}',
        "request.uid must be a non-empty string",
        id="uid-not-a-string",
    ),
    pytest.param(
        b"[" * 100000 + b"]" * 100000, "the body nests deeper than any AdmissionReview", id="deep-nesting"
    ),
]


@pytest.mark.parametrize(("body", "message"), NOT_REVIEWS)
def test_a_body_that_is_not_a_review_gets_http_400_saying_why(
    webhook: Any, body: bytes, message: str
) -> None:
    with webhook.client() as client:
        resp = client.post("/validate", content=body)

    assert resp.status_code == 400
    doc = resp.json()
    assert (doc["kind"], doc["code"], doc["reason"]) == ("Status", 400, "BadRequest")
    assert doc["message"].startswith("pullguard: not an AdmissionReview: " + message)


def test_a_v1beta1_review_is_answered_in_v1beta1_and_refused(webhook: Any) -> None:
    body = _valid()
    body["apiVersion"] = "admission.k8s.io/v1beta1"

    resp = webhook.review(body)

    assert resp.status_code == 200
    doc = resp.json()
    assert doc["apiVersion"] == "admission.k8s.io/v1beta1"
    assert doc["response"]["allowed"] is False
    assert doc["response"]["status"]["code"] == 400
    assert "admissionReviewVersions: [v1]" in doc["response"]["status"]["message"]


def test_a_body_larger_than_any_review_is_refused_before_it_is_read(webhook: Any) -> None:
    with webhook.client() as client:
        resp = client.post("/validate", content=b"{" + b" " * (9 * 1024 * 1024))

    assert resp.status_code == 413
    assert "no AdmissionReview exceeds" in resp.json()["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        pytest.param("GET", "/validate", 405, id="get-validate"),
        pytest.param("POST", "/mutate", 404, id="unknown-path"),
        pytest.param("GET", "/docs", 404, id="no-docs"),
    ],
)
def test_other_requests_get_ordinary_http_errors(webhook: Any, method: str, path: str, status: int) -> None:
    with webhook.client() as client:
        resp = client.request(method, path, content=json.dumps(_valid()))
    assert resp.status_code == status


def test_the_answer_keeps_the_request_uid_even_when_it_is_unusual(webhook: Any) -> None:
    body = _valid()
    body["request"]["uid"] = "  uid with spaces ✓  "
    body["request"]["object"]["spec"]["containers"][0]["image"] = {"not": "a string"}

    resp = webhook.review(body)

    assert resp.json()["response"]["uid"] == "  uid with spaces ✓  "


def test_health_and_readiness(webhook: Any) -> None:
    with webhook.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})


def test_connections_are_tls_only(webhook: Any) -> None:
    plain = webhook.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(plain + "/healthz", timeout=3)
