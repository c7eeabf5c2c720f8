"""The plan kubelet follows: which credentials, in which order, for each image (DESIGN 3.3–3.6)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from webhook.core.dockercfg import AuthEntry
from webhook.core.identity import (
    DEFAULT_PROVIDERS,
    ClusterView,
    NodeDockerConfig,
    PodPlan,
    SecretResult,
    Unavailable,
    plan_pod,
)
from webhook.core.nodes import FargateSelector, NodeGroup, NodeIdentity, Taint
from webhook.core.objects import SecretObject, ServiceAccountObject
from webhook.core.platforms import parse_platform
from webhook.core.redact import Secret
from webhook.core.workloads import extract

AMD = NodeGroup(None, parse_platform("linux/amd64"))
ROLE = "arn:aws:iam::111122223333:role/ng-amd"


def dockerconfig(namespace: str, name: str, auths: dict[str, tuple[str, str]]) -> SecretObject:
    doc = {
        "auths": {k: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for k, (u, p) in auths.items()}
    }
    return SecretObject(
        namespace, name, "kubernetes.io/dockerconfigjson", {".dockerconfigjson": json.dumps(doc).encode()}
    )


def workload(kind: str, images: list[str], secrets: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": im} for i, im in enumerate(images)],
        **spec,
    }
    if secrets is not None:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in secrets]
    meta = {"name": "w", "namespace": "shop"}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": {"template": {"spec": pod_spec}}}


def plan(
    obj: dict[str, Any], secrets: dict[str, SecretResult] | None = None, account: Any = None, **view: Any
) -> PodPlan:
    t = extract(obj, "default")
    assert t is not None
    cluster = ClusterView(groups=view.pop("groups", (AMD,)), **view)
    return plan_pod(t, cluster, secrets or {}, account)


def attempts(p: PodPlan, image: int = 0, group: int = 0) -> list[tuple[str, str | None, str | None]]:
    return [
        (a.identity.kind, a.identity.name, a.identity.key) for a in p.images[image].groups[group].attempts
    ]


def test_template_without_pull_secrets_uses_its_service_accounts() -> None:
    sa = ServiceAccountObject("shop", "default", ("ghcr-read",))
    p = plan(
        workload("Deployment", ["ghcr.io/acme/api:1"]),
        {"ghcr-read": dockerconfig("shop", "ghcr-read", {"ghcr.io": ("bot", "x")})},
        sa,
    )
    assert attempts(p) == [("pull-secret", "shop/ghcr-read", "ghcr.io")]
    assert p.images[0].groups[0].attempts[0].identity.username == "bot"


def test_pod_with_its_own_secrets_ignores_the_service_accounts() -> None:
    sa = ServiceAccountObject("shop", "default", ("ghcr-read",))
    secrets = {
        "ghcr-read": dockerconfig("shop", "ghcr-read", {"ghcr.io": ("bot", "x")}),
        "own": dockerconfig("shop", "own", {"ghcr.io": ("me", "y")}),
    }
    p = plan(workload("Pod", ["ghcr.io/acme/api:1"], ["own"]), secrets, sa)
    assert attempts(p) == [("pull-secret", "shop/own", "ghcr.io")]


def test_admitted_pod_is_taken_as_merged_by_the_api_server() -> None:
    sa = ServiceAccountObject("shop", "default", ("ghcr-read",))
    secrets = {"ghcr-read": dockerconfig("shop", "ghcr-read", {"ghcr.io": ("bot", "x")})}
    p = plan(workload("Pod", ["ghcr.io/acme/api:1"]), secrets, sa, pods_admitted=True)
    assert attempts(p) == [("anonymous", None, None)]


def test_missing_and_unreadable_secrets_are_skipped_with_findings() -> None:
    secrets: dict[str, SecretResult] = {
        "gone": None,
        "locked": Unavailable("forbidden by RBAC"),
        "ok": dockerconfig("shop", "ok", {"ghcr.io": ("u", "p")}),
    }
    p = plan(workload("Pod", ["ghcr.io/a/b"], ["gone", "locked", "ok"]), secrets)
    assert attempts(p) == [("pull-secret", "shop/ok", "ghcr.io")]
    assert [(f.code, f.field) for f in p.findings] == [
        ("secret-missing", "spec.imagePullSecrets[0]"),
        ("secret-unreadable", "spec.imagePullSecrets[1]"),
    ]
    assert "secret shop/gone does not exist; kubelet skips it" in p.findings[0].message


def test_one_malformed_secret_aborts_every_image_even_public_ones() -> None:
    bad = SecretObject(
        "shop",
        "regcred",
        "kubernetes.io/dockerconfigjson",
        {".dockerconfigjson": b'{"auths":{"ghcr.io":{"auth":"%%%"}}}'},
    )
    p = plan(workload("Pod", ["nginx", "quay.io/x/y:1"], ["regcred"]), {"regcred": bad})
    assert [i.certain for i in p.images] == ["secret-malformed", "secret-malformed"]
    assert p.images[0].problem is not None
    assert p.images[0].problem.startswith('secret shop/regcred: .dockerconfigjson auths["ghcr.io"].auth')


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param(
            "https://index.docker.io/v1/",
            [("pull-secret", "shop/hub", "index.docker.io")],
            id="docker-login-key-fallback",
        ),
        pytest.param("docker.io", [("pull-secret", "shop/hub", "docker.io")], id="docker.io-direct"),
        pytest.param("*.docker.io", [("anonymous", None, None)], id="glob-never-matches-hub"),
        pytest.param("registry-1.docker.io", [("anonymous", None, None)], id="registry-1-is-dead"),
    ],
)
def test_docker_hub_keys(key: str, expected: list[tuple[str, str | None, str | None]]) -> None:
    p = plan(workload("Pod", ["nginx"], ["hub"]), {"hub": dockerconfig("shop", "hub", {key: ("u", "p")})})
    assert attempts(p) == expected


def test_order_is_secrets_then_node_config_then_providers_and_no_anonymous() -> None:
    node = NodeDockerConfig(
        "/var/lib/kubelet/config.json",
        (AuthEntry("123456789012.dkr.ecr.us-east-1.amazonaws.com", "AWS", Secret("t")),),
    )
    group = NodeGroup("ng-amd", parse_platform("linux/amd64"), identity=NodeIdentity("node-role", ROLE))
    secrets = {"s": dockerconfig("shop", "s", {"*.dkr.ecr.*.amazonaws.com": ("AWS", "old")})}
    p = plan(
        workload("Pod", ["123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1"], ["s"]),
        secrets,
        groups=(group,),
        node_docker_config=node,
        providers=DEFAULT_PROVIDERS,
    )
    assert attempts(p) == [
        ("pull-secret", "shop/s", "*.dkr.ecr.*.amazonaws.com"),
        (
            "node-docker-config",
            "/var/lib/kubelet/config.json",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        ),
        ("node-role", ROLE, "*.dkr.ecr.*.amazonaws.com"),
    ]
    assert p.images[0].groups[0].attempts[2].identity.node_group == "ng-amd"


def test_reverse_lexicographic_order_within_pull_secrets() -> None:
    secrets = {
        "a": dockerconfig("shop", "a", {"reg.example.com": ("ua", "p")}),
        "b": dockerconfig("shop", "b", {"*.example.com/team": ("ub", "p")}),
        "c": dockerconfig("shop", "c", {"reg.example.com/team": ("uc", "p")}),
    }
    p = plan(workload("Pod", ["reg.example.com/team/app"], ["a", "b", "c"]), secrets)
    assert [k for _, _, k in attempts(p)] == ["reg.example.com/team", "reg.example.com", "*.example.com/team"]


def test_fargate_pods_are_judged_by_the_profile_execution_role() -> None:
    fargate = NodeGroup(
        "fp-shop",
        parse_platform("linux/amd64"),
        identity=NodeIdentity("fargate-role", "arn:aws:iam::111122223333:role/fargate-exec"),
        fargate_selectors=(FargateSelector("shop", {}),),
    )
    nodes = NodeGroup("ng-amd", parse_platform("linux/amd64"), identity=NodeIdentity("node-role", ROLE))
    p = plan(workload("Pod", ["111122223333.dkr.ecr.us-east-1.amazonaws.com/app:1"]), groups=(nodes, fargate))
    assert attempts(p) == [
        ("fargate-role", "arn:aws:iam::111122223333:role/fargate-exec", "*.dkr.ecr.*.amazonaws.com")
    ]


def test_node_selector_narrows_groups_and_each_group_gets_its_own_attempts() -> None:
    amd = NodeGroup("ng-amd", parse_platform("linux/amd64"))
    arm = NodeGroup("ng-arm", parse_platform("linux/arm64"), taints=(Taint("arch", "arm", "NoSchedule"),))
    both = plan(
        workload("Pod", ["nginx"], tolerations=[{"key": "arch", "operator": "Exists"}]), groups=(amd, arm)
    )
    assert [g.group.name for g in both.images[0].groups] == ["ng-amd", "ng-arm"]
    assert [a.identity.node_group for g in both.images[0].groups for a in g.attempts] == ["ng-amd", "ng-arm"]
    untolerated = plan(workload("Pod", ["nginx"]), groups=(amd, arm))
    assert [g.group.name for g in untolerated.images[0].groups] == ["ng-amd"]
    pinned = plan(
        workload(
            "Pod",
            ["nginx"],
            nodeSelector={"kubernetes.io/arch": "arm64"},
            tolerations=[{"key": "arch", "value": "arm", "effect": "NoSchedule"}],
        ),
        groups=(amd, arm),
    )
    assert [g.group.name for g in pinned.images[0].groups] == ["ng-arm"]


def test_required_node_affinity_narrows_groups() -> None:
    amd = NodeGroup("ng-amd", parse_platform("linux/amd64"))
    arm = NodeGroup("ng-arm", parse_platform("linux/arm64"))
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["amd64"]}
                        ]
                    }
                ]
            }
        }
    }
    p = plan(workload("Pod", ["nginx"], affinity=affinity), groups=(amd, arm))
    assert [g.group.name for g in p.images[0].groups] == ["ng-arm"]


def test_unplaceable_pod_is_checked_everywhere_with_a_finding() -> None:
    amd = NodeGroup("ng-amd", parse_platform("linux/amd64"))
    p = plan(workload("Pod", ["nginx"], nodeSelector={"team": "x"}), groups=(amd,))
    assert [g.group.name for g in p.images[0].groups] == ["ng-amd"]
    assert [f.code for f in p.findings] == ["no-node-group"]


def test_exempt_images_are_skipped_and_invalid_references_are_certain() -> None:
    p = plan(
        workload("Pod", ["registry.k8s.io/pause:3.9", "Foo/Bar:1", "nginx"]),
        exempt_images=("registry.k8s.io/*",),
    )
    assert [i.certain for i in p.images] == ["skipped", "invalid-reference", None]
    assert p.images[1].problem is not None and "lower" in p.images[1].problem


def test_ecr_provider_does_not_run_on_gke_nodes() -> None:
    gke = NodeGroup(
        "pool-a",
        parse_platform("linux/amd64"),
        identity=NodeIdentity("node-service-account", "n@p.iam.gserviceaccount.com", ("cloud-platform",)),
    )
    p = plan(
        workload("Pod", ["123456789012.dkr.ecr.us-east-1.amazonaws.com/app", "us-docker.pkg.dev/p/r/i"]),
        groups=(gke,),
    )
    assert attempts(p, 0) == [("anonymous", None, None)]
    assert attempts(p, 1) == [("node-service-account", "n@p.iam.gserviceaccount.com", "*.pkg.dev")]
