"""Secrets and ServiceAccounts that arrive with the input instead of from a cluster.

``pullguard check`` uses the Secrets and ServiceAccounts present in its input stream exactly as
the cluster would (a chart that ships its own pull secret is checked with it); ``explain`` uses
``--secret-file``. Objects not in the stream are asked of the cluster when one is configured
(``fallback``), otherwise they are reported as unknown — except the ``default`` ServiceAccount,
which exists in every namespace and, unless shown otherwise, lists no pull secrets.
"""

from __future__ import annotations

from webhook.core.identity import AccountResult, SecretResult, Unavailable
from webhook.core.objects import SecretObject, ServiceAccountObject
from webhook.ports import SecretSource

NO_CLUSTER = "not in the input, and no cluster to read it from"


class StreamObjects:
    """An in-memory ``SecretSource`` over objects read from files, with an optional cluster behind it."""

    def __init__(self, fallback: SecretSource | None = None) -> None:
        self._secrets: dict[tuple[str, str], SecretObject] = {}
        self._accounts: dict[tuple[str, str], ServiceAccountObject] = {}
        self._fallback = fallback

    def add_secret(self, secret: SecretObject) -> None:
        self._secrets[(secret.namespace, secret.name)] = secret

    def add_service_account(self, account: ServiceAccountObject) -> None:
        self._accounts[(account.namespace, account.name)] = account

    async def get_secret(self, namespace: str, name: str) -> SecretResult:
        found = self._secrets.get((namespace, name))
        if found is not None:
            return found
        if self._fallback is not None:
            return await self._fallback.get_secret(namespace, name)
        return Unavailable(NO_CLUSTER)

    async def get_service_account(self, namespace: str, name: str) -> AccountResult:
        found = self._accounts.get((namespace, name))
        if found is not None:
            return found
        if self._fallback is not None:
            return await self._fallback.get_service_account(namespace, name)
        if name == "default":
            return None
        return Unavailable(NO_CLUSTER)
