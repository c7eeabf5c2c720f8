"""The check engine: plan each workload, ask the registry as each identity, assess.

Runs the pure planner (``core.identity``) with the Secrets and ServiceAccounts a ``SecretSource``
returns, then — unless offline — asks the registry through the ``RegistryProbe`` port for every
planned attempt in kubelet order, and turns the answers into verdicts (``core.assess``).
It is the only place that knows about time budgets and concurrency; it never imports an adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.core.assess import planned_only
from webhook.core.errors import InputError
from webhook.core.findings import Finding
from webhook.core.identity import AccountResult, ClusterView, PodPlan, SecretResult, plan_pod
from webhook.core.objects import ObjectRef
from webhook.core.verdict import ImageVerdict, ObjectVerdict, is_allowed
from webhook.core.workloads import PodTemplate, extract, object_ref
from webhook.ports import SecretSource


@dataclass(frozen=True, slots=True)
class EngineOptions:
    on_unknown: str = "warn"
    exempt_namespaces: tuple[str, ...] = ("kube-system",)
    deadline_seconds: float = 8.0
    request_seconds: float = 2.0
    exact_platforms: bool = False


class Engine:
    """Checks objects; one instance serves many checks (it owns the caches)."""

    def __init__(self, options: EngineOptions) -> None:
        self.options = options

    async def gather(
        self, template: PodTemplate, secrets: SecretSource, admitted: bool
    ) -> tuple[dict[str, SecretResult], AccountResult]:
        """Read the pull secrets and (for templates) the ServiceAccount the plan needs."""
        namespace = template.object.namespace or "default"
        account: AccountResult = None
        names = [r.name for r in template.pull_secrets if r.name]
        if not template.pull_secrets and not (template.is_pod and admitted):
            account = await secrets.get_service_account(namespace, template.service_account)
            if account is not None and not isinstance(account, str) and hasattr(account, "image_pull_secrets"):
                names = [n for n in account.image_pull_secrets if n]
        results = await asyncio.gather(*(secrets.get_secret(namespace, n) for n in dict.fromkeys(names)))
        return dict(zip(dict.fromkeys(names), results, strict=True)), account

    def plan(
        self,
        template: PodTemplate,
        cluster: ClusterView,
        secrets: Mapping[str, SecretResult],
        account: AccountResult,
    ) -> PodPlan:
        return plan_pod(template, cluster, secrets, account)

    async def check_template(
        self, template: PodTemplate, cluster: ClusterView, secrets: SecretSource, *, offline: bool
    ) -> ObjectVerdict:
        namespace = template.object.namespace
        if namespace in self.options.exempt_namespaces:
            return ObjectVerdict(template.object, True, (), (), exempt=f"namespace {namespace} is exempt")
        found, account = await self.gather(template, secrets, cluster.pods_admitted)
        plan = self.plan(template, cluster, found, account)
        images: list[ImageVerdict] = [planned_only(p) for p in plan.images] if offline else []
        if not offline:
            raise NotImplementedError("online checks are provided by the registry engine")
        allowed = is_allowed(images, plan.findings, self.options.on_unknown)
        return ObjectVerdict(template.object, allowed, plan.findings, tuple(images))

    async def check_object(
        self,
        obj: Mapping[str, Any],
        cluster: ClusterView,
        secrets: SecretSource,
        *,
        default_namespace: str,
        source: str = "",
        offline: bool = False,
    ) -> ObjectVerdict | None:
        """Check one manifest; None when it is not a workload. Malformed objects become a verdict."""
        try:
            template = extract(obj, default_namespace, source)
        except InputError as exc:
            ref: ObjectRef = object_ref(obj, default_namespace, source)
            finding = Finding("invalid-object", exc.field, exc.message, "error")
            return ObjectVerdict(ref, False, (finding,), ())
        if template is None:
            return None
        return await self.check_template(template, cluster, secrets, offline=offline)

    async def check_many(
        self,
        objects: Sequence[tuple[Mapping[str, Any], str]],
        cluster: ClusterView,
        secrets: SecretSource,
        *,
        default_namespace: str,
        offline: bool = False,
    ) -> list[ObjectVerdict]:
        results = await asyncio.gather(
            *(
                self.check_object(obj, cluster, secrets, default_namespace=default_namespace, source=src, offline=offline)
                for obj, src in objects
            )
        )
        return [r for r in results if r is not None]
