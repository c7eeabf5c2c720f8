"""GKE node pools → the service account and access scopes each node pulls with.

GKE labels every node with ``cloud.google.com/gke-nodepool: <pool>``; the pool's
``config.serviceAccount`` and ``config.oauthScopes`` (container v1
``projects.locations.clusters.nodePools.list``) are what the node's metadata server hands out,
and so what ``auth-provider-gcp`` gives kubelet (research/domain-facts.md §5.2). A pool whose
``serviceAccount`` is empty or ``default`` uses the project's Compute Engine default service
account, ``<project number>-compute@developer.gserviceaccount.com`` (the number from Resource
Manager ``projects.get``). The project comes from ``gcp.cluster.project`` or, when that is not
configured, the nodes' ``providerID`` (``gce://<project>/<zone>/<instance>``).

Nodes the adapter cannot place (no pool label, a pool the API does not list, an API refusal) are
left out of ``by_node`` and explained in ``findings``: they become groups with an unknown
identity, which the GCP checker reports as ``undetermined``, never as allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from webhook.adapters.gcp._errors import google_errors
from webhook.adapters.gcp.apis import GoogleApis
from webhook.core.errors import CloudError
from webhook.core.findings import Finding
from webhook.core.nodes import NodeIdentities, NodeIdentity, NodeObject

POOL_LABEL = "cloud.google.com/gke-nodepool"


@dataclass(frozen=True, slots=True)
class GkeCluster:
    project: str
    location: str
    name: str

    @property
    def resource(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/clusters/{self.name}"


@dataclass(frozen=True, slots=True)
class PoolIdentity:
    service_account: str  # "" or "default" for the Compute Engine default SA
    scopes: tuple[str, ...]


def project_from_provider_id(provider_id: str) -> str | None:
    """``gce://acme-prod/europe-west1-b/gke-x`` → ``acme-prod``."""
    if not provider_id.startswith("gce://"):
        return None
    project = provider_id.removeprefix("gce://").split("/", 1)[0]
    return project or None


class GkeNodeResolver:
    """The ``NodeIdentityResolver`` for GKE clusters."""

    def __init__(self, apis: GoogleApis, cluster: GkeCluster) -> None:
        self._apis = apis
        self._cluster = cluster

    async def resolve(self, nodes: Sequence[NodeObject]) -> NodeIdentities:
        findings: list[Finding] = []
        try:
            pools = await self._apis.call(self._pools)
        except CloudError as exc:
            return NodeIdentities(
                findings=(
                    Finding(
                        "node-identity-unknown",
                        "gcp.cluster",
                        f"the node pools of {self._cluster.resource} could not be read ({exc.message}); "
                        "the pull identity of every node is unknown",
                        "warning",
                    ),
                )
            )
        #: project -> its default compute SA, or why it could not be read: one lookup per project
        #: per resolve, however many nodes (a refusal is not cached by the API client).
        defaults: dict[str, str | CloudError] = {}
        by_node: dict[str, NodeIdentity] = {}
        for node in nodes:
            pool_name = node.labels.get(POOL_LABEL)
            if not pool_name:
                if not node.is_fargate:
                    findings.append(self._finding(f"node {node.name} has no {POOL_LABEL} label"))
                continue
            pool = pools.get(pool_name)
            if pool is None:
                findings.append(
                    self._finding(
                        f"node {node.name}: node pool {pool_name} is not in {self._cluster.resource}"
                    )
                )
                continue
            email = pool.service_account
            if email in ("", "default"):
                project = project_from_provider_id(node.provider_id) or self._cluster.project
                if project not in defaults:
                    try:
                        defaults[project] = await self._default_service_account(project)
                    except CloudError as exc:
                        defaults[project] = exc
                got = defaults[project]
                if isinstance(got, CloudError):
                    findings.append(
                        self._finding(
                            f"node pool {pool_name} uses the Compute Engine default service account, "
                            f"whose project number could not be read ({got.message})"
                        )
                    )
                    continue
                email = got
            by_node[node.name] = NodeIdentity("node-service-account", email, pool.scopes)
        return NodeIdentities(by_node=by_node, findings=tuple(findings))

    def _finding(self, message: str) -> Finding:
        return Finding(
            "node-identity-unknown", "gcp.cluster", message + "; its pull identity is unknown", "warning"
        )

    def _pools(self) -> dict[str, PoolIdentity]:
        client = self._apis.cluster_manager()
        with google_errors("container", f"nodePools.list {self._cluster.resource}"):
            response = client.list_node_pools(
                parent=self._cluster.resource, retry=None, timeout=self._apis.timeout
            )
        return {
            str(p.name): PoolIdentity(
                str(p.config.service_account), tuple(str(s) for s in p.config.oauth_scopes)
            )
            for p in response.node_pools
        }

    async def _default_service_account(self, project: str) -> str:
        client = self._apis.resource_manager("projects")

        def get() -> str:
            with google_errors("cloudresourcemanager", f"projects.get projects/{project}"):
                found = client.get_project(name=f"projects/{project}", retry=None, timeout=self._apis.timeout)
            return str(found.name).removeprefix("projects/")

        number = await self._apis.call(get)
        return f"{number}-compute@developer.gserviceaccount.com"
