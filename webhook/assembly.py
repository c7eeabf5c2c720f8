"""Building the engine and its adapters from a ``Config`` — shared by the CLI and the webhook.

Composition only: no behaviour of its own. Each surface calls ``build`` once at start and
``aclose`` on the returned ``Assembly`` when it stops, so connection pools and token caches are
shared by every check of a process.
"""

from __future__ import annotations

from dataclasses import dataclass

from webhook.adapters.aws import AwsClients, AwsOptions, EcrChecker, EcrOptions, EksNodeResolver
from webhook.adapters.gcp import GcpChecker, GcpOptions, GkeCluster, GkeNodeResolver, GoogleApis
from webhook.adapters.http import make_client
from webhook.adapters.registry import RegistryClient, RegistryOptions
from webhook.core.destinations import DestinationPolicy
from webhook.engine import Engine, EngineOptions
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
class Assembly:
    engine: Engine
    registry: RegistryClient
    #: Cloud adapters that turn Node objects into pull identities (EKS; GKE when gcp.cluster is set).
    resolvers: tuple[NodeIdentityResolver, ...] = ()
    aws: AwsClients | None = None

    async def aclose(self) -> None:
        await self.registry.aclose()
        if self.aws is not None:
            self.aws.close()


def build(config: Config) -> Assembly:
    """The engine with a registry client honouring the network guard, CA file and endpoints."""
    http = make_client(
        policy=destination_policy(config),
        timeout=config.timeouts.request_seconds,
        ca_file=config.network.ca_file,
    )
    registry = RegistryClient(http, registry_options(config))
    aws = AwsClients(aws_options(config))  # boto3 clients and Google credentials are built on first use
    google = GoogleApis(gcp_options(config))
    ecr = EcrChecker(aws, registry, EcrOptions(policy_evaluation=config.aws.policy_evaluation))
    checkers: dict[str, NodeIdentityChecker] = {"ecr": ecr, "gcp": GcpChecker(google, registry)}
    resolvers: list[NodeIdentityResolver] = [
        EksNodeResolver(aws, region=config.aws.region, cluster_name=config.aws.eks_cluster_name)
    ]
    if config.gcp.cluster is not None:
        c = config.gcp.cluster
        resolvers.append(GkeNodeResolver(google, GkeCluster(c.project, c.location, c.name)))
    engine = Engine(engine_options(config), registry=registry, checkers=checkers)
    return Assembly(engine, registry, resolvers=tuple(resolvers), aws=aws)
