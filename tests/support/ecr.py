"""Building the AWS side of a test the way an operator would: roles, policies, repositories, and
the pullguard configuration pointing at moto and at the registry playing ECR's data plane."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tests.infra.moto_server import ACCOUNT, REGION, MotoServer
from tests.infra.registry import RegistryProcess

READ_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly"
PULL_ONLY = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly"
FARGATE_POLICY = "arn:aws:iam::aws:policy/AmazonEKSFargatePodExecutionRolePolicy"
TRUST_EC2 = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def ecr_host(account: str = ACCOUNT, region: str = REGION) -> str:
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def role_arn(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


def make_role(
    moto: MotoServer,
    name: str,
    managed: Sequence[str] = (),
    inline: Mapping[str, Mapping[str, Any]] | None = None,
    boundary: str | None = None,
) -> str:
    """An IAM role with attached managed policies and inline policies; returns its ARN."""
    iam = moto.client("iam")
    extra = {"PermissionsBoundary": boundary} if boundary else {}
    arn = str(
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST_EC2), **extra)["Role"]["Arn"]
    )
    for policy in managed:
        iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    for policy_name, doc in (inline or {}).items():
        iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(doc))
    return arn


def make_policy(moto: MotoServer, name: str, doc: Mapping[str, Any]) -> str:
    return str(
        moto.client("iam").create_policy(PolicyName=name, PolicyDocument=json.dumps(doc))["Policy"]["Arn"]
    )


def allow(*actions: str, resource: str = "*") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": resource}],
    }


def make_repository(
    moto: MotoServer, name: str, account: str = ACCOUNT, policy: Mapping[str, Any] | None = None
) -> None:
    ecr = moto.client("ecr")
    ecr.create_repository(repositoryName=name, registryId=account)
    if policy is not None:
        ecr.set_repository_policy(repositoryName=name, registryId=account, policyText=json.dumps(policy))


def aws_config(
    moto: MotoServer,
    registry: RegistryProcess,
    node_groups: Sequence[Mapping[str, Any]] = (),
    accounts: Sequence[str] = (ACCOUNT,),
    endpoints: Mapping[str, str] | None = None,
    **aws: Any,
) -> dict[str, Any]:
    """A pullguard configuration: moto for the AWS APIs, the registry for each account's ECR host."""
    config: dict[str, Any] = {
        "network": {"allowLoopback": True},
        "aws": {
            "region": REGION,
            "endpoints": dict(endpoints) if endpoints is not None else moto.endpoints(),
            "registryEndpoints": {ecr_host(a): registry.url for a in accounts},
            **aws,
        },
    }
    if node_groups:
        config["cluster"] = {"nodeGroups": list(node_groups)}
    return config


def node_group(name: str, role: str, platform: str = "linux/amd64", **extra: Any) -> dict[str, Any]:
    arch = platform.split("/")[1]
    return {
        "name": name,
        "platform": platform,
        "selector": {"kubernetes.io/arch": arch},
        "identity": {"awsRoleArn": role},
        **extra,
    }
