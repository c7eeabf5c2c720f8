"""Building the engine and its adapters from a ``Config`` — shared by the CLI and the webhook.

Composition only: no behaviour of its own. Each surface calls ``build`` once at start and
``aclose`` on the returned ``Assembly`` when it stops, so connection pools and token caches are
shared by every check of a process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from webhook.adapters.aws import AwsClients, AwsOptions, EcrChecker, EcrOptions, EksNodeResolver
from webhook.adapters.gcp import GcpChecker, GcpOptions, GkeCluster, GkeNodeResolver, GoogleApis
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


def gcp_options(config: Config) -> GcpOptions:
    return GcpOptions(
        endpoints=dict(config.gcp.endpoints),
        access_token_file=config.gcp.access_token_file,
        permission_check=config.gcp.permission_check,
        request_timeout=config.timeouts.request_seconds,
    )


def aws_options(config: Config) -> AwsOptions:
    return AwsOptions(
        region=config.aws.region,
        endpoints=dict(config.aws.endpoints),
        timeout=config.timeouts.request_seconds,
    )


@dataclass
class Clouds:
    """The cloud integrations: who answers for node identities, and who maps Nodes to them.

    boto3 clients and Google credentials are created on first use, so a cluster on neither cloud
    pays nothing for them.
    """

    checkers: dict[str, NodeIdentityChecker]
    resolvers: tuple[NodeIdentityResolver, ...]
    aws: AwsClients

    def close(self) -> None:
        self.aws.close()


def clouds(config: Config, registry: RegistryClient) -> Clouds:
    """ECR (EKS node roles, Fargate) and Artifact Registry / GCR (GKE node service accounts)."""
    aws = AwsClients(aws_options(config))
    google = GoogleApis(gcp_options(config))
    ecr = EcrChecker(aws, registry, EcrOptions(policy_evaluation=config.aws.policy_evaluation))
    resolvers: list[NodeIdentityResolver] = [
        EksNodeResolver(aws, region=config.aws.region, cluster_name=config.aws.eks_cluster_name)
    ]
    if config.gcp.cluster is not None:
        c = config.gcp.cluster
        resolvers.append(GkeNodeResolver(google, GkeCluster(c.project, c.location, c.name)))
    return Clouds({"ecr": ecr, "gcp": GcpChecker(google, registry)}, tuple(resolvers), aws)


@dataclass
class Assembly:
    engine: Engine
    registry: RegistryClient
    #: Secrets, ServiceAccounts, Namespaces, Nodes: a live cluster, or ``NoCluster``.
    cluster: KubeCluster | NoCluster
    views: ClusterViews
    clouds: Clouds

    @property
    def resolvers(self) -> tuple[NodeIdentityResolver, ...]:
        """The node-identity resolvers the node view uses (EKS; GKE when gcp.cluster is set)."""
        return self.views.resolvers

    async def close_clients(self) -> None:
        """Close what ``build`` opened: the registry pool and the cloud SDK clients."""
        await self.registry.aclose()
        self.clouds.close()

    async def aclose(self) -> None:
        await self.close_clients()
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
    resolvers: Sequence[NodeIdentityResolver] | None = None,
    checkers: Mapping[str, NodeIdentityChecker] | None = None,
    metrics: Metrics | None = None,
) -> Assembly:
    """The engine with a registry client honouring the network guard, CA file and endpoints.

    ``cluster``: where Secrets, ServiceAccounts, Namespaces and Nodes come from (default: none).
    ``resolvers``: integrations that say which identity each Node pulls as (default: EKS, and GKE
    when ``gcp.cluster`` is set); ``checkers``: per credential-provider kind, who answers for node
    identities (default: ``ecr`` and ``gcp``).
    """
    http = make_client(
        policy=destination_policy(config),
        timeout=config.timeouts.request_seconds,
        ca_file=config.network.ca_file,
    )
    hook = metrics.registry_request if metrics is not None else None
    registry = RegistryClient(http, registry_options(config), on_request=hook)
    cloud = clouds(config, registry)
    chosen = tuple(cloud.resolvers if resolvers is None else resolvers)
    engine = Engine(
        engine_options(config), registry=registry, checkers=cloud.checkers if checkers is None else checkers
    )
    source = cluster if cluster is not None else NoCluster()
    nodes = source if isinstance(source, KubeCluster) else None
    views = ClusterViews(config, nodes, chosen)
    if metrics is not None:
        metrics.watch_stats("registry", lambda: engine.stats)
        metrics.watch_stats("kube", lambda: source.stats)
    return Assembly(engine, registry, source, views, cloud)
