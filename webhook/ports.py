"""The engine's view of the outside world: small Protocols the adapters implement.

The engine never imports an adapter (an import-linter contract enforces it); composition roots
(cli, app) build adapters and hand them to the engine through these ports, so tests plug in the
real adapters against local servers and nothing patches our own functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from webhook.core.assess import Observation
from webhook.core.identity import AccountResult, PlannedAttempt, SecretResult, StaticCredential, Unavailable
from webhook.core.nodes import NodeGroup, NodeIdentities, NodeObject
from webhook.core.reference import ImageReference


class SecretSource(Protocol):
    """Secrets and ServiceAccounts of one namespace: the reviewed object's, never another's."""

    async def get_secret(self, namespace: str, name: str) -> SecretResult: ...

    async def get_service_account(self, namespace: str, name: str) -> AccountResult: ...


class NamespaceSource(Protocol):
    """A Namespace's labels (``pullguard.io/mode``); None when it does not exist."""

    async def namespace_labels(self, name: str) -> Mapping[str, str] | Unavailable | None: ...


class RegistryProbe(Protocol):
    """Asks a registry whether a credential (None: anonymous) can pull a reference."""

    async def check(
        self, ref: ImageReference, cred: StaticCredential | None, *, want_manifest: bool
    ) -> Observation: ...

    async def list_tags(
        self, ref: ImageReference, cred: StaticCredential | None
    ) -> tuple[list[str], bool] | None: ...


class NodeIdentityChecker(Protocol):
    """Answers for a credential-provider attempt: can this node identity (IAM role, GCP SA) pull?"""

    async def check(self, ref: ImageReference, attempt: PlannedAttempt) -> Observation: ...


class NodeGroupSource(Protocol):
    """Node groups discovered from the cluster (Nodes, EC2, GKE), or None to use configuration."""

    async def node_groups(self) -> tuple[NodeGroup, ...] | None: ...


class NodeSource(Protocol):
    """The cluster's Node objects (the kube adapter), or why they could not be read."""

    async def nodes(self) -> Sequence[NodeObject] | Unavailable: ...


class NodeIdentityResolver(Protocol):
    """A cloud adapter that knows which identity each node pulls as (EKS, GKE)."""

    async def resolve(self, nodes: Sequence[NodeObject]) -> NodeIdentities: ...
