"""The pure AdmissionReview core: ?timeout= durations, modes, budgets, what counts as changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.reviews import deployment, pod
from webhook.core.admission import BadReview, parse_review, parse_timeout, resolve_mode, unchanged_fields
from webhook.review import budget


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # what the API server sends: a Go time.Duration (webhook timeoutSeconds, or what is left of it)
        pytest.param("10s", 10.0, id="seconds"),
        pytest.param("30s", 30.0, id="max-webhook-timeout"),
        pytest.param("1m0s", 60.0, id="go-minutes-form"),
        pytest.param("9.5s", 9.5, id="fraction"),
        pytest.param("500ms", 0.5, id="milliseconds"),
        pytest.param("1h2m3.5s", 3723.5, id="compound"),
        pytest.param("1500us", 0.0015, id="microseconds"),
        pytest.param("0", 0.0, id="zero"),
        # unreadable: the configured deadline applies
        pytest.param(None, None, id="absent"),
        pytest.param("", None, id="empty"),
        pytest.param("10", None, id="no-unit"),
        pytest.param("-1s", None, id="negative"),
        pytest.param("1.5.5s", None, id="two-dots"),
        pytest.param("soon", None, id="words"),
        pytest.param("10s ", None, id="trailing-space"),
        pytest.param("1" * 50 + "s", None, id="too-long"),
    ],
)
def test_the_timeout_parameter_is_read_as_a_go_duration(text: str | None, seconds: float | None) -> None:
    assert parse_timeout(text) == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("deadline", "timeout", "hard", "engine"),
    [
        pytest.param(8.0, None, 9.0, 8.0, id="no-timeout-configured-deadline"),
        pytest.param(8.0, "10s", 9.0, 8.0, id="deadline-shorter-than-timeout"),
        pytest.param(8.0, "2s", 1.8, 1.65, id="timeout-shorter-than-deadline"),
        pytest.param(8.0, "30s", 27.0, 8.0, id="long-timeout"),
        pytest.param(8.0, "100ms", 0.05, 0.0, id="tiny-timeout"),
    ],
)
def test_the_budget_ends_before_the_api_server_gives_up(
    deadline: float, timeout: str | None, hard: float, engine: float
) -> None:
    b = budget(deadline, timeout)
    assert (b.hard, b.engine) == (pytest.approx(hard), pytest.approx(engine))


@pytest.mark.parametrize(
    ("labels", "mode", "note"),
    [
        pytest.param(None, "enforce", None, id="no-labels"),
        pytest.param({"team": "a"}, "enforce", None, id="no-mode-label"),
        pytest.param({"pullguard.io/mode": "warn"}, "warn", None, id="warn"),
        pytest.param({"pullguard.io/mode": " Audit "}, "audit", None, id="case-and-space"),
        pytest.param(
            {"pullguard.io/mode": "off"},
            "enforce",
            "namespace label pullguard.io/mode='off' is not enforce, warn or audit; using enforce",
            id="unknown-value",
        ),
    ],
)
def test_the_namespace_label_picks_the_mode(
    labels: dict[str, str] | None, mode: str, note: str | None
) -> None:
    assert resolve_mode("enforce", labels) == (mode, note)


def _review(request: dict[str, Any]) -> bytes:
    return json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()


def test_a_review_is_read_with_its_defaults() -> None:
    obj = pod("web", "shop", ["nginx"])
    del obj["kind"], obj["apiVersion"]  # filled in from request.kind
    parsed = parse_review(
        _review(
            {
                "uid": "u",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE",
                "namespace": "shop",
                "object": obj,
            }
        )
    )
    assert not isinstance(parsed, BadReview)
    assert (parsed.uid, parsed.kind, parsed.operation, parsed.sub_resource, parsed.dry_run) == (
        "u",
        "Pod",
        "CREATE",
        "",
        False,
    )
    assert parsed.object is not None
    assert (parsed.object["kind"], parsed.object["apiVersion"]) == ("Pod", "v1")


@pytest.mark.parametrize(
    ("change", "unchanged"),
    [
        pytest.param(
            lambda d: d["spec"].update(replicas=9),
            {"spec.template.spec.containers[0].image", "spec.template.spec.containers[1].image"},
            id="scale",
        ),
        pytest.param(
            lambda d: d["spec"]["template"]["spec"]["containers"].reverse(),
            {"spec.template.spec.containers[0].image", "spec.template.spec.containers[1].image"},
            id="reordered-containers-keep-their-images",
        ),
        pytest.param(
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="nginx:2"),
            {"spec.template.spec.containers[1].image"},
            id="one-image-changed",
        ),
        pytest.param(
            lambda d: d["spec"]["template"]["spec"].update(imagePullSecrets=[{"name": "new"}]),
            set(),
            id="pull-secrets-changed",
        ),
        pytest.param(
            lambda d: d["spec"]["template"]["spec"].update(serviceAccountName="other"),
            set(),
            id="service-account-changed",
        ),
        pytest.param(
            lambda d: d["spec"]["template"]["spec"].update(nodeSelector={"kubernetes.io/arch": "arm64"}),
            set(),
            id="placement-changed",
        ),
    ],
)
def test_an_image_is_unchanged_only_under_the_same_pull_identity(change: Any, unchanged: set[str]) -> None:
    old = deployment("web", "shop", ["nginx:1", "redis:7"])
    new = deployment("web", "shop", ["nginx:1", "redis:7"])
    change(new)
    assert unchanged_fields("u", new, old, "shop") == frozenset(unchanged)


def test_an_unreadable_old_object_names_its_field() -> None:
    old = {"kind": "Pod", "spec": {"containers": "nope"}}
    result = unchanged_fields("u", pod("web", "shop", ["nginx"]), old, "shop")
    assert result == BadReview(
        "u", "request.oldObject.spec.containers", "request.oldObject.spec.containers must be a list"
    )
