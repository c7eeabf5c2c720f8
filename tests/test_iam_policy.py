"""The IAM policy evaluator, table-tested against the rules of the IAM User Guide ("Policy evaluation
logic", "Cross-account policy evaluation logic", "IAM JSON policy elements", "Condition operators")."""

from __future__ import annotations

from typing import Any

import pytest

from webhook.core.ecr import node_context, parse_role_arn
from webhook.core.iam_policy import (
    ALLOWED,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    UNKNOWN,
    PolicyError,
    Request,
    decide,
    parse_policy,
    wildcard_match,
)

ACCT = "123456789012"
OTHER = "210987654321"
ROLE = f"arn:aws:iam::{ACCT}:role/ng-a"
REPO = f"arn:aws:ecr:us-east-1:{ACCT}:repository/team/app"
OTHER_REPO = f"arn:aws:ecr:us-east-1:{OTHER}:repository/team/app"
PULL = "ecr:BatchGetImage"

# The AWS managed policies as IAM serves them (moto's copy of AWS's documents).
READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:GetRepositoryPolicy",
                "ecr:DescribeRepositories",
                "ecr:ListImages",
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
                "ecr:GetLifecyclePolicy",
                "ecr:GetLifecyclePolicyPreview",
                "ecr:ListTagsForResource",
                "ecr:DescribeImageScanFindings",
            ],
            "Resource": "*",
        }
    ],
}
PULL_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchImportUpstreamImage",
            ],
            "Resource": "*",
        }
    ],
}


def st(effect: str = "Allow", **fields: Any) -> dict[str, Any]:
    return {"Effect": effect, **fields}


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def request(action: str = PULL, resource: str = REPO, role: str = ROLE) -> Request:
    parsed = parse_role_arn(role)
    assert parsed is not None
    account = resource.split(":")[4] if resource.count(":") >= 5 else ""
    return Request(role, action, resource, node_context(parsed, "us-east-1", account))


def run(
    identity: list[dict[str, Any]],
    resource: dict[str, Any] | None = None,
    boundary: dict[str, Any] | None = None,
    req: Request | None = None,
):
    policies = [parse_policy(d, f"policy p{i}", "identity") for i, d in enumerate(identity)]
    res = parse_policy(resource, "repository policy of team/app", "resource") if resource else None
    bound = parse_policy(boundary, "boundary b", "boundary") if boundary else None
    return decide(req or request(), policies, res, bound)


# -- identity policies ----------------------------------------------------------------------------

