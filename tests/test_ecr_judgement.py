"""What an ECR pull needs, per partition, and the words pullguard uses when the node role lacks it
(core/ecr.py; ECR User Guide, research/domain-facts.md §5.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from webhook.core.ecr import PullThrough, judge_pull, parse_role_arn, repository_arn
from webhook.core.iam_policy import parse_policy
from webhook.core.registries import parse_ecr_host

CONFORMANCE = json.loads(
    (Path(__file__).parent / "data" / "conformance" / "registries-and-platforms.json").read_text()
)
#: AWS partitions by DNS suffix (AWS General Reference, "Partitions"; GovCloud regions in ``aws``'s DNS).
PARTITIONS = {
    "amazonaws.com": "aws",
    "on.aws": "aws",
    "amazonaws.com.cn": "aws-cn",
    "on.amazonwebservices.com.cn": "aws-cn",
    "amazonaws.eu": "aws-eusc",
    "c2s.ic.gov": "aws-iso",
    "sc2s.sgov.gov": "aws-iso-b",
    "cloud.adc-e.uk": "aws-iso-e",
    "csp.hci.ic.gov": "aws-iso-f",
}


def _expected_partition(host: str, region: str) -> str:
    suffix = next(s for s in sorted(PARTITIONS, key=len, reverse=True) if host.endswith("." + s))
    partition = PARTITIONS[suffix]
    return "aws-us-gov" if partition == "aws" and region.startswith("us-gov-") else partition


HOSTS = [v["host"] for v in CONFORMANCE["ecr_parseRegionFromECRPrivateHost"] if v["region"]] + [
    v["registry"] for v in CONFORMANCE["ecr_TestRegistryPatternMatch"] if v["expected"]
]


@pytest.mark.parametrize("host", HOSTS)
def test_every_conformance_host_gives_the_repository_arn_iam_evaluates(host: str) -> None:
    parsed = parse_ecr_host(host)
    assert parsed is not None
    expected = (
        f"arn:{_expected_partition(host, parsed.region)}:ecr:{parsed.region}:{host[:12]}:repository/team/app"
    )
    assert repository_arn(parsed, "team/app") == expected


ROLES = [
    pytest.param("arn:aws:iam::123456789012:role/ng-a", ("aws", "123456789012", "/", "ng-a"), id="plain"),
    pytest.param(
        "arn:aws:iam::123456789012:role/eks/nodes/ng-a",
        ("aws", "123456789012", "/eks/nodes/", "ng-a"),
        id="path",
    ),
    pytest.param("arn:aws-cn:iam::123456789012:role/ng", ("aws-cn", "123456789012", "/", "ng"), id="china"),
    pytest.param(
        "arn:aws-us-gov:iam::123456789012:role/ng", ("aws-us-gov", "123456789012", "/", "ng"), id="gov"
    ),
    pytest.param("arn:aws:iam::12345678901:role/ng", None, id="short-account"),
    pytest.param("arn:aws:iam::123456789012:user/ng", None, id="user"),
    pytest.param("arn:aws:sts::123456789012:assumed-role/ng/i-1", None, id="session"),
]


@pytest.mark.parametrize(("arn", "parts"), ROLES)
def test_role_arns(arn: str, parts: tuple[str, ...] | None) -> None:
    role = parse_role_arn(arn)
    assert (None if role is None else (role.partition, role.account, role.path, role.name)) == parts


def _allow(*actions: str) -> Any:
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }
    return parse_policy(doc, "AWS managed policy X", "identity")


PULL_ONLY = _allow(
    "ecr:GetAuthorizationToken",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchImportUpstreamImage",
)
READ_ONLY = _allow("ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
HOST = parse_ecr_host("123456789012.dkr.ecr.us-east-1.amazonaws.com")
ROLE = parse_role_arn("arn:aws:iam::123456789012:role/ng-a")
REPO = "docker-hub/library/nginx"
NEW_CACHE = PullThrough("docker-hub", "registry-1.docker.io", repository_exists=False)
OLD_CACHE = PullThrough("docker-hub", "registry-1.docker.io", repository_exists=True)

PULL_THROUGH = [
    pytest.param(
        READ_ONLY, OLD_CACHE, "forbidden", "ecr:BatchImportUpstreamImage", id="readonly-cannot-import"
    ),
    pytest.param(PULL_ONLY, OLD_CACHE, "pullable", None, id="pullonly-imports-into-existing-cache"),
    pytest.param(PULL_ONLY, NEW_CACHE, "forbidden", "ecr:CreateRepository", id="pullonly-cannot-create"),
    pytest.param(
        _allow(
            "ecr:GetAuthorizationToken",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:Batch*",
            "ecr:Create*",
        ),
        NEW_CACHE,
        "pullable",
        None,
        id="create-allowed",
    ),
    pytest.param(READ_ONLY, None, "pullable", None, id="cached-image-needs-only-pull"),
]


@pytest.mark.parametrize(("policy", "cache", "outcome", "missing"), PULL_THROUGH)
def test_pull_through_cache_first_pulls(
    policy: Any, cache: PullThrough | None, outcome: str, missing: str | None
) -> None:
    assert HOST is not None and ROLE is not None
    judgement = judge_pull(ROLE, "node-role", "ng-a", HOST, REPO, [policy], None, None, cache)
    assert judgement.outcome == outcome
    if missing is not None:
        assert [c.action for c in judgement.denied] == [missing]
        assert (
            "is a pull-through cache of registry-1.docker.io and this image is not cached yet"
            in judgement.detail
        )


def test_the_fix_for_a_new_cache_repository_names_create_repository_on_the_prefix() -> None:
    assert HOST is not None and ROLE is not None
    judgement = judge_pull(ROLE, "node-role", "ng-a", HOST, REPO, [PULL_ONLY], None, None, NEW_CACHE)
    assert judgement.fix == (
        "attach the AWS managed policy AmazonEC2ContainerRegistryPullOnly to node role ng-a (node group "
        "ng-a): "
        "aws iam attach-role-policy --role-name ng-a --policy-arn "
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly — or allow ecr:CreateRepository in "
        "one of its "
        "policies; AmazonEC2ContainerRegistryPullOnly does not grant ecr:CreateRepository: allow it on "
        "arn:aws:ecr:us-east-1:123456789012:repository/docker-hub/* (needed while the cache repository "
        "does not "
        "exist), or pull the image once with an identity that may"
    )


def test_a_china_region_fix_uses_the_china_partition() -> None:
    host = parse_ecr_host("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn")
    role = parse_role_arn("arn:aws-cn:iam::123456789012:role/ng-cn")
    assert host is not None and role is not None
    judgement = judge_pull(role, "node-role", None, host, "app", [], None, None)
    assert judgement.outcome == "unauthorized"
    assert "arn:aws-cn:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly" in (judgement.fix or "")
    assert "arn:aws-cn:ecr:cn-north-1:123456789012:repository/app" in judgement.detail


def test_an_explicit_deny_fix_names_the_statement_and_how_to_exclude_the_role() -> None:
    assert HOST is not None and ROLE is not None
    deny = parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": [{"Sid": "NoProd", "Effect": "Deny", "Action": "ecr:*", "Resource": "*"}],
        },
        "inline policy guard of role ng-a",
        "identity",
    )
    judgement = judge_pull(ROLE, "node-role", "ng-a", HOST, "app", [READ_ONLY, deny], None, None)
    assert judgement.outcome == "unauthorized"
    assert judgement.fix == (
        "remove or narrow statement 'NoProd' of inline policy guard of role ng-a: it denies "
        "ecr:GetAuthorizationToken, ecr:BatchGetImage, ecr:GetDownloadUrlForLayer to node role ng-a "
        "(node group "
        'ng-a) (for example exclude it with a Condition "ArnNotEquals": {"aws:PrincipalArn": '
        '"arn:aws:iam::123456789012:role/ng-a"})'
    )


def test_an_allowed_pull_has_no_fix_and_says_what_was_allowed() -> None:
    assert HOST is not None and ROLE is not None
    judgement = judge_pull(ROLE, "fargate-role", "fp", HOST, "app", [READ_ONLY], None, None)
    assert (judgement.outcome, judgement.fix) == ("pullable", None)
    assert judgement.detail == (
        "Fargate pod execution role ng-a (node group fp) may pull app (ecr:GetAuthorizationToken, "
        "ecr:BatchGetImage, ecr:GetDownloadUrlForLayer allowed)"
    )
