"""The webhook reading a cluster: Secrets, ServiceAccounts, Namespace labels, Nodes — and failing well.

The cluster is ``tests/infra/fake_apiserver.py`` (no real API server can run here), reached by the
real ``kubernetes`` client through a kubeconfig, over HTTPS. Registries are the real
``docker-registry`` with htpasswd (alice / bob).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.infra.fake_apiserver import FakeApiServer
from tests.infra.fixtures import ALICE
from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.support.reviews import deployment, pod, review
from tests.webhook.conftest import StartWebhook, loopback
from webhook.core.admission import clip
from webhook.core.nodes import NodeIdentities, NodeIdentity, NodeObject


def _response(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["response"])


def _verdict(response: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(response["auditAnnotations"]["verdict"]))


@pytest.fixture
def private_image(registry_htpasswd: RegistryProcess, repo_name: Callable[[str], str]) -> str:
    repo = repo_name("team")
    push_image(registry_htpasswd, repo, "1.0", credentials=registry_htpasswd.push_credentials)
    return f"{registry_htpasswd.host}/{repo}:1.0"


@pytest.mark.parametrize(
    ("password", "allowed"),
    [
        pytest.param(ALICE[1], True, id="secret-works"),
        pytest.param("expired-token", False, id="secret-rejected"),
    ],
)
def test_a_deployment_relying_on_its_service_accounts_pull_secret(
    start_webhook: StartWebhook,
    fake_api: FakeApiServer,
    kubeconfig: Path,
    registry_htpasswd: RegistryProcess,
    private_image: str,
    namespace: str,
    password: str,
    allowed: bool,
) -> None:
    fake_api.add_namespace(namespace)
    fake_api.add_service_account(namespace, "builder", ["regcred"])
    fake_api.add_pull_secret(namespace, "regcred", registry_htpasswd.host, ALICE[0], password)
    webhook = start_webhook(loopback(registry_htpasswd), kubeconfig=kubeconfig)
    obj = deployment("web", namespace, [private_image], service_account="builder")
    before = len(fake_api.requests)

    response = _response(webhook.review(review(obj)))

    assert response["allowed"] is allowed
    image = _verdict(response)["images"][0]
    assert image["identity"] == f"pull-secret:{namespace}/regcred"
    if allowed:
        assert image["outcome"] == "pullable"
        assert "warnings" not in response
    else:
        assert image["outcome"] == "unauthorized"
        message = response["status"]["message"]
        assert f"identity: secret {namespace}/regcred (user alice)" in message
        assert "permitted: no (401" in message
        assert password not in message
    # Only the reviewed object's namespace was read (its labels, ServiceAccount, secret), and Nodes.
    reads = {seen.path for seen in fake_api.requests[before:]}
    assert reads == {
        f"/api/v1/namespaces/{namespace}",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/builder",
        f"/api/v1/namespaces/{namespace}/secrets/regcred",
        "/api/v1/nodes",
    }


def test_a_pod_names_a_secret_pullguard_may_not_read_and_is_told_so(
    start_webhook: StartWebhook,
    fake_api: FakeApiServer,
    kubeconfig: Path,
    registry_noauth: RegistryProcess,
    repo_name: Callable[[str], str],
    namespace: str,
) -> None:
    repo = repo_name("public")
    push_image(registry_noauth, repo, "1.0")
    fake_api.add_namespace(namespace)
    fake_api.forbid("secrets", namespace)
    webhook = start_webhook(loopback(registry_noauth), kubeconfig=kubeconfig)
    obj = pod("web", namespace, [f"{registry_noauth.host}/{repo}:1.0"], pull_secrets=["regcred"])

    response = _response(webhook.review(review(obj)))

    # kubelet skips a secret it cannot fetch and pulls anonymously: the public image still pulls.
    assert response["allowed"] is True
    assert _verdict(response)["findings"] == ["secret-unreadable"]
    assert response["warnings"] == [
        clip(
            f"pullguard: secret {namespace}/regcred could not be read (forbidden (403): pullguard may not "
            f'read secret "regcred" in namespace {namespace} (verb get, resource secrets)'
        )
    ]


def test_an_unreachable_api_server_becomes_findings_not_a_failed_admission(
    start_webhook: StartWebhook,
    kubeconfig: Path,
    registry_noauth: RegistryProcess,
    repo_name: Callable[[str], str],
    namespace: str,
) -> None:
    repo = repo_name("public")
    push_image(registry_noauth, repo, "1.0")
    webhook = start_webhook(loopback(registry_noauth), kubeconfig=kubeconfig, context="down")
    obj = deployment("web", namespace, [f"{registry_noauth.host}/{repo}:1.0"], pull_secrets=["regcred"])

    response = _response(webhook.review(review(obj)))

    assert response["allowed"] is True
    # nodes-unreadable is the cluster's problem: in the audit annotation and the log, not a warning
    assert _verdict(response)["findings"] == ["nodes-unreadable", "secret-unreadable"]
    unreachable = "the API server at https://127.0.0.1:9 is unreachable (connection refused)"
    assert response["warnings"] == [
        clip(f"pullguard: labels of namespace {namespace} unreadable ({unreachable}); mode enforce"),
        clip(
            f"pullguard: secret {namespace}/regcred could not be read ({unreachable}); planned as if kubelet"
        ),
    ]


@pytest.mark.parametrize(
    ("configured", "label", "allowed", "note"),
    [
        pytest.param("enforce", "warn", True, None, id="label-relaxes-enforce-to-warn"),
        pytest.param("warn", "enforce", False, None, id="label-tightens-warn-to-enforce"),
        pytest.param("enforce", "audit", True, None, id="label-audit"),
        pytest.param(
            "enforce",
            "yolo",
            False,
            "pullguard: namespace label pullguard.io/mode='yolo' is not enforce, warn or audit; "
            "using enforce",
            id="invalid-label-keeps-the-configured-mode",
        ),
    ],
)
def test_the_namespace_label_overrides_the_mode(
    start_webhook: StartWebhook,
    fake_api: FakeApiServer,
    kubeconfig: Path,
    registry_noauth: RegistryProcess,
    repo_name: Callable[[str], str],
    namespace: str,
    configured: str,
    label: str,
    allowed: bool,
    note: str | None,
) -> None:
    fake_api.add_namespace(namespace, {"pullguard.io/mode": label})
    webhook = start_webhook(loopback(registry_noauth, mode=configured), kubeconfig=kubeconfig)
    missing = f"{registry_noauth.host}/{repo_name('team')}:1.0"

    response = _response(webhook.review(review(pod("web", namespace, [missing]))))

    assert response["allowed"] is allowed
    expected_mode = label if label in ("enforce", "warn", "audit") else configured
    assert response["auditAnnotations"]["mode"] == expected_mode
    if note is not None:
        assert response["warnings"][0] == note


def test_node_platforms_discovered_from_the_cluster_decide_a_platform_mismatch(
    start_webhook: StartWebhook,
    test_ca: trustme.CA,
    tmp_path: Path,
    registry_noauth: RegistryProcess,
    repo_name: Callable[[str], str],
) -> None:
    nodes_api = FakeApiServer(test_ca).start()
    try:
        for i in range(3):  # listed in pages of NODE_PAGE; three arm64 nodes of one node pool
            nodes_api.add_node(
                f"arm-{i}",
                {
                    "kubernetes.io/arch": "arm64",
                    "kubernetes.io/os": "linux",
                    "eks.amazonaws.com/nodegroup": "ng-arm",
                },
            )
        nodes_api.add_namespace("shop")
        repo = repo_name("team")
        push_image(registry_noauth, repo, "1.0", arch="amd64")
        webhook = start_webhook(
            loopback(registry_noauth), kubeconfig=nodes_api.write_kubeconfig(tmp_path / "kc")
        )

        response = _response(
            webhook.review(review(pod("web", "shop", [f"{registry_noauth.host}/{repo}:1.0"])))
        )

        assert response["allowed"] is False
        assert _verdict(response)["images"][0]["outcome"] == "platform-mismatch"
        assert "linux/arm64" in response["status"]["message"]
    finally:
        nodes_api.stop()


class _NodesToRoles:
    """A NodeIdentityResolver as the EKS integration will be one: Node -> the role it pulls as.

    Here the mapping is given; the real one reads providerID -> EC2 instance profile -> role.
    """

    def __init__(self, roles: dict[str, str]) -> None:
        self.roles = roles
        self.seen: list[str] = []

    async def resolve(self, nodes: Sequence[NodeObject]) -> NodeIdentities:
        self.seen = [n.name for n in nodes]
        return NodeIdentities(by_node={n: NodeIdentity("node-role", arn) for n, arn in self.roles.items()})


def test_node_identity_resolvers_plugged_into_the_composition_decide_who_pulls(
    start_webhook: StartWebhook, test_ca: trustme.CA, tmp_path: Path
) -> None:
    role = "arn:aws:iam::111122223333:role/ng-general"
    nodes_api = FakeApiServer(test_ca).start()
    try:
        nodes_api.add_node(
            "ip-10-0-0-1", {"kubernetes.io/arch": "amd64", "eks.amazonaws.com/nodegroup": "general"}
        )
        nodes_api.add_namespace("shop")
        resolver = _NodesToRoles({"ip-10-0-0-1": role})
        webhook = start_webhook(
            {}, kubeconfig=nodes_api.write_kubeconfig(tmp_path / "kc"), resolvers=[resolver]
        )
        image = "111122223333.dkr.ecr.us-east-1.amazonaws.com/shop/api:1.0"

        response = _response(webhook.review(review(pod("web", "shop", [image]))))
    finally:
        nodes_api.stop()

    assert resolver.seen == ["ip-10-0-0-1"]
    verdict = _verdict(response)["images"][0]
    # no ECR integration is configured yet: the node role is named, its answer is undetermined
    assert verdict["identity"] == f"node-role:{role}"
    assert verdict["outcome"] == "undetermined"
