"""GKE node discovery: Node objects → node pool → service account and scopes (GKE API via the fake)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.infra.fake_gcp import FakeGcp
from tests.support.gcp import SERVICES, GcpEnv
from webhook.adapters.gcp import GcpOptions, GkeCluster, GkeNodeResolver, GoogleApis
from webhook.core.nodes import NodeIdentity, NodeObject, groups_from_nodes
from webhook.core.platforms import Platform

CLUSTER = "projects/acme-prod/locations/europe-west1/clusters/main"
STORAGE_RO = "https://www.googleapis.com/auth/devstorage.read_only"
CLOUD = "https://www.googleapis.com/auth/cloud-platform"
AMD64 = Platform("linux", "amd64")


def _node(name: str, pool: str | None, zone: str = "europe-west1-b") -> NodeObject:
    labels = {"cloud.google.com/gke-nodepool": pool} if pool else {}
    return NodeObject(name, labels, AMD64, provider_id=f"gce://acme-prod/{zone}/{name}")


def _resolver(fake: FakeGcp, token_file: Path) -> GkeNodeResolver:
    apis = GoogleApis(
        GcpOptions(endpoints={s: fake.url for s in SERVICES}, access_token_file=str(token_file))
    )
    return GkeNodeResolver(apis, GkeCluster("acme-prod", "europe-west1", "main"))


def test_node_pools_map_to_their_service_accounts(gcp_env: GcpEnv) -> None:
    fake = gcp_env.fake
    fake.add_project("acme-prod", "222")
    fake.add_node_pool(CLUSTER, "default-pool", "default", [STORAGE_RO])
    fake.add_node_pool(CLUSTER, "batch", "batch@acme-prod.iam.gserviceaccount.com", [CLOUD])
    nodes = [
        _node("n1", "default-pool"),
        _node("n2", "default-pool", "europe-west1-c"),
        _node("n3", "batch"),
        _node("n4", "gone"),
        _node("n5", None),
    ]
    found = asyncio.run(_resolver(fake, gcp_env.token_file).resolve(nodes))
    default = NodeIdentity("node-service-account", "222-compute@developer.gserviceaccount.com", (STORAGE_RO,))
    assert found.by_node == {
        "n1": default,
        "n2": default,
        "n3": NodeIdentity("node-service-account", "batch@acme-prod.iam.gserviceaccount.com", (CLOUD,)),
    }
    assert [f.message for f in found.findings] == [
        f"node n4: node pool gone is not in {CLUSTER}; its pull identity is unknown",
        "node n5 has no cloud.google.com/gke-nodepool label; its pull identity is unknown",
    ]
    # Nodes whose identity is unknown share a group with no identity: the GCP checker says undetermined.
    groups, _ = groups_from_nodes(nodes, found)
    assert sorted((g.name or "", g.identity.principal if g.identity else None) for g in groups) == [
        ("batch", "batch@acme-prod.iam.gserviceaccount.com"),
        ("default-pool", "222-compute@developer.gserviceaccount.com"),
        ("gone", None),
    ]


def test_unreadable_cluster_is_a_finding_not_a_crash(gcp_env: GcpEnv) -> None:
    found = asyncio.run(_resolver(gcp_env.fake, gcp_env.token_file).resolve([_node("n1", "default-pool")]))
    assert found.by_node == {}
    assert len(found.findings) == 1
    message = found.findings[0].message
    assert message.startswith(f"the node pools of {CLUSTER} could not be read (container: nodePools.list")
    assert "404" in message
