"""What an ECR pull needs from IAM, whether a node role has it, and what to grant when it has not.

What: the permissions of an image pull from Amazon ECR private repositories by kubelet's
``ecr-credential-provider`` (kubernetes/cloud-provider-aws ``cmd/ecr-credential-provider``;
ECR User Guide "Using Amazon ECR images with Amazon EKS", "Private repository policies",
"IAM permissions required to sync an upstream registry"; research/domain-facts.md §5.1):

* ``ecr:GetAuthorizationToken`` on ``*`` — it has no resource-level scope, so only an identity
  policy can grant it. The plugin calls it as the node role in the **image's** region. Without it
  the plugin fails, kubelet gets no credentials for the image and pulls anonymously: ECR answers
  401, so this is ``unauthorized``;
* ``ecr:BatchGetImage`` (manifests) and ``ecr:GetDownloadUrlForLayer`` (layers) on the repository
  ARN ``arn:<partition>:ecr:<region>:<account>:repository/<name>``: identity policy **or**
  repository policy in the same account, **both** across accounts; refused → 403 ``forbidden``;
* a pull-through cache repository whose image is not cached yet also needs
  ``ecr:BatchImportUpstreamImage``, and ``ecr:CreateRepository`` while the cache repository does
  not exist.

The EKS node role normally carries the AWS managed policy ``AmazonEC2ContainerRegistryPullOnly``
(formerly ``…ReadOnly``); a Fargate pod execution role ``AmazonEKSFargatePodExecutionRolePolicy``.
The fix text names the role, its node group, the missing actions, and either that policy or the
repository-policy statement to add.

What it deliberately does not do: no I/O (the AWS adapter reads policies and asks the registry),
no existence check (the adapter does that with pullguard's own credentials), no guessing: an
undecidable condition is ``undetermined`` naming the condition.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from webhook.core.iam_policy import (
    ALLOWED,
    BOUNDARY,
    EXPLICIT_DENY,
    IDENTITY,
    IMPLICIT_DENY,
    RESOURCE,
    Decision,
    Policy,
    Request,
    decide,
)
from webhook.core.registries import EcrHost

__all__ = [
    "BATCH_GET_IMAGE",
    "BATCH_IMPORT_UPSTREAM_IMAGE",
    "CREATE_REPOSITORY",
    "GET_AUTHORIZATION_TOKEN",
    "GET_DOWNLOAD_URL_FOR_LAYER",
    "ORGANIZATIONS",
    "PULL_ACTIONS",
    "ActionCheck",
    "PullJudgement",
    "PullThrough",
    "RoleArn",
    "judge_pull",
    "managed_policy_arn",
    "node_context",
    "parse_role_arn",
    "repository_arn",
]

GET_AUTHORIZATION_TOKEN = "ecr:GetAuthorizationToken"  # noqa: S105 - an IAM action name
BATCH_GET_IMAGE = "ecr:BatchGetImage"
GET_DOWNLOAD_URL_FOR_LAYER = "ecr:GetDownloadUrlForLayer"
BATCH_IMPORT_UPSTREAM_IMAGE = "ecr:BatchImportUpstreamImage"
CREATE_REPOSITORY = "ecr:CreateRepository"
#: In the order a pull needs them: the plugin's token first, then manifests, then layers.
PULL_ACTIONS = (GET_AUTHORIZATION_TOKEN, BATCH_GET_IMAGE, GET_DOWNLOAD_URL_FOR_LAYER)
#: The managed policies EKS documents for the node role and the Fargate pod execution role.
NODE_POLICY = "AmazonEC2ContainerRegistryPullOnly"
#: A missing-Allow side the policy simulator reports (local evaluation cannot see SCPs).
ORGANIZATIONS = "organizations"
FARGATE_POLICY = "AmazonEKSFargatePodExecutionRolePolicy"

_ROLE_ARN = re.compile(r"arn:(aws(?:-[a-z]+)*):iam::(\d{12}):role/((?:[\w+=,.@-]+/)*)([\w+=,.@-]+)", re.ASCII)


@dataclass(frozen=True, slots=True)
class RoleArn:
    arn: str
    partition: str
    account: str
    path: str  # "/" or "/eks/nodes/"
    name: str


def parse_role_arn(arn: str) -> RoleArn | None:
    """An IAM role ARN taken apart (``arn:aws:iam::111122223333:role/path/name``), else None."""
    found = _ROLE_ARN.fullmatch(arn)
    if found is None:
        return None
    return RoleArn(arn, found[1], found[2], "/" + found[3], found[4])


def managed_policy_arn(partition: str, name: str) -> str:
    return f"arn:{partition}:iam::aws:policy/{name}"


def repository_arn(host: EcrHost, repository: str) -> str:
    """The repository ARN IAM evaluates (ECR ARN format "
    "``arn:${Partition}:ecr:${Region}:${Account}:repository/${Name}``)."""
    return f"arn:{host.partition}:ecr:{host.region}:{host.account}:repository/{repository}"


def node_context(role: RoleArn, region: str, resource_account: str) -> dict[str, tuple[str, ...]]:
    """Condition keys known for a kubelet pull as ``role`` (lower-case names; empty = absent).

    The node's credentials are an assumed-role session of the instance or pod execution role
    (IAM "AWS global condition context keys"): PrincipalArn is the role ARN, the type
    AssumedRole; the plugin calls over TLS, directly (no service on its behalf), in the image's
    region. Network keys (SourceIp, SourceVpc(e)), organisation, tags and time are not known.
    """
    return {
        "aws:principalarn": (role.arn,),
        "aws:principalaccount": (role.account,),
        "aws:principaltype": ("AssumedRole",),
        "aws:securetransport": ("true",),
        "aws:requestedregion": (region,),
        "aws:resourceaccount": (resource_account,) if resource_account else (),
        "aws:viaawsservice": ("false",),
        "aws:principalisawsservice": ("false",),
        "aws:principalservicename": (),
        "aws:sourceaccount": (),
        "aws:sourcearn": (),
        "aws:username": (),
        "aws:multifactorauthpresent": (),
    }


@dataclass(frozen=True, slots=True)
class PullThrough:
    """The repository is (under) a pull-through cache rule and the image is not cached yet."""

    prefix: str
    upstream: str
    repository_exists: bool


@dataclass(frozen=True, slots=True)
class ActionCheck:
    action: str
    resource: str
    decision: Decision


def _why(check: ActionCheck) -> str:
    """AWS's own wording of an access-denied reason ("… because no identity-based policy allows …")."""
    d = check.decision
    who = d.request.principal_arn
    head = f"{who} is not authorized to perform: {check.action} on resource: {check.resource}"
    if d.decision == EXPLICIT_DENY:
        return f"{head} with an explicit deny in {d.denied_by[0]}"
    if d.decision == IMPLICIT_DENY:
        if d.missing == (ORGANIZATIONS,):
            return f"{head} because no service control policy allows the {check.action} action"
        if d.missing == (BOUNDARY,):
            return f"{head} because no permissions boundary allows the {check.action} action"
        side = "resource-based" if d.missing == (RESOURCE,) else "identity-based"
        return f"{head} because no {side} policy allows the {check.action} action"
    return f"whether {check.action} on {check.resource} is allowed depends on " + "; ".join(d.unknowns)


def _sid(name: str) -> str:
    return "PullBy" + "".join(
        part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name) if part
    )


