"""AdmissionReviews as the API server sends them (admission.k8s.io/v1), built from a few facts."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

#: (group, version, resource) of every kind pullguard checks (webhook/core/workloads.py SPEC_PATHS).
GVK: dict[str, tuple[str, str, str]] = {
    "Pod": ("", "v1", "pods"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "ReplicationController": ("", "v1", "replicationcontrollers"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "PodTemplate": ("", "v1", "podtemplates"),
}


def pod_spec(
    images: Sequence[str],
    *,
    pull_secrets: Sequence[str] = (),
    service_account: str | None = None,
    init_images: Sequence[str] = (),
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]}
    if init_images:
        spec["initContainers"] = [{"name": f"init{i}", "image": img} for i, img in enumerate(init_images)]
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in pull_secrets]
    if service_account:
        spec["serviceAccountName"] = service_account
    return spec


def pod(name: str, namespace: str, images: Sequence[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": pod_spec(images, **spec),
    }


def deployment(name: str, namespace: str, images: Sequence[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec(images, **spec)},
        },
    }


def review(
    obj: Mapping[str, Any],
    *,
    operation: str = "CREATE",
    old: Mapping[str, Any] | None = None,
    sub_resource: str | None = None,
    dry_run: bool = False,
    uid: str | None = None,
) -> dict[str, Any]:
    kind = str(obj["kind"])
    group, version, resource = GVK[kind]
    meta = obj.get("metadata", {})
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": copy.deepcopy(dict(obj)),
        "oldObject": copy.deepcopy(dict(old)) if old is not None else None,
        "dryRun": dry_run,
        "options": {
            "apiVersion": "meta.k8s.io/v1",
            "kind": "CreateOptions" if operation == "CREATE" else "UpdateOptions",
        },
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