IDENTITY_CASES = [
    # allow
    pytest.param([doc(st(Action=PULL, Resource=REPO))], request(), ALLOWED, id="allow-exact"),
    pytest.param([doc(st(Action="ecr:*", Resource="*"))], request(), ALLOWED, id="allow-service-wildcard"),
    pytest.param([doc(st(Action="*", Resource="*"))], request(), ALLOWED, id="allow-star"),
    pytest.param(
        [doc(st(Action="ECR:batchgetimage", Resource=REPO))], request(), ALLOWED, id="action-case-insensitive"
    ),
    pytest.param(
        [doc(st(Action="ecr:BatchGet?mage", Resource=REPO))], request(), ALLOWED, id="action-question-mark"
    ),
    pytest.param(
        [doc(st(Action="ecr:Get*", Resource=REPO))], request(), IMPLICIT_DENY, id="action-prefix-other"
    ),
    pytest.param(
        [doc(st(Action="BatchGetImage", Resource=REPO))], request(), IMPLICIT_DENY, id="action-needs-prefix"
    ),
    # resources
    pytest.param(
        [doc(st(Action=PULL, Resource=f"arn:aws:ecr:*:{ACCT}:repository/team/*"))],
        request(),
        ALLOWED,
        id="resource-wildcard",
    ),
    pytest.param(
        [doc(st(Action=PULL, Resource=f"arn:aws:ecr:*:{ACCT}:repository/team/*"))],
        request(resource=f"arn:aws:ecr:us-east-1:{ACCT}:repository/other/app"),
        IMPLICIT_DENY,
        id="resource-wildcard-miss",
    ),
    pytest.param(
        [doc(st(Action=PULL, Resource=f"arn:aws:ecr:us-east-1:{ACCT}:repository/Team/*"))],
        request(),
        IMPLICIT_DENY,
        id="resource-case-sensitive",
    ),
    pytest.param(
        [doc(st(Action=PULL, Resource=f"arn:aws:ecr:us-east-1:{ACCT}:repository/team/ap?"))],
        request(),
        ALLOWED,
        id="resource-question-mark",
    ),
    pytest.param(
        [doc(st(Action=PULL, Resource="arn:aws:ecr:us-east-1:${aws:PrincipalAccount}:repository/team/*"))],
        request(),
        ALLOWED,
        id="resource-policy-variable",
    ),
    pytest.param(
        [doc(st(Action=PULL, Resource="arn:aws:ecr:us-east-1:*:repository/${aws:PrincipalTag/team}/*"))],
        request(),
        UNKNOWN,
        id="resource-unknown-variable",
    ),
    # nothing, or only other actions
    pytest.param([], request(), IMPLICIT_DENY, id="no-policy"),
    pytest.param(
        [doc(st(Action="s3:GetObject", Resource="*"))], request(), IMPLICIT_DENY, id="other-service"
    ),
    # explicit deny wins
    pytest.param(
        [doc(st(Action="ecr:*", Resource="*"), st("Deny", Sid="NoPull", Action=PULL, Resource=REPO))],
        request(),
        EXPLICIT_DENY,
        id="explicit-deny-wins-same-policy",
    ),
    pytest.param(
        [doc(st(Action="ecr:*", Resource="*")), doc(st("Deny", Action="ecr:*", Resource="*"))],
        request(),
        EXPLICIT_DENY,
        id="explicit-deny-wins-other-policy",
    ),
    pytest.param(
        [doc(st(Action="ecr:*", Resource="*"), st("Deny", Action=PULL, Resource=OTHER_REPO))],
        request(),
        ALLOWED,
        id="deny-elsewhere-does-not-apply",
    ),
    # NotAction / NotResource
    pytest.param([doc(st(NotAction="iam:*", Resource="*"))], request(), ALLOWED, id="notaction-allow"),
    pytest.param(
        [doc(st(NotAction="ecr:*", Resource="*"))], request(), IMPLICIT_DENY, id="notaction-excludes"
    ),
    pytest.param(
        [doc(st(Action="*", Resource="*"), st("Deny", NotAction=["ecr:Describe*"], Resource="*"))],
        request(),
        EXPLICIT_DENY,
        id="deny-notaction",
    ),
    pytest.param(
        [
            doc(
                st(Action="ecr:*", Resource="*"),
                st("Deny", Action="ecr:*", NotResource=f"arn:aws:ecr:*:{ACCT}:*"),
            )
        ],
        request(),
        ALLOWED,
        id="deny-notresource-own-account",
    ),
    pytest.param(
        [
            doc(
                st(Action="ecr:*", Resource="*"),
                st("Deny", Action="ecr:*", NotResource=f"arn:aws:ecr:*:{ACCT}:*"),
            )
        ],
        request(resource=OTHER_REPO),
        EXPLICIT_DENY,
        id="deny-notresource-other-account",
    ),
    # the AWS managed policies
    pytest.param([READ_ONLY], request(), ALLOWED, id="managed-readonly-batchgetimage"),
    pytest.param(
        [READ_ONLY], request("ecr:GetAuthorizationToken", "*"), ALLOWED, id="managed-readonly-token"
    ),
    pytest.param([PULL_ONLY], request("ecr:GetDownloadUrlForLayer"), ALLOWED, id="managed-pullonly-layers"),
    pytest.param(
        [READ_ONLY], request("ecr:BatchImportUpstreamImage"), IMPLICIT_DENY, id="managed-readonly-no-import"
    ),
    pytest.param([PULL_ONLY], request("ecr:BatchImportUpstreamImage"), ALLOWED, id="managed-pullonly-import"),
    pytest.param(
        [PULL_ONLY], request("ecr:CreateRepository"), IMPLICIT_DENY, id="managed-pullonly-no-create"
    ),
]


@pytest.mark.parametrize(("identity", "req", "expected"), IDENTITY_CASES)
def test_identity_policies(identity: list[dict[str, Any]], req: Request, expected: str) -> None:
    assert run(identity, req=req).decision == expected


def test_explicit_deny_names_the_statement_and_policy() -> None:
    decision = run(
        [doc(st(Action="ecr:*", Resource="*"), st("Deny", Sid="NoPull", Action=PULL, Resource=REPO))]
    )
    assert decision.denied_by == ("statement 'NoPull' of policy p0",)


def test_implicit_deny_says_which_side_is_missing() -> None:
    decision = run([doc(st(Action="s3:*", Resource="*"))])
    assert (decision.decision, decision.missing) == (IMPLICIT_DENY, ("identity",))


# -- conditions -----------------------------------------------------------------------------------