@dataclass(frozen=True, slots=True)
class PullJudgement:
    """May this role pull from this repository? With AWS-style reasons and the fix."""

    role: RoleArn
    kind: str  # node-role | fargate-role
    group: str | None
    repository: str
    repository_arn: str
    registry_account: str
    region: str
    checks: tuple[ActionCheck, ...]
    pull_through: PullThrough | None = None

    @property
    def denied(self) -> tuple[ActionCheck, ...]:
        return tuple(c for c in self.checks if c.decision.decision in (EXPLICIT_DENY, IMPLICIT_DENY))

    @property
    def unknown(self) -> tuple[ActionCheck, ...]:
        return tuple(
            c for c in self.checks if c.decision.decision not in (ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY)
        )

    @property
    def outcome(self) -> str:
        """pullable | unauthorized (no token: kubelet pulls anonymously) | forbidden | undetermined."""
        denied = {c.action for c in self.denied}
        if GET_AUTHORIZATION_TOKEN in denied:
            return "unauthorized"
        if denied:
            return "forbidden"
        return "undetermined" if self.unknown else "pullable"

    @property
    def _who(self) -> str:
        what = "Fargate pod execution role" if self.kind == "fargate-role" else "node role"
        group = f" (node group {self.group})" if self.group else ""
        return f"{what} {self.role.name}{group}"

    @property
    def detail(self) -> str:
        """Why, in AWS's words, with what kubelet will then see."""
        denied = self.denied
        if denied:
            first = denied[0]
            text = _why(first)
            if first.action == GET_AUTHORIZATION_TOKEN:
                text += (
                    "; ecr-credential-provider gets no token, so kubelet pulls without credentials and ECR "
                    "answers 401"
                )
            others = [c for c in denied[1:]]
            if others:
                text += "; also missing: " + ", ".join(f"{c.action} on {c.resource}" for c in others)
            if self.pull_through is not None and any(
                c.action in (BATCH_IMPORT_UPSTREAM_IMAGE, CREATE_REPOSITORY) for c in denied
            ):
                text += (
                    f" ({self.repository} is a pull-through cache of {self.pull_through.upstream} and this "
                    "image is not cached yet: the first pull imports it)"
                )
            return text
        if self.unknown:
            return f"pullguard cannot decide whether {self._who} may pull: " + "; ".join(
                _why(c) for c in self.unknown
            )
        return f"{self._who} may pull {self.repository} ({', '.join(c.action for c in self.checks)} allowed)"

    @property
    def fix(self) -> str | None:
        """What to grant: the managed policy, the repository-policy statement, the deny to lift."""
        if not self.denied:
            if self.unknown:
                return (
                    "check that condition for this role by hand, or set aws.policyEvaluation: simulate "
                    "so IAM's "
                    "policy simulator decides (it also sees SCPs)"
                )
            return None
        parts: list[str] = []
        explicit = [c for c in self.denied if c.decision.decision == EXPLICIT_DENY]
        for source in dict.fromkeys(c.decision.denied_by[0] for c in explicit):
            actions = ", ".join(c.action for c in explicit if c.decision.denied_by[0] == source)
            parts.append(
                f"remove or narrow {source}: it denies {actions} to {self._who} (for example exclude it "
                "with a "
                f'Condition "ArnNotEquals": {{"aws:PrincipalArn": "{self.role.arn}"}})'
            )
        implicit = [c for c in self.denied if c.decision.decision == IMPLICIT_DENY]
        identity = [c.action for c in implicit if IDENTITY in c.decision.missing]
        resource = [c.action for c in implicit if RESOURCE in c.decision.missing]
        boundary = [c.action for c in implicit if BOUNDARY in c.decision.missing]
        organizations = [c.action for c in implicit if ORGANIZATIONS in c.decision.missing]
        if identity:
            parts.append(self._identity_fix(identity))
        if resource:
            parts.append(self._resource_fix(resource))
        if boundary:
            parts.append(
                f"the permissions boundary of role {self.role.name} does not allow "
                f"{', '.join(boundary)}: add "
                "them to the boundary policy (it caps every other grant)"
            )
        if organizations:
            parts.append(
                f"an AWS Organizations service control policy does not allow {', '.join(organizations)} for "
                f"account {self.role.account}: ask the organization's administrators to allow it"
            )
        return "; ".join(parts)

    def _identity_fix(self, actions: Sequence[str]) -> str:
        name = self.role.name
        ptc_create = CREATE_REPOSITORY in actions
        policy = (
            FARGATE_POLICY
            if self.kind == "fargate-role"
            and not set(actions) & {BATCH_IMPORT_UPSTREAM_IMAGE, CREATE_REPOSITORY}
            else NODE_POLICY
        )
        text = (
            f"attach the AWS managed policy {policy} to {self._who}: aws iam attach-role-policy --role-name "
            f"{name} --policy-arn {managed_policy_arn(self.role.partition, policy)} — or allow "
            f"{', '.join(actions)} in one of its policies"
        )
        if ptc_create:
            assert self.pull_through is not None
            text += (
                f"; {NODE_POLICY} does not grant {CREATE_REPOSITORY}: allow it on "
                f"arn:{self.role.partition}:ecr:{self.region}:{self.registry_account}:repository/"
                f"{self.pull_through.prefix}/* (needed while the cache repository does not exist), or pull "
                "the image once with an identity that may"
            )
        return text

    def _resource_fix(self, actions: Sequence[str]) -> str:
        wanted = [a for a in (BATCH_GET_IMAGE, GET_DOWNLOAD_URL_FOR_LAYER) if a in actions] + [
            a for a in actions if a not in (BATCH_GET_IMAGE, GET_DOWNLOAD_URL_FOR_LAYER)
        ]
        if BATCH_GET_IMAGE in wanted and GET_DOWNLOAD_URL_FOR_LAYER not in wanted:
            wanted.append(GET_DOWNLOAD_URL_FOR_LAYER)
        statement = {
            "Sid": _sid(self.role.name),
            "Effect": "Allow",
            "Principal": {"AWS": self.role.arn},
            "Action": wanted,
        }
        return (
            f"add this statement to the repository policy of {self.repository} in account "
            f"{self.registry_account} (keep its other statements; aws ecr set-repository-policy "
            "--registry-id "
            f"{self.registry_account} --repository-name {self.repository} --region {self.region} "
            f"--policy-text file://policy.json): {json.dumps(statement, separators=(', ', ': '))}"
        )


