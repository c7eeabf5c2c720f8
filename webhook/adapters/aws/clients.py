"""pullguard's own AWS access: one boto3 client per (service, region), built on first use.

Credentials come from boto3's standard chain (environment, shared profile, web identity — IRSA —
or EKS Pod Identity, instance metadata), never from configuration (DESIGN 1.3). Endpoints come
from ``aws.endpoints`` per service (VPC endpoints, FIPS, moto in tests); they are operator
configuration, so they do not pass the registry network guard. Retries are bounded (botocore
"standard" mode, ``max_attempts`` in total) and every call has connect/read timeouts of the
request budget, so an AWS outage costs a bounded time, then becomes an ``unreachable``/``timeout``
answer. Calls run in a worker thread (boto3 is synchronous) and go through ``errors.translate``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.adapters.aws.errors import translate

USER_AGENT_EXTRA = "pullguard/0.1"


@dataclass(frozen=True, slots=True)
class AwsOptions:
    region: str = "us-east-1"
    endpoints: Mapping[str, str] = field(default_factory=dict)
    #: connect and read timeout of one call (the webhook's timeouts.requestSeconds)
    timeout: float = 2.0
    #: total attempts per call, first one included (botocore standard retry mode)
    max_attempts: int = 2


class AwsClients:
    """Builds and keeps boto3 clients; ``call`` is the only way the package talks to AWS."""

    def __init__(self, options: AwsOptions) -> None:
        self.options = options
        self._clients: dict[tuple[str, str], Any] = {}
        self._session: Any = None
        self._lock = threading.Lock()

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.options.region
        key = (service, region)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                return found
            with translate(service, "client"):
                import boto3
                from botocore.config import Config

                if self._session is None:
                    self._session = boto3.session.Session()
                config = Config(
                    retries={"total_max_attempts": self.options.max_attempts, "mode": "standard"},
                    connect_timeout=self.options.timeout,
                    read_timeout=self.options.timeout,
                    user_agent_extra=USER_AGENT_EXTRA,
                )
                made = self._session.client(
                    service,
                    region_name=region,
                    endpoint_url=self.options.endpoints.get(service),
                    config=config,
                )
            self._clients[key] = made
            return made

    def call_sync(
        self, service: str, operation: str, region: str | None = None, **params: Any
    ) -> dict[str, Any]:
        with translate(service, operation):
            method = getattr(self.client(service, region), operation)
            result: dict[str, Any] = method(**params)
        return result

    async def call(
        self, service: str, operation: str, region: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """One AWS API call (``operation`` in boto3 snake_case), off the event loop."""
        return await asyncio.to_thread(self.call_sync, service, operation, region, **params)

    def close(self) -> None:
        with self._lock:
            for made in self._clients.values():
                made.close()
            self._clients.clear()
