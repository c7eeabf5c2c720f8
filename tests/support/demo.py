"""The demo: one manifest file with a dozen workloads that cover what goes wrong with pulls.

Seeded into the session's real registries (htpasswd and token) and checked with
``pullguard check`` by tests/test_cli_online.py and by bench/check_demo.py, so the test asserts
exactly what the benchmark measures. ``EXPECTED`` is the outcome of every image, by object and
field — what a person reading the file would predict from kubelet's rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.infra.fixtures import ALICE, BOB
from tests.infra.images import push_image, push_index
from tests.infra.registry import RegistryProcess
from tests.support.cli import dockerconfigjson_secret, manifests, pull_secret, registry_config
from tests.support.reviews import pod_spec

NAMESPACE = "shop"
WRONG = "s3cret-OLD"

#: (kind, name, field) -> outcome
EXPECTED: dict[tuple[str, str, str], str] = {
    ("Deployment", "web", "spec.template.spec.containers[0].image"): "pullable",
    ("Deployment", "api", "spec.template.spec.containers[0].image"): "pullable",
    ("Deployment", "api-nosecret", "spec.template.spec.containers[0].image"): "unauthorized",
    ("Deployment", "billing", "spec.template.spec.containers[0].image"): "unauthorized",
    ("Deployment", "web-stale-secret", "spec.template.spec.containers[0].image"): "unauthorized",
    ("Deployment", "api-typo", "spec.template.spec.containers[0].image"): "not-found",
    ("Deployment", "api-pinned", "spec.template.spec.containers[0].image"): "pullable",
    ("DaemonSet", "arm-tool", "spec.template.spec.containers[0].image"): "platform-mismatch",
    ("Job", "migrate", "spec.template.spec.initContainers[0].image"): "pullable",
    ("Job", "migrate", "spec.template.spec.initContainers[1].image"): "not-found",
    ("Job", "migrate", "spec.template.spec.containers[0].image"): "pullable",
    ("StatefulSet", "api-via-sa", "spec.template.spec.containers[0].image"): "pullable",
    ("Pod", "broken-secret", "spec.containers[0].image"): "secret-malformed",
    ("CronJob", "billing-report", "spec.jobTemplate.spec.template.spec.containers[0].image"): "forbidden",
}


@dataclass(frozen=True)
class Demo:
    manifest: Path
    config: Path
    images: int  # distinct image references in the file


def _template(
    images: list[str], secrets: list[str], sa: str | None = None, init: tuple[str, ...] = ()
) -> Any:
    spec = pod_spec(images, pull_secrets=secrets, service_account=sa, init_images=init)
    return {"metadata": {"labels": {"app": "demo"}}, "spec": spec}


def _workload(kind: str, name: str, template: Any) -> dict[str, Any]:
    api = {"Job": "batch/v1", "CronJob": "batch/v1"}.get(kind, "apps/v1")
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "demo"}}, "template": template}
    if kind == "Job":
        spec = {"template": template}
    if kind == "CronJob":
        spec = {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def _malformed_secret(name: str, server: str) -> dict[str, Any]:
    # ``auth`` is not base64: the API server accepts it (valid JSON), kubelet cannot decode it.
    return dockerconfigjson_secret(name, NAMESPACE, {server: {"auth": "not base64 at all!"}})


def build_demo(directory: Path, basic: RegistryProcess, token: RegistryProcess, suffix: str) -> Demo:
    """Seed both registries (repositories named with ``suffix``) and write the manifest and config."""
    b, t = basic.host, token.host
    api = f"team/api-{suffix}"
    api21 = push_index(basic, api, "2.1")
    push_image(basic, api, "2.0")
    push_image(basic, api, "1.9")
    push_index(token, f"public/web-{suffix}", "1.0")
    push_index(token, f"public/arm-tool-{suffix}", "1.0", (("linux", "arm64", "v8"),))
    push_image(token, f"public/migrate-{suffix}", "0.9")
    push_image(token, f"team/billing-{suffix}", "3.0")

    web = f"{t}/public/web-{suffix}:1.0"
    api_ok = f"{b}/{api}:2.1"
    billing = f"{t}/team/billing-{suffix}:3.0"
    docs: list[dict[str, Any]] = [
        pull_secret("regcred-api", b, *ALICE, namespace=NAMESPACE),
        pull_secret("regcred-billing", t, ALICE[0], WRONG, namespace=NAMESPACE),
        pull_secret("regcred-stale", t, ALICE[0], WRONG, namespace=NAMESPACE),
        pull_secret("regcred-bob", t, *BOB, namespace=NAMESPACE),
        _malformed_secret("regcred-broken", t),
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "puller", "namespace": NAMESPACE},
            "imagePullSecrets": [{"name": "regcred-api"}],
        },
        _workload("Deployment", "web", _template([web], [])),
        _workload("Deployment", "api", _template([api_ok], ["regcred-api"])),
        _workload("Deployment", "api-nosecret", _template([api_ok], [])),
        _workload("Deployment", "billing", _template([billing], ["regcred-billing"])),
        _workload("Deployment", "web-stale-secret", _template([web], ["regcred-stale"])),
        _workload("Deployment", "api-typo", _template([f"{b}/{api}:2.2"], ["regcred-api"])),
        _workload("Deployment", "api-pinned", _template([f"{b}/{api}@{api21.digest}"], ["regcred-api"])),
        _workload("DaemonSet", "arm-tool", _template([f"{t}/public/arm-tool-{suffix}:1.0"], [])),
        _workload(
            "Job",
            "migrate",
            _template(
                [api_ok],
                ["regcred-api"],
                init=(f"{t}/public/migrate-{suffix}:0.9", f"{t}/public/migrate-{suffix}:1.0"),
            ),
        ),
        _workload("StatefulSet", "api-via-sa", _template([api_ok], [], sa="puller")),
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "broken-secret", "namespace": NAMESPACE},
            "spec": {
                "containers": [{"name": "c0", "image": web}],
                "imagePullSecrets": [{"name": "regcred-broken"}],
            },
        },
        _workload("CronJob", "billing-report", _template([billing], ["regcred-bob"])),
    ]
    manifest = directory / "demo.yaml"
    manifest.write_text(manifests(*docs))
    config = directory / "pullguard.yaml"
    config.write_text(json.dumps(registry_config(basic, token, cluster={"platforms": ["linux/amd64"]})))
    distinct = {
        c["image"]
        for d in docs
        if d["kind"] not in ("Secret", "ServiceAccount")
        for spec in [_pod_spec(d)]
        for c in spec.get("containers", []) + spec.get("initContainers", [])
    }
    return Demo(manifest, config, len(distinct))


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "Pod":
        return dict(doc["spec"])
    if doc["kind"] == "CronJob":
        return dict(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(doc["spec"]["template"]["spec"])
