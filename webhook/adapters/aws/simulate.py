"""``aws.policyEvaluation: simulate`` — let IAM's policy simulator decide (iam:SimulatePrincipalPolicy).

For production accounts whose policies use conditions pullguard cannot evaluate locally, or whose
decisions depend on AWS Organizations SCPs (the simulator includes them; local evaluation cannot
see them). Two calls per (role, repository), as IAM documents the API ("SimulatePrincipalPolicy"):

* ``ecr:GetAuthorizationToken`` on ``*`` (identity policies only);
* ``ecr:BatchGetImage``, ``ecr:GetDownloadUrlForLayer`` (and the pull-through actions) on the
  repository ARN, with the repository policy as ``ResourcePolicy`` — its implied ``Resource``
  written out — ``CallerArn`` = the role (the policy's Principal needs a caller) and
  ``ResourceOwner`` = the repository's account when it is another account.

The simulator does not know that a cross-account request also needs a resource policy when none
is given, so without a repository policy a cross-account pull is refused here, as AWS refuses it.
``MissingContextValues`` (condition keys the simulator was not given) make the answer unknown,
naming the keys. The results are turned into the same ``PullJudgement`` as local evaluation, so
messages and fixes read the same in both modes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from webhook.adapters.aws.clients import AwsClients
from webhook.adapters.aws.policies import policy_json
from webhook.core.ecr import (
    BATCH_GET_IMAGE,
    BATCH_IMPORT_UPSTREAM_IMAGE,
    CREATE_REPOSITORY,
    GET_AUTHORIZATION_TOKEN,
    GET_DOWNLOAD_URL_FOR_LAYER,
    ORGANIZATIONS,
    ActionCheck,
    PullJudgement,
    PullThrough,
    RoleArn,
    repository_arn,
)
from webhook.core.iam_policy import (
    ALLOWED,
    BOUNDARY,
    EXPLICIT_DENY,
    IDENTITY,
    IMPLICIT_DENY,
    RESOURCE,
    UNKNOWN,
    Decision,
    Request,
)
from webhook.core.registries import EcrHost

_DECISIONS = {"allowed": ALLOWED, "explicitDeny": EXPLICIT_DENY, "implicitDeny": IMPLICIT_DENY}


def _context(region: str) -> list[dict[str, Any]]:
    return [
        {"ContextKeyName": "aws:SecureTransport", "ContextKeyValues": ["true"], "ContextKeyType": "boolean"},
        {"ContextKeyName": "aws:RequestedRegion", "ContextKeyValues": [region], "ContextKeyType": "string"},
        {"ContextKeyName": "aws:ViaAWSService", "ContextKeyValues": ["false"], "ContextKeyType": "boolean"},
    ]


def _statements(items: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    out = []
    for st in items:
        pid = str(st.get("SourcePolicyId") or "a policy")
        kind = str(st.get("SourcePolicyType") or "")
        out.append(f"policy {pid}" + (f" ({kind})" if kind else ""))
    return tuple(out)


def _decision(result: Mapping[str, Any], request: Request, cross: bool) -> Decision:
    """One ``EvaluationResult`` (or its resource-specific part) as a ``Decision``."""
    specific = result.get("ResourceSpecificResults") or []
    part: Mapping[str, Any] = specific[0] if specific else result
    raw = str(part.get("EvalResourceDecision") or result.get("EvalDecision") or "")
    decision = _DECISIONS.get(raw, UNKNOWN)
    missing_context = list(result.get("MissingContextValues") or []) + list(
        part.get("MissingContextValues") or []
    )
    matched = _statements(list(part.get("MatchedStatements") or result.get("MatchedStatements") or []))
    if missing_context:
        keys = ", ".join(dict.fromkeys(str(k) for k in missing_context))
        return Decision(
            UNKNOWN,
            request,
            unknowns=(f"the condition keys {keys}, which the policy simulator was not given",),
            cross_account=cross,
        )
    if decision == EXPLICIT_DENY:
        return Decision(
            EXPLICIT_DENY, request, denied_by=matched or ("a Deny statement",), cross_account=cross
        )
    if decision == ALLOWED:
        return Decision(ALLOWED, request, allowed_by=matched, cross_account=cross)
    if decision == UNKNOWN:
        return Decision(UNKNOWN, request, unknowns=(f"the simulator's answer {raw!r}",), cross_account=cross)
    missing: list[str] = []
    org = result.get("OrganizationsDecisionDetail") or {}
    if org.get("AllowedByOrganizations") is False:
        missing.append(ORGANIZATIONS)
    bound = (
        part.get("PermissionsBoundaryDecisionDetail") or result.get("PermissionsBoundaryDecisionDetail") or {}
    )
    if bound.get("AllowedByPermissionsBoundary") is False:
        missing.append(BOUNDARY)
    details = part.get("EvalDecisionDetails") or result.get("EvalDecisionDetails") or {}
    for source, value in dict(details).items():
        if value == "implicitDeny":
            name = str(source).lower()
            kind = RESOURCE if "resource" in name else BOUNDARY if "boundary" in name else IDENTITY
            if kind not in missing:
                missing.append(kind)
    if not missing:
        missing.append(IDENTITY)
    return Decision(IMPLICIT_DENY, request, missing=tuple(missing), cross_account=cross)


async def _simulate(aws: AwsClients, **params: Any) -> dict[str, Mapping[str, Any]]:
    results: dict[str, Mapping[str, Any]] = {}
    marker: str | None = None
    for _ in range(10):
        extra = {"Marker": marker} if marker else {}
        got = await aws.call("iam", "simulate_principal_policy", **params, **extra)
        for item in got.get("EvaluationResults") or []:
            results[str(item.get("EvalActionName") or "").lower()] = item
        marker = got.get("Marker") if got.get("IsTruncated") else None
        if not marker:
            break
    return results


async def simulate_pull(
    aws: AwsClients,
    role: RoleArn,
    kind: str,
    group: str | None,
    host: EcrHost,
    repository: str,
    repository_policy_text: str | None,
    pull_through: PullThrough | None,
) -> PullJudgement:
    """The pull judgement from IAM's policy simulator (raises ``AwsCallError``)."""
    repo_arn = repository_arn(host, repository)
    cross = host.account != role.account
    context = _context(host.region)
    token = await _simulate(
        aws,
        PolicySourceArn=role.arn,
        ActionNames=[GET_AUTHORIZATION_TOKEN],
        ResourceArns=["*"],
        ContextEntries=context,
    )
    actions = [BATCH_GET_IMAGE, GET_DOWNLOAD_URL_FOR_LAYER]
    if pull_through is not None:
        actions.append(BATCH_IMPORT_UPSTREAM_IMAGE)
        if not pull_through.repository_exists:
            actions.append(CREATE_REPOSITORY)
    params: dict[str, Any] = {
        "PolicySourceArn": role.arn,
        "ActionNames": actions,
        "ResourceArns": [repo_arn],
        "ContextEntries": context,
    }
    if repository_policy_text:
        params["ResourcePolicy"] = policy_json(repository_policy_text, repo_arn)
        params["CallerArn"] = role.arn
        if cross:
            params["ResourceOwner"] = f"arn:{host.partition}:iam::{host.account}:root"
    repo = await _simulate(aws, **params)
    checks = []
    for action, resource, results in [(GET_AUTHORIZATION_TOKEN, "*", token)] + [
        (a, repo_arn, repo) for a in actions
    ]:
        request = Request(role.arn, action, resource)
        found = results.get(action.lower())
        if found is None:
            decision = Decision(UNKNOWN, request, unknowns=("no simulator result for this action",))
        else:
            decision = _decision(found, request, cross and resource != "*")
        needs_policy = action in (BATCH_GET_IMAGE, GET_DOWNLOAD_URL_FOR_LAYER, BATCH_IMPORT_UPSTREAM_IMAGE)
        if cross and needs_policy and not repository_policy_text and decision.decision != EXPLICIT_DENY:
            missing = (*tuple(m for m in decision.missing if m != RESOURCE), RESOURCE)
            if decision.decision == ALLOWED:
                missing = (RESOURCE,)
            decision = Decision(IMPLICIT_DENY, request, missing=missing, cross_account=True)
        checks.append(ActionCheck(action, resource, decision))
    return PullJudgement(
        role, kind, group, repository, repo_arn, host.account, host.region, tuple(checks), pull_through
    )
