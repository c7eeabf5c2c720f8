"""EKS node discovery: Node objects → EC2 instances → instance profiles → node roles, plus Fargate profiles.

The Kubernetes side (listing Nodes) is the kube adapter's; here the Node objects are values and moto
holds the EC2 instances, instance profiles, roles and the EKS cluster's Fargate profiles. The last
test runs the discovered groups through the real engine and ECR checker.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from tests.infra.images import push_image
from tests.infra.moto_server import ACCOUNT, MotoServer
from tests.infra.registry import RegistryProcess
from tests.support.ecr import FARGATE_POLICY, READ_ONLY, aws_config, ecr_host, make_repository, make_role
from webhook.adapters.aws import AwsClients, AwsOptions, EksNodeResolver
from webhook.adapters.stream_objects import StreamObjects
from webhook.assembly import build
from webhook.core.nodes import (
    FargateSelector,
    NodeIdentity,
    NodeObject,
    groups_from_nodes,
    node_object_from_dict,
)
from webhook.settings import cluster_view, parse_config

AMI = "ami-12c6146b"  # one of moto's bundled images


def node(name: str, provider_id: str, arch: str = "amd64", **labels: str) -> NodeObject:
    return node_object_from_dict(
        {
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/arch": arch, "kubernetes.io/os": "linux", **labels},
            },
            "spec": {"providerID": provider_id},
        }
    )


def instance_profile(moto: MotoServer, name: str, role: str | None) -> str:
    iam = moto.client("iam")
    arn = str(iam.create_instance_profile(InstanceProfileName=name, Path="/eks/")["InstanceProfile"]["Arn"])
    if role:
        iam.add_role_to_instance_profile(InstanceProfileName=name, RoleName=role.rsplit("/", 1)[-1])
    return arn


def instance(moto: MotoServer, profile: str | None, cluster: str, zone: str = "us-east-1a") -> str:
    extra: dict[str, Any] = {"IamInstanceProfile": {"Arn": profile}} if profile else {}
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "eks:cluster-name", "Value": cluster}]}]
    got = moto.client("ec2").run_instances(
        ImageId=AMI,
        MinCount=1,
        MaxCount=1,
        Placement={"AvailabilityZone": zone},
        TagSpecifications=tags,
        **extra,
    )
    return str(got["Instances"][0]["InstanceId"])


def fargate_profile(
    moto: MotoServer, cluster: str, name: str, role: str, selectors: list[dict[str, Any]]
) -> None:
    eks = moto.client("eks")
    eks.create_fargate_profile(
        fargateProfileName=name, clusterName=cluster, podExecutionRoleArn=role, selectors=selectors
    )


def resolver(
    moto: MotoServer, cluster: str | None = None, endpoints: dict[str, str] | None = None
) -> EksNodeResolver:
    clients = AwsClients(AwsOptions(region="us-east-1", endpoints=endpoints or moto.endpoints()))
    return EksNodeResolver(clients, region="us-east-1", cluster_name=cluster)


@pytest.fixture
def cluster(moto_aws: MotoServer, aws_names: Any) -> dict[str, Any]:
    """A cluster with two managed node groups (amd64 and arm64) and one Fargate profile."""
    name = aws_names("c1")
    moto_aws.client("eks").create_cluster(
        name=name, roleArn=f"arn:aws:iam::{ACCOUNT}:role/eks", resourcesVpcConfig={}
    )
    role_a = make_role(moto_aws, aws_names("ng-a"), managed=[READ_ONLY])
    role_b = make_role(moto_aws, aws_names("ng-b"))
    fargate = make_role(moto_aws, aws_names("fp-exec"), managed=[FARGATE_POLICY])
    profile_a = instance_profile(moto_aws, aws_names("ip-a"), role_a)
    profile_b = instance_profile(moto_aws, aws_names("ip-b"), role_b)
    ids = {
        "a1": instance(moto_aws, profile_a, name),
        "a2": instance(moto_aws, profile_a, name, zone="us-east-1b"),
        "b1": instance(moto_aws, profile_b, name),
    }
    fargate_profile(
        moto_aws, name, "fp-serverless", fargate, [{"namespace": "serverless", "labels": {"tier": "web"}}]
    )
    return {"name": name, "role_a": role_a, "role_b": role_b, "fargate": fargate, "ids": ids}


def test_nodes_resolve_to_their_instance_profile_roles_and_fargate_profiles_become_groups(
    moto_aws: MotoServer, cluster: dict[str, Any]
) -> None:
    ids = cluster["ids"]
    nodes = [
        node("a1", f"aws:///us-east-1a/{ids['a1']}", **{"eks.amazonaws.com/nodegroup": "ng-a"}),
        node("a2", f"aws:///us-east-1b/{ids['a2']}", **{"eks.amazonaws.com/nodegroup": "ng-a"}),
        node("b1", f"aws:///us-east-1a/{ids['b1']}", arch="arm64", **{"eks.amazonaws.com/nodegroup": "ng-b"}),
        node("gke-1", "gce://project/us-central1-a/gke-1"),  # not an EC2 node: nothing to say
    ]

    found = asyncio.run(resolver(moto_aws).resolve(nodes))

    assert found.by_node == {
        "a1": NodeIdentity("node-role", cluster["role_a"]),
        "a2": NodeIdentity("node-role", cluster["role_a"]),
        "b1": NodeIdentity("node-role", cluster["role_b"]),
    }
    assert found.findings == ()
    (fargate,) = found.extra_groups
    assert (fargate.name, str(fargate.platform), fargate.identity) == (
        "fargate/fp-serverless",
        "linux/amd64",
        NodeIdentity("fargate-role", cluster["fargate"]),
    )
    assert fargate.fargate_selectors == (FargateSelector("serverless", {"tier": "web"}),)

    groups, _ = groups_from_nodes(nodes, found)
    assert [(g.name, str(g.platform), g.identity.principal if g.identity else None) for g in groups] == [
        (None, "linux/amd64", None),  # the GKE node: no identity from this resolver
        ("ng-a", "linux/amd64", cluster["role_a"]),
        ("ng-b", "linux/arm64", cluster["role_b"]),
        ("fargate/fp-serverless", "linux/amd64", cluster["fargate"]),
    ]


def test_nodes_that_cannot_be_resolved_are_findings_naming_the_node(
    moto_aws: MotoServer, aws_names: Any, cluster: dict[str, Any]
) -> None:
    bare = instance(moto_aws, None, cluster["name"])
    empty = instance(moto_aws, instance_profile(moto_aws, aws_names("ip-empty"), None), cluster["name"])
    nodes = [
        node("gone", "aws:///us-east-1a/i-0123456789abcdef0"),
        node("bare", f"aws:///us-east-1a/{bare}"),
        node("empty", f"aws:///us-east-1a/{empty}"),
    ]

    found = asyncio.run(resolver(moto_aws, cluster=cluster["name"]).resolve(nodes))

    assert found.by_node == {}
    empty_profile = aws_names("ip-empty")
    assert [f.message for f in found.findings] == [
        "node gone: EC2 has no instance i-0123456789abcdef0 (terminated?); its pull role is not known",
        f"node bare: instance {bare} has no IAM instance profile, so kubelet's ecr-credential-provider "
        "has no "
        "credentials there",
        f"node empty: instance profile {empty_profile} holds no role, so the node has no AWS credentials",
    ]


def test_fargate_nodes_without_a_known_cluster_name_ask_for_aws_eks_cluster_name(
    moto_aws: MotoServer,
) -> None:
    nodes = [
        node(
            "fargate-ip-10-0-0-1",
            "aws:///us-east-1a/fargate-ip",
            **{"eks.amazonaws.com/compute-type": "fargate"},
        )
    ]

    found = asyncio.run(resolver(moto_aws).resolve(nodes))

    assert [f.code for f in found.findings] == ["fargate-profiles-unknown"]
    assert "set aws.eksClusterName" in found.findings[0].message


def test_an_unreachable_ec2_is_a_finding_not_an_exception(
    moto_aws: MotoServer, cluster: dict[str, Any]
) -> None:
    nodes = [node("a1", f"aws:///us-east-1a/{cluster['ids']['a1']}")]
    closed = dict.fromkeys(("ec2", "iam", "eks"), "http://127.0.0.1:9")

    found = asyncio.run(resolver(moto_aws, cluster=cluster["name"], endpoints=closed).resolve(nodes))

    assert found.by_node == {}
    assert [f.code for f in found.findings] == ["node-identity-unknown", "node-identity-unknown"]
    assert found.findings[0].message.startswith("the EC2 instances of nodes a1 could not be read (")
    assert found.findings[1].message.startswith(
        f"the Fargate profiles of cluster {cluster['name']} could not be read"
    )


def test_discovered_groups_judge_a_fargate_pod_by_its_profile_role_and_others_by_their_node_role(
    moto_aws: MotoServer, registry_ecr: RegistryProcess, repo_name: Any, cluster: dict[str, Any]
) -> None:
    repo = re.sub(r"[-._]{2,}", "-", str(repo_name("team")))
    make_repository(moto_aws, repo)
    push_image(registry_ecr, repo, "1", credentials=registry_ecr.push_credentials)
    ids = cluster["ids"]
    nodes = [
        node("a1", f"aws:///us-east-1a/{ids['a1']}", **{"eks.amazonaws.com/nodegroup": "ng-a"}),
        node("b1", f"aws:///us-east-1a/{ids['b1']}", arch="arm64", **{"eks.amazonaws.com/nodegroup": "ng-b"}),
    ]
    config = parse_config(aws_config(moto_aws, registry_ecr))
    image = f"{ecr_host()}/{repo}:1"

    async def scenario() -> list[Any]:
        assembly = build(config)
        try:
            (eks,) = assembly.resolvers
            groups, _ = groups_from_nodes(nodes, await eks.resolve(nodes))
            view = cluster_view(config, pods_admitted=True, groups=groups)
            pods = [
                {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {"name": n, "namespace": ns, "labels": labels},
                    "spec": {"containers": [{"name": "c", "image": image}], **spec},
                }
                for n, ns, labels, spec in [
                    ("serverless-web", "serverless", {"tier": "web"}, {}),
                    ("amd", "default", {}, {"nodeSelector": {"kubernetes.io/arch": "amd64"}}),
                    ("arm", "default", {}, {"nodeSelector": {"kubernetes.io/arch": "arm64"}}),
                ]
            ]
            return [
                await assembly.engine.check_object(p, view, StreamObjects(), default_namespace="default")
                for p in pods
            ]
        finally:
            await assembly.aclose()

    fargate, amd, arm = (v.images[0] for v in asyncio.run(scenario()))
    assert (fargate.outcome, fargate.identity.kind, fargate.identity.name) == (
        "pullable",
        "fargate-role",
        cluster["fargate"],
    )
    assert (amd.outcome, amd.identity.name) == ("pullable", cluster["role_a"])
    assert (arm.outcome, arm.identity.name, arm.identity.node_group) == (
        "unauthorized",
        cluster["role_b"],
        "ng-b",
    )
    assert json.dumps(arm.to_json())  # serialisable as the CLI/webhook would print it