def cond(effect: str, operator: str, key: str, value: Any, **extra: Any) -> dict[str, Any]:
    return st(effect, Action=PULL, Resource="*", Condition={operator: {key: value}}, **extra)


PLAIN = st(Action=PULL, Resource="*")

CONDITION_CASES = [
    pytest.param(
        [cond("Allow", "StringEquals", "aws:SourceVpce", "vpce-1")],
        UNKNOWN,
        "aws:SourceVpce",
        id="unknown-key",
    ),
    pytest.param(
        [cond("Allow", "StringEquals", "aws:PrincipalArn", ROLE)], ALLOWED, None, id="principalarn-equal"
    ),
    pytest.param(
        [cond("Allow", "StringEquals", "aws:PrincipalArn", f"arn:aws:iam::{ACCT}:role/other")],
        IMPLICIT_DENY,
        None,
        id="principalarn-other",
    ),
    pytest.param(
        [cond("Allow", "ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:role/ng-*")],
        ALLOWED,
        None,
        id="arnlike",
    ),
    pytest.param(
        [cond("Allow", "StringLike", "aws:RequestedRegion", "us-*")], ALLOWED, None, id="stringlike-region"
    ),
    pytest.param(
        [cond("Allow", "StringEqualsIgnoreCase", "aws:PrincipalType", "assumedrole")],
        ALLOWED,
        None,
        id="ignorecase",
    ),
    pytest.param(
        [cond("Allow", "ForAnyValue:StringEquals", "aws:RequestedRegion", ["eu-west-1", "us-east-1"])],
        ALLOWED,
        None,
        id="foranyvalue",
    ),
    pytest.param(
        [PLAIN, cond("Deny", "Bool", "aws:SecureTransport", "false")],
        ALLOWED,
        None,
        id="bool-deny-plain-http",
    ),
    pytest.param(
        [cond("Allow", "StringEqualsIfExists", "aws:SourceArn", "arn:aws:x")],
        ALLOWED,
        None,
        id="ifexists-absent",
    ),
    pytest.param(
        [cond("Allow", "StringEqualsIfExists", "aws:SourceVpc", "vpc-1")],
        UNKNOWN,
        "aws:SourceVpc",
        id="ifexists-unknown",
    ),
    pytest.param(
        [cond("Allow", "StringNotEquals", "aws:SourceAccount", ACCT)],
        ALLOWED,
        None,
        id="negated-absent-holds",
    ),
    pytest.param(
        [cond("Allow", "StringEquals", "aws:SourceAccount", ACCT)], IMPLICIT_DENY, None, id="absent-fails"
    ),
    pytest.param([cond("Allow", "Null", "aws:username", "true")], ALLOWED, None, id="null-absent"),
    pytest.param([cond("Allow", "Null", "aws:PrincipalArn", "true")], IMPLICIT_DENY, None, id="null-present"),
    pytest.param(
        [cond("Allow", "NumericLessThan", "aws:RequestedRegion", "3")],
        UNKNOWN,
        "NumericLessThan",
        id="operator",
    ),
    pytest.param(
        [cond("Allow", "DateGreaterThan", "aws:CurrentTime", "2020-01-01T00:00:00Z")],
        UNKNOWN,
        "aws:CurrentTime",
        id="time",
    ),
    # three-valued combination
    pytest.param(
        [PLAIN, cond("Deny", "StringNotEquals", "aws:SourceVpce", "vpce-1")],
        UNKNOWN,
        "aws:SourceVpce",
        id="maybe-deny",
    ),
    pytest.param(
        [cond("Deny", "StringNotEquals", "aws:SourceVpce", "vpce-1")],
        IMPLICIT_DENY,
        None,
        id="maybe-deny-no-allow",
    ),
    pytest.param(
        [cond("Allow", "StringEquals", "aws:PrincipalOrgID", "o-1"), st("Deny", Action=PULL, Resource="*")],
        EXPLICIT_DENY,
        None,
        id="definite-deny-beats-maybe-allow",
    ),
    pytest.param(
        [cond("Allow", "StringEquals", "aws:PrincipalOrgID", "o-1"), PLAIN],
        ALLOWED,
        None,
        id="definite-allow-wins",
    ),
    pytest.param(
        [
            st(
                Action=PULL,
                Resource="*",
                Condition={"StringEquals": {"aws:PrincipalAccount": ACCT, "aws:SourceVpce": "v"}},
            )
        ],
        UNKNOWN,
        "aws:SourceVpce",
        id="and-of-keys",
    ),
    pytest.param(
        [
            st(
                Action=PULL,
                Resource="*",
                Condition={"StringEquals": {"aws:PrincipalAccount": OTHER, "aws:SourceVpce": "v"}},
            )
        ],
        IMPLICIT_DENY,
        None,
        id="and-false-beats-unknown",
    ),
]


