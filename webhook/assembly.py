"""Building the engine and its adapters from a ``Config`` — shared by the CLI and the webhook.

Composition only: no behaviour of its own. Each surface calls ``build`` once at start and
``aclose`` on the returned ``Assembly`` when it stops, so connection pools and token caches are
shared by every check of a process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from webhook.adapters.http import make_client
from webhook.adapters.kube import KubeCluster, NoCluster
from webhook.adapters.registry import RegistryClient, RegistryOptions
from webhook.core.destinations import DestinationPolicy
from webhook.engine import Engine, EngineOptions
from webhook.metrics import Metrics
from webhook.nodeview import ClusterViews
from webhook.ports import NodeIdentityChecker, NodeIdentityResolver
from webhook.settings import Config


def destination_policy(config: Config) -> DestinationPolicy:
    net = config.network
    return DestinationPolicy(
        allow_loopback=net.allow_loopback,
        allow_link_local=net.allow_link_local,
        allow_private=net.allow_private,
    )


def engine_options(config: Config) -> EngineOptions:
    return EngineOptions(
        on_unknown=config.on_unknown,
        exempt_namespaces=config.exempt_namespaces,
        deadline_seconds=config.timeouts.deadline_seconds,
        request_seconds=config.timeouts.request_seconds,
        exact_platforms=config.cluster.platform_match == "exact",
        tag_ttl=config.cache.tag_ttl_seconds,
        digest_ttl=config.cache.digest_ttl_seconds,
        negative_ttl=config.cache.negative_ttl_seconds,
    )


def registry_options(config: Config) -> RegistryOptions:
    endpoints = {**config.aws.registry_endpoints, **config.gcp.registry_endpoints}
    return RegistryOptions(
        plain_http=frozenset(config.network.plain_http),
        endpoints=endpoints,
        request_timeout=config.timeouts.request_seconds,
    )


@dataclass
class Assembly:
    engine: Engine
    registry: RegistryClient
    #: Secrets, ServiceAccounts, Namespaces, Nodes: a live cluster, or ``NoCluster``.
    cluster: KubeCluster | NoCluster = field(default_factory=NoCluster)
    views: ClusterViews | None = None

    async def aclose(self) -> None:
        await self.registry.aclose()
        self.cluster.close()


def connect_cluster(
    config: Config,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    in_cluster: bool = False,
    metrics: Metrics | None = None,
) -> KubeCluster:
    """The Kubernetes adapter (in-cluster, or a kubeconfig and context); ``ClusterReadError`` if unusable."""
    hook = metrics.kube_request if metrics is not None else None
    timeout = config.timeouts.request_seconds
    if in_cluster:
        return KubeCluster.in_cluster(request_timeout=timeout, on_request=hook)
    return KubeCluster.from_kubeconfig(kubeconfig, context, request_timeout=timeout, on_request=hook)


def build(
    config: Config,
    *,
    cluster: KubeCluster | NoCluster | None = None,
    resolvers: Sequence[NodeIdentityResolver] = (),
    checkers: Mapping[str, NodeIdentityChecker] | None = None,
    metrics: Metrics | None = None,
) -> Assembly:
    """The engine with a registry client honouring the network guard, CA file and endpoints.

    ``cluster``: where Secrets, ServiceAccounts, Namespaces and Nodes come from (default: none).
    ``resolvers``: cloud integrations that say which identity each Node pulls as (EKS, GKE);
    ``checkers``: per credential-provider kind (``ecr``, ``gcp``), who answers for node identities.
    """
    http = make_client(
        policy=destination_policy(config),
        timeout=config.timeouts.request_seconds,
        ca_file=config.network.ca_file,
    )
    hook = metrics.registry_request if metrics is not None else None
    registry = RegistryClient(http, registry_options(config), on_request=hook)
    engine = Engine(engine_options(config), registry=registry, checkers=checkers)
    source = cluster if cluster is not None else NoCluster()
    nodes = source if isinstance(source, KubeCluster) else None
    views = ClusterViews(config, nodes, resolvers)
    if metrics is not None:
        metrics.watch_stats("registry", lambda: engine.stats)
        metrics.watch_stats("kube", lambda: source.stats)
    return Assembly(engine, registry, source, views)
