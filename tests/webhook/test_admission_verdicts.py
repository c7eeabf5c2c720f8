"""What ``kubectl apply`` sees, over real TLS against the real registry: deny, warn, audit, exempt, UPDATE."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.support.reviews import deployment, pod, review
from tests.webhook.conftest import StartWebhook, loopback
from webhook.core.admission import clip


def _response(resp: Any, uid: str | None = None) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["apiVersion"] == "admission.k8s.io/v1"
    assert doc["kind"] == "AdmissionReview"
    if uid is not None:
        assert doc["response"]["uid"] == uid
    return dict(doc["response"])


#: Without a cluster a Deployment's ServiceAccount cannot be read; the webhook says so.
NO_SA = clip(
    "pullguard: ServiceAccount shop/default could not be read (no Kubernetes API configured); its "
    "imagePullSecrets, which the API server copies into pods that list none, are not known"
)


def _verdict(response: dict[str, Any]) -> dict[str, Any]:
    annotations = response["auditAnnotations"]
    # DESIGN 1.2's key for response readers, and the single-segment key the audit log keeps.
    assert annotations["pullguard.io/verdict"] == annotations["verdict"]
    return dict(json.loads(annotations["verdict"]))


@pytest.fixture
def missing_tag(registry_noauth: RegistryProcess, repo_name: Callable[[str], str]) -> tuple[str, str]:
    """(image whose tag does not exist, the tag that does) on the real registry."""
    repo = repo_name("team")
    push_image(registry_noauth, repo, "1.4.2")
    return f"{registry_noauth.host}/{repo}:1.4.3", f"{registry_noauth.host}/{repo}:1.4.2"


def test_a_pod_with_a_missing_tag_is_denied_with_the_four_answers_and_the_fix(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, existing = missing_tag
    body = review(pod("web", "shop", [missing]), uid="uid-missing-tag")

    response = _response(webhook.review(body), "uid-missing-tag")

    assert response["allowed"] is False
    status = response["status"]
    assert (status["code"], status["reason"]) == (403, "Forbidden")
    message = status["message"]
    assert message.startswith("pullguard: 1 of 1 image of Pod shop/web will not pull")
    assert f"spec.containers[0].image {missing}: not-found" in message
    # the four answers, then the fix
    assert "exists: no" in message
    assert "visibility: " in message
    assert "identity: anonymous" in message
    assert "permitted: yes" in message
    assert f"Fix: use an existing tag, e.g. {existing}" in message
    verdict = _verdict(response)
    assert verdict["allowed"] is False
    assert verdict["images"] == [
        {
            "field": "spec.containers[0].image",
            "identity": "anonymous",
            "outcome": "not-found",
            "reference": missing,
        }
    ]
    assert response["auditAnnotations"]["mode"] == "enforce"


def test_the_same_pod_in_warn_mode_is_allowed_with_one_short_warning(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth, mode="warn"))
    missing, _ = missing_tag

    response = _response(webhook.review(review(pod("web", "shop", [missing]))))

    assert response["allowed"] is True
    assert "status" not in response
    assert response["warnings"] == [clip(f"pullguard: c0 {missing}: not-found (did you mean 1.4.2?)")]
    assert all(len(w) <= 120 for w in response["warnings"])
    assert _verdict(response)["images"][0]["outcome"] == "not-found"


def test_audit_mode_allows_and_only_annotates(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth, mode="audit"))
    missing, _ = missing_tag

    response = _response(webhook.review(review(pod("web", "shop", [missing]))))

    assert response["allowed"] is True
    assert "warnings" not in response and "status" not in response
    assert response["auditAnnotations"]["mode"] == "audit"
    assert _verdict(response)["allowed"] is False


def test_a_pullable_pod_is_allowed_silently_with_its_verdict_annotated(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    _, existing = missing_tag

    response = _response(webhook.review(review(pod("web", "shop", [existing]))))

    assert response["allowed"] is True
    assert "warnings" not in response
    assert _verdict(response)["images"][0]["outcome"] == "pullable"


#: kind -> the field path of its first container's image
WORKLOADS = {
    "Deployment": "spec.template.spec.containers[0].image",
    "StatefulSet": "spec.template.spec.containers[0].image",
    "DaemonSet": "spec.template.spec.containers[0].image",
    "ReplicaSet": "spec.template.spec.containers[0].image",
    "ReplicationController": "spec.template.spec.containers[0].image",
    "Job": "spec.template.spec.containers[0].image",
    "CronJob": "spec.jobTemplate.spec.template.spec.containers[0].image",
    "PodTemplate": "template.spec.containers[0].image",
}


def _workload(kind: str, image: str) -> dict[str, Any]:
    spec = {"containers": [{"name": "app", "image": image}]}
    template = {"metadata": {"labels": {"app": "x"}}, "spec": spec}
    meta = {"name": "x", "namespace": "shop"}
    api = {"Job": "batch/v1", "CronJob": "batch/v1", "ReplicationController": "v1", "PodTemplate": "v1"}
    obj: dict[str, Any] = {"apiVersion": api.get(kind, "apps/v1"), "kind": kind, "metadata": meta}
    if kind == "CronJob":
        obj["spec"] = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "PodTemplate":
        obj["template"] = template
    else:
        obj["spec"] = {"selector": {"matchLabels": {"app": "x"}}, "template": template}
    return obj


@pytest.mark.parametrize(("kind", "field"), [pytest.param(k, f, id=k) for k, f in WORKLOADS.items()])
def test_every_workload_kind_is_denied_naming_its_image_field(
    start_webhook: StartWebhook,
    registry_noauth: RegistryProcess,
    missing_tag: tuple[str, str],
    kind: str,
    field: str,
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, _ = missing_tag

    response = _response(webhook.review(review(_workload(kind, missing))))

    assert response["allowed"] is False
    assert f"- {field} {missing}: not-found" in response["status"]["message"]


def test_init_containers_and_image_volumes_are_checked_too(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, existing = missing_tag
    obj = pod("web", "shop", [existing], init_images=[missing])
    obj["spec"]["volumes"] = [
        {"name": "models", "image": {"reference": missing, "pullPolicy": "IfNotPresent"}}
    ]

    message = _response(webhook.review(review(obj)))["status"]["message"]

    assert message.startswith("pullguard: 2 of 3 images of Pod shop/web will not pull")
    assert f"- spec.initContainers[0].image {missing}: not-found" in message
    assert f"- spec.volumes[0].image.reference {missing}: not-found" in message


@pytest.mark.parametrize(
    ("config", "namespace", "expected"),
    [
        pytest.param({}, "kube-system", "namespace kube-system is exempt", id="default-exempt-namespace"),
        pytest.param(
            {"exemptNamespaces": ["sandbox"]}, "sandbox", "namespace sandbox is exempt", id="configured"
        ),
    ],
)
def test_exempt_namespaces_are_allowed_without_a_check(
    start_webhook: StartWebhook,
    registry_noauth: RegistryProcess,
    missing_tag: tuple[str, str],
    config: dict[str, Any],
    namespace: str,
    expected: str,
) -> None:
    webhook = start_webhook(loopback(registry_noauth, **config))
    missing, _ = missing_tag

    response = _response(webhook.review(review(pod("web", namespace, [missing]))))

    assert response["allowed"] is True
    assert _verdict(response) == {"allowed": True, "exempt": expected}


def test_exempt_images_are_skipped_and_the_rest_still_checked(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    missing, _ = missing_tag  # without the exemption this tag would deny
    other = f"{registry_noauth.host}/elsewhere/app:1.0"
    webhook = start_webhook(loopback(registry_noauth, exemptImages=[f"{registry_noauth.host}/team/*"]))

    response = _response(webhook.review(review(pod("web", "shop", [missing, other]))))

    assert response["allowed"] is False
    assert [i["outcome"] for i in _verdict(response)["images"]] == ["skipped", "not-found"]
    assert f"- spec.containers[1].image {other}: not-found" in response["status"]["message"]
    assert "containers[0]" not in response["status"]["message"]


# -- UPDATE ---------------------------------------------------------------------------------------


def test_on_update_an_unchanged_broken_image_only_warns(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, _ = missing_tag
    old = deployment("web", "shop", [missing])
    new = deployment("web", "shop", [missing])
    new["spec"]["replicas"] = 5

    response = _response(webhook.review(review(new, operation="UPDATE", old=old)))

    assert response["allowed"] is True
    assert response["warnings"] == [clip(f"pullguard: c0 {missing}: not-found (did you mean 1.4.2?)"), NO_SA]
    (image,) = _verdict(response)["images"]
    assert (image["outcome"], image["changed"]) == ("not-found", False)


def test_on_update_a_changed_image_denies_and_the_unchanged_one_warns(
    start_webhook: StartWebhook,
    registry_noauth: RegistryProcess,
    missing_tag: tuple[str, str],
    repo_name: Callable[[str], str],
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, _ = missing_tag
    other = f"{registry_noauth.host}/{repo_name('team')}:2.0"  # a repository that does not exist
    old = deployment("web", "shop", [missing])
    new = deployment("web", "shop", [missing, other])

    response = _response(webhook.review(review(new, operation="UPDATE", old=old)))

    assert response["allowed"] is False
    message = response["status"]["message"]
    assert f"spec.template.spec.containers[1].image {other}: not-found" in message
    assert "containers[0]" not in message
    assert response["warnings"] == [clip(f"pullguard: c0 {missing}: not-found (did you mean 1.4.2?)"), NO_SA]


def test_on_update_changing_the_pull_secrets_makes_every_image_count_as_changed(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, _ = missing_tag
    old = deployment("web", "shop", [missing])
    new = deployment("web", "shop", [missing], pull_secrets=["regcred"])

    response = _response(webhook.review(review(new, operation="UPDATE", old=old)))

    assert response["allowed"] is False
    assert f"spec.template.spec.containers[0].image {missing}: not-found" in response["status"]["message"]


def test_an_ephemeral_container_added_by_kubectl_debug_is_checked_alone(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, existing = missing_tag
    old = pod("web", "shop", [existing])
    new = pod("web", "shop", [existing])
    new["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": missing}]

    body = review(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    response = _response(webhook.review(body))

    assert response["allowed"] is False
    message = response["status"]["message"]
    assert message.startswith("pullguard: 1 of 2 images of Pod shop/web will not pull")
    assert f"- spec.ephemeralContainers[0].image {missing}: not-found" in message


def test_a_dry_run_is_answered_exactly_like_a_real_request(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, missing_tag: tuple[str, str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, _ = missing_tag
    obj = pod("web", "shop", [missing])

    real = _response(webhook.review(review(obj, uid="same")))
    dry = _response(webhook.review(review(obj, uid="same", dry_run=True)))

    assert dry == real
    assert dry["allowed"] is False


@pytest.mark.parametrize(
    ("operation", "sub_resource", "reason"),
    [
        pytest.param("DELETE", None, "DELETE has no images to pull", id="delete"),
        pytest.param("CONNECT", None, "CONNECT has no images to pull", id="connect"),
        pytest.param(
            "UPDATE", "status", "subresource Pod/status has no images to pull", id="status-subresource"
        ),
    ],
)
def test_requests_without_images_to_pull_are_allowed_and_say_why(
    start_webhook: StartWebhook,
    registry_noauth: RegistryProcess,
    missing_tag: tuple[str, str],
    operation: str,
    sub_resource: str | None,
    reason: str,
) -> None:
    webhook = start_webhook(loopback(registry_noauth))
    missing, _ = missing_tag
    obj = pod("web", "shop", [missing])
    body = review(obj, operation=operation, old=obj, sub_resource=sub_resource)
    if operation == "DELETE":
        body["request"]["object"] = None

    response = _response(webhook.review(body))

    assert response["allowed"] is True
    assert _verdict(response) == {"allowed": True, "skipped": reason}


# -- unknown ----------------------------------------------------------------------------------------

UNREACHABLE = "127.0.0.1:9/team/app:1.0"  # the discard port: nothing listens, the connection is refused


@pytest.mark.parametrize(
    ("on_unknown", "allowed"),
    [
        pytest.param("warn", True, id="warn"),
        pytest.param("allow", True, id="allow"),
        pytest.param("deny", False, id="deny"),
    ],
)
def test_an_unreachable_registry_follows_on_unknown(
    start_webhook: StartWebhook, on_unknown: str, allowed: bool
) -> None:
    config = {"network": {"allowLoopback": True, "plainHttp": ["127.0.0.1:9"]}, "onUnknown": on_unknown}
    webhook = start_webhook(config)

    response = _response(webhook.review(review(pod("web", "shop", [UNREACHABLE]))))

    assert response["allowed"] is allowed
    assert _verdict(response)["images"][0]["outcome"] == "unreachable"
    if on_unknown == "warn":
        assert response["warnings"] == [f"pullguard: c0 {UNREACHABLE}: unreachable as anonymous"]
    if on_unknown == "allow":
        assert "warnings" not in response
    if on_unknown == "deny":
        assert f"spec.containers[0].image {UNREACHABLE}: unreachable" in response["status"]["message"]


def test_warnings_stay_within_120_characters_and_their_number_is_bounded(
    start_webhook: StartWebhook, registry_noauth: RegistryProcess, repo_name: Callable[[str], str]
) -> None:
    webhook = start_webhook(loopback(registry_noauth, mode="warn"))
    long_repo = repo_name("team") + "/" + "deep-path-segment/" * 8 + "app"
    images = [f"{registry_noauth.host}/{long_repo}:{i}" for i in range(40)]

    response = _response(webhook.review(review(pod("web", "shop", images))))

    warnings = response["warnings"]
    assert len(warnings) == 30
    assert all(len(w) <= 120 for w in warnings)
    assert warnings[-1] == "pullguard: 11 more warnings; see the audit annotation"
    assert warnings[0].endswith("…")
