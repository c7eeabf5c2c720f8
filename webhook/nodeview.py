"""The planner's view of the nodes: from configuration, or discovered from Node objects.

``cluster.nodeGroups`` in the configuration wins (the operator said what the nodes are). Without
it, and with a cluster to ask, the Nodes are read (``NodeSource``), every configured
``NodeIdentityResolver`` (the EKS and GKE integrations) says which identity each node pulls as,
and ``core.nodes.groups_from_nodes`` turns them into node groups — so a pod with a nodeSelector
for arm64 is checked against the arm64 nodes' platform and identity. Without nodes (no cluster,
no RBAC, an empty list) the view falls back to ``cluster.platforms``, and a failure to read them
is a finding, not a crash. The view (the node docker config file included) is rebuilt at most
every ``ttl`` seconds, or every ``ERROR_TTL`` seconds while the Nodes cannot be read — this is the
one cache of the nodes (the kube adapter only single-flights their reads).

This module composes ports only; it never imports an adapter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from webhook.core.findings import Finding
from webhook.core.identity import ClusterView, Unavailable
from webhook.core.nodes import NodeGroup, NodeIdentities, NodeIdentity, NodeObject, groups_from_nodes
from webhook.memo import Memo
from webhook.ports import NodeIdentityResolver, NodeSource
from webhook.settings import Config, cluster_view

log = logging.getLogger("pullguard.nodes")

VIEW_TTL = 30.0
#: While the Nodes cannot be read, ask again this soon (as the kube adapter does for its reads).
ERROR_TTL = 2.0


def merge_identities(answers: Sequence[NodeIdentities]) -> NodeIdentities:
    """Several resolvers' answers as one: the first resolver that knows a node wins."""
    by_node: dict[str, NodeIdentity] = {}
    extra: list[NodeGroup] = []
    findings: list[Finding] = []
    for answer in answers:
        for node, identity in answer.by_node.items():
            by_node.setdefault(node, identity)
        extra.extend(answer.extra_groups)
        findings.extend(answer.findings)
    return NodeIdentities(by_node=by_node, extra_groups=tuple(extra), findings=tuple(findings))


def _nodes_unreadable(reason: str) -> Finding:
    return Finding(
        "nodes-unreadable",
        None,
        f"the cluster's Nodes could not be read ({reason}); platforms come from "
        "cluster.platforms and node identities are not known",
    )


class ClusterViews:
    """``await views.view(pods_admitted=...)``: the current ``ClusterView``, cached."""

    def __init__(
        self,
        config: Config,
        nodes: NodeSource | None = None,
        resolvers: Sequence[NodeIdentityResolver] = (),
        *,
        ttl: float = VIEW_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.nodes = nodes
        self.resolvers = tuple(resolvers)
        self.ttl = ttl
        self._views: Memo[ClusterView] = Memo(ttl, clock=clock, max_entries=1)

    @property
    def discovers(self) -> bool:
        return self.nodes is not None and not self.config.cluster.node_groups

    async def view(self, *, pods_admitted: bool, within: float | None = None) -> ClusterView:
        """The view; if building it takes longer than ``within`` seconds, the view without Nodes.

        The build goes on (the cache's loads are shielded) and serves the next admission; this one
        is planned from the configuration, with the ``nodes-unreadable`` finding saying why.
        """
        load = self._views.get("view", self._build, self._ttl_of)
        try:
            base = await (load if within is None else asyncio.wait_for(load, max(0.0, within)))
        except TimeoutError:
            reason = f"no answer from the Kubernetes API within {max(0.0, within or 0.0):.2f}s"
            base = self._view(None, (_nodes_unreadable(reason),))
        return base if base.pods_admitted == pods_admitted else replace(base, pods_admitted=pods_admitted)

    async def _build(self) -> ClusterView:
        groups, findings = await self._discover() if self.discovers else (None, ())
        return self._view(groups, findings)

    def _view(self, groups: tuple[NodeGroup, ...] | None, findings: tuple[Finding, ...]) -> ClusterView:
        """The configuration's view with ``groups`` (None: from the configuration) and ``findings``."""
        base = cluster_view(self.config, pods_admitted=False, groups=groups)
        return replace(base, extra_findings=base.extra_findings + findings) if findings else base

    def _ttl_of(self, view: ClusterView) -> float:
        unreadable = any(f.code == "nodes-unreadable" for f in view.extra_findings)
        return min(self.ttl, ERROR_TTL) if unreadable else self.ttl

    async def _discover(self) -> tuple[tuple[NodeGroup, ...] | None, tuple[Finding, ...]]:
        assert self.nodes is not None
        nodes = await self.nodes.nodes()
        if isinstance(nodes, Unavailable):
            return None, (_nodes_unreadable(nodes.reason),)
        if not nodes:
            return None, ()
        # The resolvers run together; merge_identities keeps their order (the first that knows wins).
        identities = merge_identities(
            await asyncio.gather(*(self._resolve(r, nodes) for r in self.resolvers))
        )
        groups, findings = groups_from_nodes(nodes, identities)
        return (groups or None), findings

    @staticmethod
    async def _resolve(resolver: NodeIdentityResolver, nodes: Sequence[NodeObject]) -> NodeIdentities:
        try:
            return await resolver.resolve(nodes)
        except Exception as exc:  # an integration's bug must not take admission down
            log.exception("node identity resolver %s failed", type(resolver).__name__)
            return NodeIdentities(
                findings=(
                    Finding(
                        "node-identity-unresolved",
                        None,
                        f"{type(resolver).__name__} could not resolve node identities ({type(exc).__name__})",
                    ),
                )
            )