@pytest.mark.parametrize(("statements", "expected", "named"), CONDITION_CASES)
def test_conditions(statements: list[dict[str, Any]], expected: str, named: str | None) -> None:
    decision = run([doc(*statements)])
    assert decision.decision == expected
    if named is not None:
        assert any(named in u for u in decision.unknowns), decision.unknowns


def test_an_unknown_condition_is_named_with_its_operator_and_statement() -> None:
    decision = run([doc(cond("Allow", "StringEquals", "aws:SourceVpce", "vpce-1", Sid="ViaEndpoint"))])
    assert decision.unknowns == (
        "Condition StringEquals aws:SourceVpce in statement 'ViaEndpoint' of policy p0: pullguard does "
        "not know "
        "aws:SourceVpce for a node's pull",
    )


# -- resource policies: same account, cross account -------------------------------------------------


def grant(principal: Any, effect: str = "Allow", **extra: Any) -> dict[str, Any]:
    return doc(st(effect, Principal=principal, Action=[PULL, "ecr:GetDownloadUrlForLayer"], **extra))


IDENTITY_ALLOW = [doc(st(Action="ecr:*", Resource="*"))]

RESOURCE_CASES = [
    # same account: either side suffices, but an account principal only delegates
    pytest.param([], grant({"AWS": ROLE}), REPO, ALLOWED, id="same-account-repo-policy-names-role"),
    pytest.param(
        [], grant({"AWS": f"arn:aws:iam::{ACCT}:root"}), REPO, IMPLICIT_DENY, id="same-account-root-delegates"
    ),
    pytest.param([], grant({"AWS": ACCT}), REPO, IMPLICIT_DENY, id="same-account-id-delegates"),
    pytest.param(IDENTITY_ALLOW, grant({"AWS": ACCT}), REPO, ALLOWED, id="same-account-root-plus-identity"),
    pytest.param(IDENTITY_ALLOW, None, REPO, ALLOWED, id="same-account-identity-alone"),
    pytest.param([], grant("*"), REPO, ALLOWED, id="same-account-everyone"),
    pytest.param([], grant({"AWS": ["*"]}), REPO, ALLOWED, id="same-account-aws-star"),
    pytest.param(
        IDENTITY_ALLOW, grant({"AWS": ROLE}, "Deny"), REPO, EXPLICIT_DENY, id="repo-policy-deny-wins"
    ),
    pytest.param(
        [], grant({"Service": "codebuild.amazonaws.com"}), REPO, IMPLICIT_DENY, id="service-principal"
    ),
    pytest.param(
        [], grant({"AWS": f"arn:aws:iam::{ACCT}:role/NG-A"}), REPO, ALLOWED, id="role-name-case-insensitive"
    ),
    # cross account: both sides
    pytest.param(IDENTITY_ALLOW, None, OTHER_REPO, IMPLICIT_DENY, id="cross-account-no-repo-policy"),
    pytest.param(IDENTITY_ALLOW, grant({"AWS": ROLE}), OTHER_REPO, ALLOWED, id="cross-account-both"),
    pytest.param(
        IDENTITY_ALLOW, grant({"AWS": ACCT}), OTHER_REPO, ALLOWED, id="cross-account-account-principal"
    ),
    pytest.param(
        IDENTITY_ALLOW,
        grant({"AWS": f"arn:aws:iam::{OTHER}:root"}),
        OTHER_REPO,
        IMPLICIT_DENY,
        id="cross-wrong-account",
    ),
    pytest.param([], grant({"AWS": ROLE}), OTHER_REPO, IMPLICIT_DENY, id="cross-account-no-identity"),
    pytest.param(IDENTITY_ALLOW, grant("*"), OTHER_REPO, ALLOWED, id="cross-account-everyone"),
    # what cannot be decided
    pytest.param(
        IDENTITY_ALLOW,
        grant("*", Condition={"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}),
        OTHER_REPO,
        UNKNOWN,
        id="org-condition",
    ),
    pytest.param(
        IDENTITY_ALLOW,
        doc(st(NotPrincipal={"AWS": ROLE}, Action="ecr:*")),
        OTHER_REPO,
        UNKNOWN,
        id="notprincipal-names-role",
    ),
    pytest.param(
        IDENTITY_ALLOW,
        doc(st(NotPrincipal={"AWS": f"arn:aws:iam::{OTHER}:root"}, Action="ecr:*")),
        OTHER_REPO,
        ALLOWED,
        id="notprincipal-other",
    ),
    pytest.param(
        IDENTITY_ALLOW,
        grant({"AWS": f"arn:aws:sts::{ACCT}:assumed-role/ng-a/i-0abc"}),
        OTHER_REPO,
        UNKNOWN,
        id="session-principal",
    ),
]


@pytest.mark.parametrize(("identity", "resource", "repo", "expected"), RESOURCE_CASES)
def test_resource_policies(
    identity: list[dict[str, Any]], resource: dict[str, Any] | None, repo: str, expected: str
) -> None:
    assert run(identity, resource, req=request(resource=repo)).decision == expected


def test_cross_account_without_repository_policy_is_missing_the_resource_side() -> None:
    decision = run(IDENTITY_ALLOW, None, req=request(resource=OTHER_REPO))
    assert (decision.missing, decision.cross_account) == (("resource",), True)


# -- permissions boundaries -------------------------------------------------------------------------

BOUNDARY_CASES = [
    pytest.param(IDENTITY_ALLOW, None, doc(st(Action="ecr:*", Resource="*")), ALLOWED, id="boundary-allows"),
    pytest.param(
        IDENTITY_ALLOW, None, doc(st(Action="s3:*", Resource="*")), IMPLICIT_DENY, id="boundary-caps"
    ),
    pytest.param(
        IDENTITY_ALLOW, None, doc(st("Deny", Action=PULL, Resource="*")), EXPLICIT_DENY, id="boundary-deny"
    ),
    pytest.param(
        [],
        grant({"AWS": ROLE}),
        doc(st(Action="s3:*", Resource="*")),
        IMPLICIT_DENY,
        id="caps-role-arn-grant",
    ),
]


@pytest.mark.parametrize(("identity", "resource", "boundary", "expected"), BOUNDARY_CASES)
def test_permissions_boundaries(
    identity: list[dict[str, Any]], resource: dict[str, Any] | None, boundary: dict[str, Any], expected: str
) -> None:
    decision = run(identity, resource, boundary)
    assert decision.decision == expected
    if expected == IMPLICIT_DENY:
        assert "boundary" in decision.missing


# -- reading policies ---------------------------------------------------------------------------------

BAD_POLICIES = [
    pytest.param(doc(st("Maybe", Action=PULL, Resource="*")), "identity", "Statement[0].Effect", id="effect"),
    pytest.param(
        doc(st(Action=PULL, NotAction=PULL, Resource="*")), "identity", "Statement[0]", id="action-and-not"
    ),
    pytest.param(doc(st(Action=PULL)), "identity", "Statement[0]", id="identity-without-resource"),
    pytest.param(doc(st(Action=PULL)), "resource", "Statement[0]", id="resource-without-principal"),
    pytest.param(doc(st(Action=7, Resource="*")), "identity", "Statement[0].Action", id="action-type"),
    pytest.param({"Version": "2012-10-17", "Statement": "x"}, "identity", "Statement", id="statement-type"),
    pytest.param("{not json", "identity", None, id="not-json"),
]


@pytest.mark.parametrize(("document", "kind", "field"), BAD_POLICIES)
def test_unreadable_policies_name_the_field(document: Any, kind: str, field: str | None) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document, "inline policy x of role ng-a", kind)
    assert caught.value.field == field
    assert caught.value.message.startswith("inline policy x of role ng-a")


def test_a_single_statement_object_and_a_json_string_are_read() -> None:
    text = '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}}'
    assert decide(request(), [parse_policy(text, "p")]).decision == ALLOWED


WILDCARDS = [
    pytest.param("ecr:*", "ecr:BatchGetImage", False, True, id="star"),
    pytest.param("*", "arn:aws:ecr:us-east-1:1:repository/a/b", False, True, id="star-crosses-colons"),
    pytest.param("a?c", "abc", False, True, id="question"),
    pytest.param("a?c", "ac", False, False, id="question-needs-one"),
    pytest.param("a.c", "abc", False, False, id="dot-is-literal"),
    pytest.param("ECR:GET*", "ecr:GetAuthorizationToken", True, True, id="ignore-case"),
    pytest.param("ECR:GET*", "ecr:GetAuthorizationToken", False, False, id="case-sensitive"),
]


@pytest.mark.parametrize(("pattern", "value", "ignore_case", "expected"), WILDCARDS)
def test_wildcards(pattern: str, value: str, ignore_case: bool, expected: bool) -> None:
    assert wildcard_match(pattern, value, ignore_case=ignore_case) is expected
