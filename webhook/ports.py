"""The engine's view of the outside world: small Protocols the adapters implement.

The engine never imports an adapter (an import-linter contract enforces it); composition roots
(cli, app) build adapters and hand them to the engine through these ports, so tests can plug in
the real adapters against local servers and nothing patches our own functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from webhook.core.assess import ManifestInfo, Observation
from webhook.core.identity import AccountResult, PlannedAttempt, SecretResult
from webhook.core.nodes import NodeGroup
from webhook.core.reference import ImageReference


class SecretSource(Protocol):
    """Secrets and ServiceAccounts of one namespace: the reviewed object's, never another's."""

    async def get_secret(self, namespace: str, name: str) -> SecretResult: ...

    async def get_service_account(self, namespace: str, name: str) -> AccountResult: ...


class RegistryProbe(Protocol):
    """Asks a registry whether an identity can pull a reference (HEAD manifest, token dance)."""

    async def check(self, ref: ImageReference, attempt: PlannedAttempt, *, want_manifest: bool) -> Observation: ...

    async def manifest_info(self, ref: ImageReference, attempt: PlannedAttempt, digest: str) -> ManifestInfo | None: ...

    async def list_tags(self, ref: ImageReference, attempt: PlannedAttempt) -> Sequence[str] | None: ...


class NodeGroupSource(Protocol):
    """Node groups discovered from the cluster (Nodes, EC2, GKE), or None to use configuration."""

    async def node_groups(self) -> tuple[NodeGroup, ...] | None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