def judge_pull(
    role: RoleArn,
    kind: str,
    group: str | None,
    host: EcrHost,
    repository: str,
    identity: Sequence[Policy],
    boundary: Policy | None,
    repository_policy: Policy | None,
    pull_through: PullThrough | None = None,
) -> PullJudgement:
    """Evaluate every action the pull needs, locally (the ``local`` policy-evaluation mode)."""
    repo_arn = repository_arn(host, repository)
    context = node_context(role, host.region, host.account)
    wanted: list[tuple[str, str, Policy | None]] = [
        (GET_AUTHORIZATION_TOKEN, "*", None),  # identity policies only: the resource is "*"
        (BATCH_GET_IMAGE, repo_arn, repository_policy),
        (GET_DOWNLOAD_URL_FOR_LAYER, repo_arn, repository_policy),
    ]
    if pull_through is not None:
        existing = repository_policy if pull_through.repository_exists else None
        wanted.append((BATCH_IMPORT_UPSTREAM_IMAGE, repo_arn, existing))
        if not pull_through.repository_exists:
            wanted.append((CREATE_REPOSITORY, repo_arn, None))
    checks = []
    for action, resource, res_policy in wanted:
        req = Request(role.arn, action, resource, context)
        checks.append(ActionCheck(action, resource, decide(req, identity, res_policy, boundary)))
    return PullJudgement(
        role, kind, group, repository, repo_arn, host.account, host.region, tuple(checks), pull_through
    )
