"""The Kubernetes adapter against the wire-level fake API server: values, not exceptions.

Every failure the real client can meet — 403 (RBAC), 401 (bad token), an unreachable server, a
TLS error — comes back as ``Unavailable`` with a message naming what to fix; a missing object is
``None``; no ``kubernetes`` or ``urllib3`` exception escapes (STYLE rule 3).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import trustme

from tests.infra.fake_apiserver import FakeApiServer
from webhook.adapters.kube import KubeCluster
from webhook.core.errors import ClusterReadError
from webhook.core.identity import Unavailable
from webhook.core.objects import SecretObject, ServiceAccountObject
from webhook.core.platforms import Platform


def _cluster(kubeconfig: Path, context: str | None = None, **options: object) -> KubeCluster:
    return KubeCluster.from_kubeconfig(str(kubeconfig), context, request_timeout=2.0, **options)  # type: ignore[arg-type]


def test_objects_of_a_namespace_are_read_as_the_cli_reads_files(
    fake_api: FakeApiServer, kubeconfig: Path, namespace: str
) -> None:
    fake_api.add_pull_secret(namespace, "regcred", "ghcr.io", "ci-bot", "p4ss")
    fake_api.add_service_account(namespace, "builder", ["regcred", "other"])
    fake_api.add_namespace(namespace, {"pullguard.io/mode": "warn"})
    cluster = _cluster(kubeconfig)

    async def read() -> tuple[object, ...]:
        return (
            await cluster.get_secret(namespace, "regcred"),
            await cluster.get_service_account(namespace, "builder"),
            await cluster.namespace_labels(namespace),
            await cluster.get_secret(namespace, "absent"),
        )

    secret, account, labels, absent = asyncio.run(read())
    cluster.close()

    assert isinstance(secret, SecretObject)
    assert (secret.qualified, secret.type, sorted(secret.data)) == (
        f"{namespace}/regcred",
        "kubernetes.io/dockerconfigjson",
        [".dockerconfigjson"],
    )
    assert "p4ss" not in repr(secret)
    assert isinstance(account, ServiceAccountObject)
    assert account.image_pull_secrets == ("regcred", "other")
    assert labels == {"kubernetes.io/metadata.name": namespace, "pullguard.io/mode": "warn"}
    assert absent is None


def test_repeated_reads_are_served_from_the_cache_and_concurrent_ones_share_one_request(
    fake_api: FakeApiServer, kubeconfig: Path, namespace: str
) -> None:
    fake_api.add_pull_secret(namespace, "regcred", "ghcr.io", "ci-bot", "p4ss")
    cluster = _cluster(kubeconfig)

    async def burst() -> list[object]:
        return list(await asyncio.gather(*(cluster.get_secret(namespace, "regcred") for _ in range(20))))

    results = asyncio.run(burst())
    again = asyncio.run(cluster.get_secret(namespace, "regcred"))
    cluster.close()

    assert all(isinstance(r, SecretObject) for r in [*results, again])
    assert fake_api.reads(f"{namespace}/secrets") == [f"/api/v1/namespaces/{namespace}/secrets/regcred"]
    assert (cluster.stats["cache_miss"], cluster.stats["single_flight"], cluster.stats["cache_hit"]) == (
        1,
        19,
        1,
    )


@pytest.mark.parametrize(
    ("setup", "context", "token", "expected"),
    [
        pytest.param(
            "forbid",
            None,
            None,
            'forbidden (403): pullguard may not read secret "regcred" in namespace {ns} (verb get, resource '
            'secrets) — grant its ServiceAccount this RBAC permission (secrets "regcred" is forbidden: User '
            '"system:serviceaccount:pullguard:pullguard" cannot get resource "secrets" in API group "" '
            "in the "
            'namespace "{ns}")',
            id="rbac-403",
        ),
        pytest.param(
            None,
            None,
            "wrong-token",
            "the API server at {url} rejected pullguard's credentials (401 Unauthorized)",
            id="bad-token-401",
        ),
        pytest.param(
            None,
            "down",
            None,
            "the API server at https://127.0.0.1:9 is unreachable (connection refused)",
            id="unreachable",
        ),
    ],
)
def test_failures_become_unavailable_with_what_to_fix(
    fake_api: FakeApiServer,
    tmp_path: Path,
    namespace: str,
    setup: str | None,
    context: str | None,
    token: str | None,
    expected: str,
) -> None:
    fake_api.add_pull_secret(namespace, "regcred", "ghcr.io", "ci-bot", "p4ss")
    if setup == "forbid":
        fake_api.forbid("secrets", namespace)
    kubeconfig = fake_api.write_kubeconfig(tmp_path / "kc", token=token)
    cluster = _cluster(kubeconfig, context)

    result = asyncio.run(cluster.get_secret(namespace, "regcred"))
    cluster.close()

    assert result == Unavailable(expected.format(ns=namespace, url=fake_api.url))


def test_a_server_certificate_from_another_ca_is_a_tls_failure_not_a_crash(
    fake_api: FakeApiServer, tmp_path: Path, namespace: str
) -> None:
    server = FakeApiServer(trustme.CA()).start()  # its certificate is not from the CA trusted below
    url = server.url
    try:
        cluster = _cluster(server.write_kubeconfig(tmp_path / "kc", trust=fake_api.ca))
        result = asyncio.run(cluster.namespace_labels(namespace))
        cluster.close()
    finally:
        server.stop()

    assert isinstance(result, Unavailable)
    assert result.reason.startswith(
        f"cannot reach the API server at {url}: TLS failed "
        "([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    ), result.reason


def test_nodes_are_listed_page_by_page(test_ca: trustme.CA, tmp_path: Path) -> None:
    server = FakeApiServer(test_ca).start()
    try:
        for i in range(1203):
            server.add_node(f"n{i}", {"kubernetes.io/arch": "arm64" if i % 2 else "amd64"})
        cluster = _cluster(server.write_kubeconfig(tmp_path / "kc"))
        nodes = asyncio.run(cluster.nodes())
        cluster.close()
    finally:
        server.stop()

    assert not isinstance(nodes, Unavailable)
    assert len(nodes) == 1203
    assert {n.platform for n in nodes} == {Platform("linux", "amd64"), Platform("linux", "arm64")}
    pages = [s.query.get("continue", [""])[0] for s in server.requests if s.path == "/api/v1/nodes"]
    assert pages == ["", "500", "1000"]


@pytest.mark.parametrize(
    ("kubeconfig", "context", "message"),
    [
        pytest.param("missing.yaml", None, "cannot use {dir}/missing.yaml: ", id="missing-file"),
        pytest.param("kc", "nope", "cannot use {dir}/kc context nope: ", id="unknown-context"),
    ],
)
def test_an_unusable_kubeconfig_is_refused_with_its_name(
    fake_api: FakeApiServer, tmp_path: Path, kubeconfig: str, context: str | None, message: str
) -> None:
    fake_api.write_kubeconfig(tmp_path / "kc")
    with pytest.raises(ClusterReadError) as caught:
        KubeCluster.from_kubeconfig(str(tmp_path / kubeconfig), context)
    assert str(caught.value).startswith(message.format(dir=tmp_path))
