"""Reading what the local policy evaluation needs: a role's policies, a repository's policy, and
the registry's pull-through cache rules.

* Role (IAM ``GetRole``, ``ListRolePolicies``/``GetRolePolicy``, ``ListAttachedRolePolicies``,
  ``GetPolicy`` + ``GetPolicyVersion`` at the **default version**): inline and attached managed
  policies, and the permissions boundary. IAM reads only the caller's own account, so a role in
  another account than pullguard's credentials cannot be read — said so, never guessed (``GetRole``
  by name would otherwise find a same-named role of the wrong account: the ARN is compared).
* Repository policy (ECR ``GetRepositoryPolicy`` with ``registryId`` = the image's account, in
  the image's region): None when the repository has none.
* Pull-through cache rules (ECR ``DescribePullThroughCacheRules``): which repository prefixes are
  caches of which upstream registry.

Everything is cached (TTL, single flight): one admission burst reads each role once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from webhook.adapters.aws.clients import AwsClients
from webhook.adapters.aws.errors import AwsCallError
from webhook.core.ecr import RoleArn, parse_role_arn
from webhook.core.iam_policy import BOUNDARY, IDENTITY, RESOURCE, Policy, PolicyError, parse_policy
from webhook.core.registries import EcrHost
from webhook.memo import Memo

MAX_PAGES = 20


@dataclass(frozen=True, slots=True)
class RolePolicies:
    role: RoleArn
    identity: tuple[Policy, ...]
    boundary: Policy | None


@dataclass(frozen=True, slots=True)
class CacheRule:
    prefix: str
    upstream: str


class RoleUnreadableError(Exception):
    """The role's policies cannot be read; ``message`` says why and what to grant."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _document(raw: Any) -> dict[str, Any] | str:
    """IAM returns policy documents URL-encoded; botocore usually decodes them already."""
    if isinstance(raw, dict):
        return raw
    text = str(raw)
    return text if text.lstrip().startswith("{") else unquote(text)


