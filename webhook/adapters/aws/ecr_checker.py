"""The ``ecr`` node-identity checker: may the node role (or Fargate pod execution role) pull this image?

kubelet's ``ecr-credential-provider`` gets an authorization token **as the node role** and the
registry then applies that role's permissions (research/domain-facts.md §5.1). pullguard cannot
act as the node role, so it answers in two independent parts:

1. **Existence and platforms**, with pullguard's *own* credentials: ``ecr:GetAuthorizationToken``
   in the image's region (the token belongs to the principal and works on every registry it may
   read), then the registry data plane through the shared ``RegistryClient`` — HEAD the manifest,
   read the index or config for the platform check (``aws.registryEndpoints`` may send the ECR
   host elsewhere: mirrors, tests).
2. **Permission of the node role**, without acting as it: its identity policies, permissions
   boundary and the repository policy evaluated locally (``core.iam_policy``), or
   ``iam:SimulatePrincipalPolicy`` when ``aws.policyEvaluation: simulate``.

Answers: ``pullable``; ``unauthorized`` (no ecr:GetAuthorizationToken: the plugin fails, kubelet
pulls anonymously, ECR answers 401); ``forbidden`` (no BatchGetImage/GetDownloadUrlForLayer, or a
pull-through import it may not do); ``not-found``; or ``undetermined`` naming what pullguard could
not learn (the role is not known, its own AWS credentials were refused, a condition it cannot
evaluate) — each with the fix text in ``Observation.fix``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from webhook.adapters.aws.clients import AwsClients
from webhook.adapters.aws.errors import AwsCallError
from webhook.adapters.aws.policies import PolicyReader, RoleUnreadableError, matching_rule
from webhook.adapters.aws.simulate import simulate_pull
from webhook.adapters.registry import RegistryClient
from webhook.core.assess import Observation
from webhook.core.ecr import PullJudgement, PullThrough, RoleArn, judge_pull, parse_role_arn, repository_arn
from webhook.core.iam_policy import PolicyError
from webhook.core.identity import PlannedAttempt, StaticCredential
from webhook.core.redact import Secret
from webhook.core.reference import ImageReference
from webhook.core.registries import EcrHost, parse_ecr_host
from webhook.memo import Memo

#: The plugin caches a token for half its validity; pullguard does the same, never less than this
#: (moto's tokens claim to have expired in 2015), never more than 6 h.
TOKEN_TTL_FLOOR = 60.0
TOKEN_TTL_CEILING = 6 * 3600.0
_NODE_KINDS = ("node-role", "fargate-role")
_OWN_GRANTS = "ecr:GetAuthorizationToken, ecr:BatchGetImage and ecr:GetDownloadUrlForLayer"


@dataclass(frozen=True, slots=True)
class EcrOptions:
    policy_evaluation: str = "local"  # local | simulate
    policy_ttl: float = 60.0


@dataclass(frozen=True, slots=True)
class _Token:
    credential: StaticCredential | None
    problem: str | None  # why pullguard has no token
    ttl: float
    refused: bool = False  # pullguard's own credentials are invalid: nothing else will work either


class EcrChecker:
    """Implements ``ports.NodeIdentityChecker`` for attempts whose provider kind is ``ecr``."""

    def __init__(
        self,
        clients: AwsClients,
        registry: RegistryClient,
        options: EcrOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._aws = clients
        self._registry = registry
        self.options = options or EcrOptions()
        self._policies = PolicyReader(clients, ttl=self.options.policy_ttl, clock=clock)
        self._tokens: Memo[_Token] = Memo(TOKEN_TTL_FLOOR, clock=clock)
        self._wall = wall_clock

    # -- pullguard's own token ---------------------------------------------------------------------

    async def _own_token(self, region: str) -> _Token:
        return await self._tokens.get(region, lambda: self._fetch_token(region), ttl_of=lambda t: t.ttl)

    async def _fetch_token(self, region: str) -> _Token:
        try:
            got = await self._aws.call("ecr", "get_authorization_token", region)
        except AwsCallError as exc:
            return _Token(None, self._own_refusal(exc, region), 0.0, refused=exc.kind == "credentials")
        data = (got.get("authorizationData") or [{}])[0]
        try:
            decoded = base64.b64decode(str(data.get("authorizationToken") or ""), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user, sep, password = decoded.partition(":")
        if not sep or not password:
            return _Token(None, "ECR GetAuthorizationToken returned a token that is not user:password", 0.0)
        ttl = TOKEN_TTL_FLOOR
        expires = data.get("expiresAt")
        if isinstance(expires, dt.datetime):
            remaining = (expires - self._wall()).total_seconds()
            ttl = min(max(remaining / 2, TOKEN_TTL_FLOOR), TOKEN_TTL_CEILING)
        return _Token(StaticCredential(user, Secret(password)), None, ttl)

    @staticmethod
    def _own_refusal(exc: AwsCallError, region: str) -> str:
        if exc.kind == "credentials":
            return (
                f"pullguard's own AWS credentials were refused by ECR in {region} ({exc.reason}); "
                "without them "
                "it cannot see the image — fix the credentials pullguard runs with (IRSA/Pod Identity "
                "role in "
                "the cluster, environment or profile in CI)"
            )
        if exc.kind == "access":
            return (
                f"pullguard's own AWS identity may not call ecr:GetAuthorizationToken in {region} "
                f"({exc.reason}); "
                f"grant it {_OWN_GRANTS} on the repositories it checks"
            )
        return f"pullguard could not get an ECR token in {region}: {exc.message}"

    # -- the check ---------------------------------------------------------------------------------

    async def check(self, ref: ImageReference, attempt: PlannedAttempt) -> Observation:
        host = parse_ecr_host(ref.domain)
        if host is None:
            return Observation(
                "undetermined",
                detail=f"{ref.domain} is not an ECR private registry host, although the ecr credential "
                "provider's matchImages cover it; pullguard cannot tell what the plugin will do",
                fix="narrow cluster.credentialProviders matchImages to ECR hosts, or check this image by "
                "hand",
            )
        crossing = self._other_partition(ref, host, attempt)
        if crossing is not None:
            return crossing
        token = await self._own_token(host.region)
        if token.refused:
            return Observation(
                "undetermined",
                detail=token.problem,
                fix="give pullguard working AWS credentials: an IRSA or EKS Pod Identity role for its "
                "ServiceAccount in the cluster, AWS_* environment variables or a profile in CI",
            )
        # Existence (pullguard's own view) and the node role's permission are independent: ask both at once.
        (seen, own_problem), (judgement, problem) = await asyncio.gather(
            self._existence(ref, token), self._judge(ref, host, attempt, None)
        )
        if seen is not None and seen.result not in ("pullable", "unauthorized", "forbidden"):
            if seen.result == "not-found":
                return await self._not_found(ref, host, attempt, seen)
            return seen  # unreachable, timeout, rate-limited, refused-destination, digest-mismatch, ...
        exists = True if seen is not None and seen.result == "pullable" else None
        if seen is not None and seen.result in ("unauthorized", "forbidden"):
            own_problem = (
                f"pullguard's own AWS identity may not read {ref.path} ({seen.status or ''} {seen.code or ''}"
                f"{': ' + seen.detail if seen.detail else ''}), so it cannot see whether the image exists; "
                f"grant it {_OWN_GRANTS} on {repository_arn(host, ref.path)}"
            ).replace("( ", "(")
        if judgement is None:
            detail = problem or "the node role is not known"
            if own_problem:
                detail += f"; also: {own_problem}"
            return Observation(
                "undetermined", detail=detail, exists=exists, fix=self._configure_fix(attempt, problem)
            )
        outcome = judgement.outcome
        if outcome == "pullable":
            if seen is None or seen.result != "pullable":
                return Observation(
                    "undetermined",
                    detail=f"{judgement.detail}, but {own_problem}",
                    exists=exists,
                    fix=f"grant pullguard's own AWS identity {_OWN_GRANTS} on {judgement.repository_arn}",
                )
            return Observation("pullable", 200, digest=seen.digest, manifest=seen.manifest, exists=True)
        return self._judged(judgement, exists, own_problem if outcome == "undetermined" else None)

    @staticmethod
    def _other_partition(ref: ImageReference, host: EcrHost, attempt: PlannedAttempt) -> Observation | None:
        """Credentials never cross partitions: an aws-cn role cannot get a token from a commercial ECR."""
        ident = attempt.node_identity
        role = parse_role_arn(ident.principal) if ident is not None else None
        if role is None or role.partition == host.partition:
            return None
        return Observation(
            "unauthorized",
            401,
            "UNAUTHORIZED",
            f"role {role.arn} is in partition {role.partition} and {ref.domain} in {host.partition}: its "
            "credentials cannot get an ECR token there, so kubelet pulls without credentials",
            fix=f"pull from a registry in partition {role.partition} (replicate the image there), or run "
            "these "
            f"pods on nodes whose role is in partition {host.partition}",
        )

    async def _existence(self, ref: ImageReference, token: _Token) -> tuple[Observation | None, str | None]:
        if token.credential is None:
            return None, token.problem
        return await self._registry.check(ref, token.credential, want_manifest=True), None

    @staticmethod
    def _judged(judgement: PullJudgement, exists: bool | None, extra: str | None) -> Observation:
        outcome = judgement.outcome
        detail = judgement.detail + (f"; also: {extra}" if extra else "")
        if outcome == "unauthorized":
            return Observation("unauthorized", 401, "UNAUTHORIZED", detail, exists=exists, fix=judgement.fix)
        if outcome == "forbidden":
            return Observation("forbidden", 403, "DENIED", detail, exists=exists, fix=judgement.fix)
        return Observation("undetermined", detail=detail, exists=exists, fix=judgement.fix)

    @staticmethod
    def _configure_fix(attempt: PlannedAttempt, problem: str | None) -> str:
        if attempt.node_identity is None:
            group = attempt.identity.node_group
            where = f"cluster.nodeGroups entry {group}" if group else "a cluster.nodeGroups entry"
            return (
                "set identity.awsRoleArn (node groups) or identity.fargatePodExecutionRoleArn (Fargate "
                "profiles) "
                f"on {where} in the configuration — or let the webhook discover the nodes' roles "
                "(it needs ec2:DescribeInstances, iam:GetInstanceProfile and eks:ListFargateProfiles, "
                "eks:DescribeFargateProfile)"
            )
        return "give pullguard's own AWS identity read access to the role and repository policies named above"

    # -- permission ----------------------------------------------------------------------------------

    async def _judge(
        self, ref: ImageReference, host: EcrHost, attempt: PlannedAttempt, pull_through: PullThrough | None
    ) -> tuple[PullJudgement | None, str | None]:
        """The node role's judgement, or None and why it could not be made."""
        ident = attempt.node_identity
        group = attempt.identity.node_group
        if ident is None:
            where = f" of node group {group}" if group else ""
            return None, (
                f"the IAM role of the nodes{where} is not known, so pullguard cannot tell whether "
                f"ecr-credential-provider may pull {ref.path}"
            )
        if ident.kind not in _NODE_KINDS:
            return (
                None,
                f"the nodes{' of ' + group if group else ''} pull as {ident.kind}, not as an IAM role",
            )
        role = parse_role_arn(ident.principal)
        if role is None:
            return None, f"{ident.principal} is not an IAM role ARN"
        if role.partition != host.partition:
            return None, (
                f"role {role.arn} is in partition {role.partition} and {ref.domain} in {host.partition}: "
                "its credentials cannot authenticate there"
            )
        try:
            if self.options.policy_evaluation == "simulate":
                text = await self._policies.repository_policy_text(host, ref.path)
                return await simulate_pull(
                    self._aws, role, ident.kind, group, host, ref.path, text, pull_through
                ), None
            return await self._local(role, ident.kind, group, host, ref.path, pull_through), None
        except RoleUnreadableError as exc:
            return None, exc.message
        except PolicyError as exc:
            return None, f"a policy cannot be evaluated: {exc.message}"
        except AwsCallError as exc:
            return None, self._read_problem(exc, host, ref.path)

    async def _local(
        self,
        role: RoleArn,
        kind: str,
        group: str | None,
        host: EcrHost,
        repository: str,
        pull_through: PullThrough | None,
    ) -> PullJudgement:
        if pull_through is None or pull_through.repository_exists:
            policies, repo_policy = await asyncio.gather(
                self._policies.role(role), self._policies.repository_policy(host, repository)
            )
        else:
            policies, repo_policy = await self._policies.role(role), None
        return judge_pull(
            role,
            kind,
            group,
            host,
            repository,
            policies.identity,
            policies.boundary,
            repo_policy,
            pull_through,
        )

    @staticmethod
    def _read_problem(exc: AwsCallError, host: EcrHost, repository: str) -> str:
        if exc.operation == "get_repository_policy":
            if exc.kind in ("access", "credentials"):
                return (
                    f"pullguard's own AWS identity may not read the repository policy of {repository} "
                    f"({exc.reason}); grant it ecr:GetRepositoryPolicy on {repository_arn(host, repository)}"
                )
            if exc.kind == "not-found":
                return f"ECR in {host.region} does not know repository {repository} of account {host.account}"
        if exc.operation == "simulate_principal_policy" and exc.kind in ("access", "credentials"):
            return (
                f"pullguard's own AWS identity may not call iam:SimulatePrincipalPolicy ({exc.reason}); "
                "grant it, "
                "or use aws.policyEvaluation: local"
            )
        return f"pullguard could not read what the decision needs: {exc.message}"

    # -- missing images, pull-through caches ----------------------------------------------------------

    async def _not_found(
        self, ref: ImageReference, host: EcrHost, attempt: PlannedAttempt, seen: Observation
    ) -> Observation:
        looked = f"pullguard looked with its own AWS credentials and {ref.domain} has no such manifest"
        try:
            rule = matching_rule(await self._policies.cache_rules(host), ref.path)
        except AwsCallError as exc:
            note = f" (the registry's pull-through cache rules could not be read: {exc.reason})"
            return Observation("not-found", seen.status, seen.code, looked + note, exists=False)
        if rule is None:
            return Observation("not-found", seen.status, seen.code, looked, exists=False)
        exists = await self._repository_exists(host, ref.path)
        ptc = PullThrough(rule.prefix, rule.upstream, exists is not False)
        judgement, problem = await self._judge(ref, host, attempt, ptc)
        if judgement is None:
            return Observation("undetermined", detail=problem, fix=self._configure_fix(attempt, problem))
        if judgement.outcome == "pullable":
            return Observation(
                "undetermined",
                detail=f"{ref.path} is not cached yet in the pull-through cache of {rule.upstream}: the "
                "first "
                f"pull imports it, and {judgement.detail}; whether {rule.upstream} has it was not checked",
                fix=f"check that {ref.path.removeprefix(rule.prefix + '/')} exists on {rule.upstream}",
            )
        return self._judged(judgement, None, None)

    async def _repository_exists(self, host: EcrHost, repository: str) -> bool | None:
        try:
            await self._aws.call(
                "ecr",
                "describe_repositories",
                host.region,
                registryId=host.account,
                repositoryNames=[repository],
            )
        except AwsCallError as exc:
            return False if exc.code == "RepositoryNotFoundException" else None
        return True
