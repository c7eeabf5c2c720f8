"""Every image of every workload kind is found, with the exact field path a user would type."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core.errors import InputError
from webhook.core.workloads import extract

POD_SPEC: dict[str, Any] = {
    "serviceAccountName": "builder",
    "imagePullSecrets": [{"name": "regcred"}, {"name": ""}],
    "nodeSelector": {"kubernetes.io/arch": "arm64"},
    "initContainers": [{"name": "init", "image": "busybox:1.36"}],
    "containers": [
        {"name": "app", "image": "ghcr.io/acme/api:1.4.2", "imagePullPolicy": "Always"},
        {"name": "side", "image": "nginx"},
    ],
    "ephemeralContainers": [{"name": "debug", "image": "ghcr.io/acme/debug@sha256:" + "a" * 64}],
    "volumes": [
        {"name": "models", "image": {"reference": "quay.io/acme/models:v2", "pullPolicy": "IfNotPresent"}},
        {"name": "cache", "emptyDir": {}},
    ],
}


def _wrap(kind: str) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}
    body: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "w", "namespace": "shop"}}
    if kind == "Pod":
        body["metadata"]["labels"] = {"app": "web"}
        body["spec"] = POD_SPEC
    elif kind == "CronJob":
        body["spec"] = {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}
    elif kind == "PodTemplate":
        body["template"] = template
    else:
        body["spec"] = {"template": template}
    return body


@pytest.mark.parametrize(
    ("kind", "base"),
    [
        pytest.param("Pod", "spec", id="pod"),
        pytest.param("Deployment", "spec.template.spec", id="deployment"),
        pytest.param("StatefulSet", "spec.template.spec", id="statefulset"),
        pytest.param("DaemonSet", "spec.template.spec", id="daemonset"),
        pytest.param("ReplicaSet", "spec.template.spec", id="replicaset"),
        pytest.param("ReplicationController", "spec.template.spec", id="replicationcontroller"),
        pytest.param("Job", "spec.template.spec", id="job"),
        pytest.param("CronJob", "spec.jobTemplate.spec.template.spec", id="cronjob"),
        pytest.param("PodTemplate", "template.spec", id="podtemplate"),
        pytest.param("Rollout", "spec.template.spec", id="unknown-kind-with-pod-template"),
    ],
)
def test_every_image_of_every_kind_with_its_field_path(kind: str, base: str) -> None:
    t = extract(_wrap(kind), "default", "f.yaml#1")
    assert t is not None
    assert [(s.field, s.image, s.kind, s.container) for s in t.images] == [
        (f"{base}.containers[0].image", "ghcr.io/acme/api:1.4.2", "container", "app"),
        (f"{base}.containers[1].image", "nginx", "container", "side"),
        (f"{base}.initContainers[0].image", "busybox:1.36", "initContainer", "init"),
        (
            f"{base}.ephemeralContainers[0].image",
            "ghcr.io/acme/debug@sha256:" + "a" * 64,
            "ephemeralContainer",
            "debug",
        ),
        (f"{base}.volumes[0].image.reference", "quay.io/acme/models:v2", "imageVolume", "models"),
    ]
    assert [(r.name, r.field) for r in t.pull_secrets] == [
        ("regcred", f"{base}.imagePullSecrets[0]"),
        ("", f"{base}.imagePullSecrets[1]"),
    ]
    assert t.service_account == "builder"
    assert t.node_selector == {"kubernetes.io/arch": "arm64"}
    assert t.pod_labels == {"app": "web"}
    assert t.is_pod == (kind == "Pod")
    assert t.object.namespace == "shop"
    assert t.object.source == "f.yaml#1"


@pytest.mark.parametrize("kind", ["Service", "Secret", "ConfigMap", "ServiceAccount", "Namespace"])
def test_non_workloads_are_not_checked(kind: str) -> None:
    assert extract({"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}}, "default") is None


def test_service_account_defaults_and_deprecated_alias() -> None:
    body = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}}
    t = extract(body, "team")
    assert t is not None
    assert (t.service_account, t.object.namespace) == ("default", "team")
    body["spec"]["serviceAccount"] = "legacy"
    t = extract(body, "team")
    assert t is not None
    assert (t.service_account, t.service_account_field) == ("legacy", "spec.serviceAccount")


def test_missing_image_is_an_error_finding_naming_the_field() -> None:
    body = {
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "a"}]}}},
    }
    t = extract(body, "default")
    assert t is not None
    assert t.images == ()
    assert [(f.code, f.field, f.severity) for f in t.findings] == [
        ("image-missing", "spec.template.spec.containers[0].image", "error")
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"containers": "nginx"}, "spec.containers", id="containers-not-a-list"),
        pytest.param(
            {"containers": [{"name": "a", "image": 5}]}, "spec.containers[0].image", id="image-not-a-string"
        ),
        pytest.param(
            {"containers": [{"image": "a"}], "imagePullSecrets": ["regcred"]},
            "spec.imagePullSecrets[0]",
            id="pull-secret-not-an-object",
        ),
        pytest.param(
            {"containers": [], "volumes": [{"name": "v", "image": "x"}]},
            "spec.volumes[0].image",
            id="image-volume-not-an-object",
        ),
        pytest.param(
            {"containers": [], "nodeSelector": {"a": 1}}, 'spec.nodeSelector["a"]', id="selector-not-strings"
        ),
        pytest.param(
            {"containers": [], "volumes": [{"name": "v", "image": {"reference": 3}}]},
            "spec.volumes[0].image.reference",
            id="image-volume-reference-not-a-string",
        ),
        pytest.param(
            {
                "containers": [],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": "x"}
                    }
                },
            },
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms",
            id="node-selector-terms-not-a-list",
        ),
        pytest.param(
            {
                "containers": [],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "a", "operator": "In", "values": [1]}]}
                            ]
                        }
                    }
                },
            },
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0].values[0]",
            id="affinity-value-not-a-string",
        ),
        pytest.param(
            {"containers": [], "tolerations": [{"key": 1}]}, "spec.tolerations[0].key", id="toleration-key"
        ),
    ],
)
def test_malformed_objects_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InputError) as err:
        extract({"kind": "Pod", "metadata": {"name": "p"}, "spec": spec}, "default")
    assert err.value.field == field
    assert field in err.value.message


def test_a_name_that_is_not_a_string_is_named() -> None:
    with pytest.raises(InputError) as err:
        extract({"kind": "Pod", "metadata": {"name": 5}, "spec": {"containers": []}}, "default")
    assert err.value.field == "metadata.name"


def test_missing_spec_is_named() -> None:
    with pytest.raises(InputError) as err:
        extract({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {}}, "default")
    assert err.value.field == "spec.template"


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        pytest.param(
            {"kind": "Pod", "metadata": {"name": "p", "labels": []}, "spec": {"containers": []}},
            "metadata.labels",
            id="pod-labels-not-an-object",
        ),
        pytest.param(
            {
                "kind": "Deployment",
                "metadata": {"name": "d"},
                "spec": {"template": {"metadata": {"labels": {"a": 1}}, "spec": {"containers": []}}},
            },
            'spec.template.metadata.labels["a"]',
            id="template-label-not-a-string",
        ),
        pytest.param(
            {
                "kind": "CronJob",
                "metadata": {"name": "c"},
                "spec": {"jobTemplate": {"spec": {"template": {"metadata": 5, "spec": {"containers": []}}}}},
            },
            "spec.jobTemplate.spec.template.metadata",
            id="template-metadata-not-an-object",
        ),
    ],
)
def test_malformed_pod_labels_name_their_full_path(obj: dict[str, Any], field: str) -> None:
    """Found by the fuzzer: the field used to be just "labels", and a non-object metadata passed."""
    with pytest.raises(InputError) as err:
        extract(obj, "default")
    assert err.value.field == field
    assert field in err.value.message