class PolicyReader:
    def __init__(
        self, clients: AwsClients, *, ttl: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._aws = clients
        self._roles: Memo[RolePolicies] = Memo(ttl, clock=clock)
        self._managed: Memo[Policy] = Memo(max(ttl, 300.0), clock=clock)
        self._repo_policies: Memo[str | None] = Memo(ttl, clock=clock)
        self._rules: Memo[tuple[CacheRule, ...]] = Memo(max(ttl, 300.0), clock=clock)
        self._account: Memo[str] = Memo(3600.0, clock=clock)

    # -- pullguard's own account -------------------------------------------------------------------

    async def own_account(self) -> str | None:
        try:
            return await self._account.get("self", self._caller_account)
        except AwsCallError:
            return None

    async def _caller_account(self) -> str:
        answer = await self._aws.call("sts", "get_caller_identity")
        return str(answer.get("Account") or "")

    # -- roles -------------------------------------------------------------------------------------

    async def role(self, role: RoleArn) -> RolePolicies:
        """The role's identity policies and boundary; raises ``RoleUnreadableError`` with the reason."""
        return await self._roles.get(role.arn, lambda: self._load_role(role))

    async def _load_role(self, role: RoleArn) -> RolePolicies:
        try:
            answer = await self._aws.call("iam", "get_role", RoleName=role.name)
        except AwsCallError as exc:
            if exc.kind == "not-found":
                own = await self.own_account()
                if own and own != role.account:
                    raise RoleUnreadableError(self._other_account(role, own)) from None
                raise RoleUnreadableError(
                    f"IAM has no role {role.name} (GetRole: {exc.reason}); check the role ARN {role.arn}"
                ) from None
            raise RoleUnreadableError(self._unreadable(role, exc)) from None
        found = answer.get("Role") or {}
        got = parse_role_arn(str(found.get("Arn") or ""))
        if got is None or got.account != role.account or got.name.lower() != role.name.lower():
            # A same-named role in the account whose credentials pullguard has, not the node's.
            raise RoleUnreadableError(self._other_account(role, got.account if got else "?"))
        boundary_arn = (found.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        try:
            inline, attached, boundary = await asyncio.gather(
                self._inline(role),
                self._attached(role),
                self._boundary(str(boundary_arn) if boundary_arn else None),
            )
        except AwsCallError as exc:
            raise RoleUnreadableError(self._unreadable(role, exc)) from None
        except PolicyError as exc:
            raise RoleUnreadableError(f"a policy of role {role.name} cannot be read: {exc.message}") from None
        return RolePolicies(role, tuple(inline + attached), boundary)

    async def _boundary(self, arn: str | None) -> Policy | None:
        return await self._managed_policy(arn, BOUNDARY, "permissions boundary") if arn else None

    @staticmethod
    def _other_account(role: RoleArn, own: str) -> str:
        return (
            f"role {role.arn} is in account {role.account}, but pullguard's AWS credentials are for account "
            f"{own}; IAM shows a role's policies only inside its own account — run pullguard with "
            "credentials of that account, or use aws.policyEvaluation: simulate there"
        )

    @staticmethod
    def _unreadable(role: RoleArn, exc: AwsCallError) -> str:
        if exc.kind in ("access", "credentials"):
            return (
                f"pullguard's own AWS identity may not read the policies of role {role.name} "
                f"({exc.operation}: {exc.reason}); grant it iam:GetRole, iam:ListRolePolicies, "
                "iam:GetRolePolicy, "
                "iam:ListAttachedRolePolicies, iam:GetPolicy and iam:GetPolicyVersion"
            )
        return f"the policies of role {role.name} could not be read ({exc.message})"

    async def _pages(self, operation: str, key: str, **params: Any) -> list[Any]:
        items: list[Any] = []
        marker: str | None = None
        for _ in range(MAX_PAGES):
            extra = {"Marker": marker} if marker else {}
            answer = await self._aws.call("iam", operation, **params, **extra)
            items.extend(answer.get(key) or [])
            if not answer.get("IsTruncated"):
                break
            marker = str(answer.get("Marker") or "") or None
            if marker is None:
                break
        return items

    async def _inline(self, role: RoleArn) -> list[Policy]:
        names = await self._pages("list_role_policies", "PolicyNames", RoleName=role.name)

        async def one(name: str) -> Policy:
            got = await self._aws.call("iam", "get_role_policy", RoleName=role.name, PolicyName=name)
            doc = _document(got.get("PolicyDocument"))
            return parse_policy(doc, f"inline policy {name} of role {role.name}", IDENTITY)

        return list(await asyncio.gather(*(one(str(n)) for n in names)))

    async def _attached(self, role: RoleArn) -> list[Policy]:
        attached = await self._pages("list_attached_role_policies", "AttachedPolicies", RoleName=role.name)

        async def one(arn: str) -> Policy:
            owner = "AWS managed policy" if ":iam::aws:policy/" in arn else "managed policy"
            return await self._managed_policy(arn, IDENTITY, owner)

        return list(await asyncio.gather(*(one(str(i.get("PolicyArn") or "")) for i in attached)))

    async def _managed_policy(self, arn: str, kind: str, owner: str) -> Policy:
        return await self._managed.get((arn, kind), lambda: self._load_managed(arn, kind, owner))

    async def _load_managed(self, arn: str, kind: str, owner: str) -> Policy:
        meta = (await self._aws.call("iam", "get_policy", PolicyArn=arn)).get("Policy") or {}
        version = str(meta.get("DefaultVersionId") or "v1")
        got = await self._aws.call("iam", "get_policy_version", PolicyArn=arn, VersionId=version)
        doc = _document((got.get("PolicyVersion") or {}).get("Document"))
        name = str(meta.get("PolicyName") or arn.rsplit("/", 1)[-1])
        return parse_policy(doc, f"{owner} {name} ({version})", kind)

    # -- repositories ------------------------------------------------------------------------------

    async def repository_policy(self, host: EcrHost, repository: str) -> Policy | None:
        """The repository policy, None when it has none; raises ``AwsCallError`` (kind ``not-found``
        when the repository itself does not exist) or ``PolicyError``."""
        text = await self.repository_policy_text(host, repository)
        return parse_policy(text, f"repository policy of {repository}", RESOURCE) if text else None

    async def repository_policy_text(self, host: EcrHost, repository: str) -> str | None:
        """The raw policy text, or None when the repository has none (cached; the simulator takes it raw)."""
        key = (host.account, host.region, repository)
        return await self._repo_policies.get(key, lambda: self._load_repository_policy_text(host, repository))

    async def _load_repository_policy_text(self, host: EcrHost, repository: str) -> str | None:
        try:
            got = await self._aws.call(
                "ecr",
                "get_repository_policy",
                host.region,
                registryId=host.account,
                repositoryName=repository,
            )
        except AwsCallError as exc:
            if exc.code == "RepositoryPolicyNotFoundException":
                return None
            raise
        return str(got.get("policyText") or "") or None

    async def cache_rules(self, host: EcrHost) -> tuple[CacheRule, ...]:
        return await self._rules.get((host.account, host.region), lambda: self._load_rules(host))

    async def _load_rules(self, host: EcrHost) -> tuple[CacheRule, ...]:
        rules: list[CacheRule] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            extra = {"nextToken": token} if token else {}
            got = await self._aws.call(
                "ecr", "describe_pull_through_cache_rules", host.region, registryId=host.account, **extra
            )
            for rule in got.get("pullThroughCacheRules") or []:
                rules.append(
                    CacheRule(
                        str(rule.get("ecrRepositoryPrefix") or ""), str(rule.get("upstreamRegistryUrl") or "")
                    )
                )
            token = got.get("nextToken")
            if not token:
                break
        return tuple(r for r in rules if r.prefix)


def matching_rule(rules: tuple[CacheRule, ...], repository: str) -> CacheRule | None:
    """The pull-through cache rule whose prefix covers ``repository`` (``<prefix>/<upstream path>``)."""
    best = None
    for rule in rules:
        if repository.startswith(rule.prefix + "/") and (best is None or len(rule.prefix) > len(best.prefix)):
            best = rule
    return best


def policy_json(policy_text: str, repository_arn: str) -> str:
    """A repository policy with its implied ``Resource`` written out (the simulator evaluates
    statements against the resources it is given; an ECR repository policy omits Resource)."""
    doc = json.loads(policy_text)
    statements = doc.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements or []:
        if isinstance(st, dict) and "Resource" not in st and "NotResource" not in st:
            st["Resource"] = repository_arn
    doc["Statement"] = statements
    return json.dumps(doc)
