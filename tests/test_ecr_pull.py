"""ECR images as the node role sees them, end to end through ``pullguard check``.

moto plays ECR's, IAM's and STS's control plane; the real ``docker-registry`` (htpasswd user ``AWS``,
password ``<account>-auth-token``, what moto's GetAuthorizationToken decodes to) plays ECR's data
plane, reached through ``aws.registryEndpoints``. Node roles, their policies and repository policies
are created in moto exactly as an operator would; the answers are read from the CLI's output.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.images import push_image, push_index
from tests.infra.moto_server import ACCESS_KEY, ACCOUNT, OTHER_ACCOUNT, SECRET_KEY, MotoServer
from tests.infra.registry import RegistryProcess
from tests.support.cli import Run, manifests, pod, run, write_config
from tests.support.ecr import (
    FARGATE_POLICY,
    PULL_ONLY,
    READ_ONLY,
    allow,
    aws_config,
    ecr_host,
    make_policy,
    make_repository,
    make_role,
    node_group,
    role_arn,
)

TOKEN = "ecr:GetAuthorizationToken"
PULL = "ecr:BatchGetImage"
LAYERS = "ecr:GetDownloadUrlForLayer"


def image(repo: str, tag: str = "1", account: str = ACCOUNT) -> str:
    return f"{ecr_host(account)}/{repo}:{tag}"


def check(tmp_path: Path, config: dict[str, Any], *docs: dict[str, Any], output: str = "json") -> Run:
    return run(
        ["check", "--config", write_config(tmp_path, config), "--output", output, "-"], manifests(*docs)
    )


def only_image(result: Run) -> dict[str, Any]:
    images = [i for r in result.json["results"] for i in r["images"]]
    assert len(images) == 1, images
    return images[0]


@pytest.fixture
def ecr_name(repo_name: Any) -> Any:
    """Unique repository names ECR accepts (one separator between alphanumerics)."""

    def make(prefix: str = "team") -> str:
        return re.sub(r"[-._]{2,}", "-", str(repo_name(prefix)))

    return make


@pytest.fixture
def repo(moto_aws: MotoServer, registry_ecr: RegistryProcess, ecr_name: Any) -> str:
    """An ECR repository (in moto) holding a linux/amd64 image tagged 1 (in the data plane)."""
    name = ecr_name("team")
    make_repository(moto_aws, name)
    push_image(registry_ecr, name, "1", credentials=registry_ecr.push_credentials)
    return str(name)


# -- the node role's identity policies --------------------------------------------------------------


def test_node_role_without_ecr_permissions_is_denied_naming_role_group_action_and_fix(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    role = make_role(moto_aws, aws_names("ng-plain"), inline={"logs": allow("logs:PutLogEvents")})
    config = aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)])

    result = check(tmp_path, config, pod("web", [image(repo)]))

    assert result.exit_code == 1
    verdict = only_image(result)
    assert verdict["outcome"] == "unauthorized"
    assert verdict["exists"] is True
    assert verdict["identity"] == {
        "kind": "node-role",
        "name": role,
        "key": "*.dkr.ecr.*.amazonaws.com",
        "username": None,
        "nodeGroup": "ng-a",
    }
    assert verdict["message"] == (
        f"the registry rejected node IAM role {role} of node group ng-a: 401 UNAUTHORIZED — {role} is not "
        f"authorized to perform: {TOKEN} on resource: * because no identity-based policy allows the {TOKEN} "
        "action; ecr-credential-provider gets no token, so kubelet pulls without credentials and ECR answers "
        f"401; also missing: {PULL} on arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{repo}, {LAYERS} on "
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{repo}"
    )
    name = role.rsplit("/", 1)[-1]
    assert verdict["fix"] == (
        f"attach the AWS managed policy AmazonEC2ContainerRegistryPullOnly to node role {name} (node group "
        f"ng-a): aws iam attach-role-policy --role-name {name} --policy-arn "
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly — or allow "
        f"{TOKEN}, {PULL}, {LAYERS} in one of its policies"
    )


@pytest.mark.parametrize("policy", [READ_ONLY, PULL_ONLY], ids=["ReadOnly", "PullOnly"])
def test_node_role_with_the_managed_ecr_policy_pulls(
    moto_aws: MotoServer,
    aws_names: Any,
    registry_ecr: RegistryProcess,
    ecr_name: Any,
    tmp_path: Path,
    policy: str,
) -> None:
    name = ecr_name("team")
    make_repository(moto_aws, name)
    pushed = push_image(registry_ecr, name, "1", credentials=registry_ecr.push_credentials)
    role = make_role(moto_aws, aws_names("ng-ecr"), managed=[policy])

    result = check(
        tmp_path, aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)]), pod("web", [image(name)])
    )

    assert result.exit_code == 0, result.stdout
    verdict = only_image(result)
    assert (verdict["outcome"], verdict["digest"], verdict["identity"]["name"]) == (
        "pullable",
        pushed.digest,
        role,
    )
    assert verdict["platforms"] == {"required": ["linux/amd64"], "available": ["linux/amd64"], "ok": True}


NARROW_CASES = [
    pytest.param(
        {"p": allow(TOKEN, LAYERS)},
        PULL,
        "because no identity-based policy allows the ecr:BatchGetImage action",
        PULL,
        id="no-batchgetimage",
    ),
    pytest.param(
        {"p": allow(TOKEN, PULL)},
        LAYERS,
        "because no identity-based policy allows the ecr:GetDownloadUrlForLayer action",
        LAYERS,
        id="no-layers",
    ),
    pytest.param(
        {
            "tok": allow(TOKEN),
            "other-repo": allow(PULL, LAYERS, resource=f"arn:aws:ecr:*:{ACCOUNT}:repository/other/*"),
        },
        PULL,
        "because no identity-based policy allows the ecr:BatchGetImage action",
        f"{PULL}, {LAYERS}",
        id="scoped-to-another-repository",
    ),
]


@pytest.mark.parametrize(("inline", "action", "why", "missing"), NARROW_CASES)
def test_a_missing_repository_action_is_forbidden_and_named(
    moto_aws: MotoServer,
    aws_names: Any,
    registry_ecr: RegistryProcess,
    repo: str,
    tmp_path: Path,
    inline: dict[str, Any],
    action: str,
    why: str,
    missing: str,
) -> None:
    role = make_role(moto_aws, aws_names("ng-narrow"), inline=inline)

    result = check(
        tmp_path, aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)]), pod("web", [image(repo)])
    )

    assert result.exit_code == 1
    verdict = only_image(result)
    assert verdict["outcome"] == "forbidden"
    assert (
        f"{action} on resource: arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{repo} {why}" in verdict["message"]
    )
    assert "(or the repository does not exist" not in verdict["message"]  # pullguard saw it exists
    assert verdict["fix"].startswith(
        "attach the AWS managed policy AmazonEC2ContainerRegistryPullOnly to node role"
    )
    assert verdict["fix"].endswith(f"or allow {missing} in one of its policies")


def test_a_managed_policy_is_read_at_its_default_version(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    iam = moto_aws.client("iam")
    arn = make_policy(moto_aws, aws_names("node-pull"), allow("s3:GetObject"))
    iam.create_policy_version(
        PolicyArn=arn,
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": "ecr:*", "Resource": "*"}]}',
        SetAsDefault=False,
    )
    role = make_role(moto_aws, aws_names("ng-versions"), managed=[arn])
    config = aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)])

    before = check(tmp_path, config, pod("web", [image(repo)]))
    iam.set_default_policy_version(PolicyArn=arn, VersionId="v2")
    after = check(tmp_path, config, pod("web", [image(repo)]))

    assert (before.exit_code, only_image(before)["outcome"]) == (1, "unauthorized")
    assert (after.exit_code, only_image(after)["outcome"]) == (0, "pullable")


def test_a_permissions_boundary_caps_the_managed_policy(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    boundary = make_policy(moto_aws, aws_names("only-logs"), allow("logs:*"))
    role = make_role(moto_aws, aws_names("ng-bounded"), managed=[READ_ONLY], boundary=boundary)

    result = check(
        tmp_path, aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)]), pod("web", [image(repo)])
    )

    verdict = only_image(result)
    assert (result.exit_code, verdict["outcome"]) == (1, "unauthorized")
    assert f"because no permissions boundary allows the {TOKEN} action" in verdict["message"]
    assert f"the permissions boundary of role {role.rsplit('/', 1)[-1]} does not allow" in verdict["fix"]


def test_a_condition_pullguard_cannot_evaluate_is_undetermined_and_named(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyViaEndpoint",
                "Effect": "Allow",
                "Action": "ecr:*",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-0abc"}},
            }
        ],
    }
    role = make_role(moto_aws, aws_names("ng-vpce"), inline={"via-endpoint": policy})

    result = check(
        tmp_path, aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)]), pod("web", [image(repo)])
    )

    verdict = only_image(result)
    assert (result.exit_code, verdict["outcome"], verdict["exists"]) == (3, "undetermined", True)
    assert (
        "Condition StringEquals aws:SourceVpce in statement 'OnlyViaEndpoint' of inline policy "
        "via-endpoint of "
        f"role {role.rsplit('/', 1)[-1]}: pullguard does not know aws:SourceVpce for a node's pull"
    ) in verdict["message"]
    assert "aws.policyEvaluation: simulate" in verdict["fix"]


# -- repository policies -------------------------------------------------------------------------------


def test_a_repository_policy_grant_suffices_in_the_same_account(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, ecr_name: Any, tmp_path: Path
) -> None:
    role = make_role(moto_aws, aws_names("ng-token-only"), inline={"token": allow(TOKEN)})
    name = ecr_name("team")
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Nodes", "Effect": "Allow", "Principal": {"AWS": role}, "Action": [PULL, LAYERS]}
        ],
    }
    make_repository(moto_aws, name, policy=grant)
    push_image(registry_ecr, name, "1", credentials=registry_ecr.push_credentials)

    result = check(
        tmp_path, aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)]), pod("web", [image(name)])
    )

    assert (result.exit_code, only_image(result)["outcome"]) == (0, "pullable")


def test_an_explicit_deny_in_the_repository_policy_wins_over_the_managed_policy(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, ecr_name: Any, tmp_path: Path
) -> None:
    role = make_role(moto_aws, aws_names("ng-ro"), managed=[READ_ONLY])
    name = ecr_name("team")
    deny = {
        "Version": "2012-10-17",
        "Statement": [{"Sid": "DenyNodes", "Effect": "Deny", "Principal": {"AWS": role}, "Action": "ecr:*"}],
    }
    make_repository(moto_aws, name, policy=deny)
    push_image(registry_ecr, name, "1", credentials=registry_ecr.push_credentials)

    result = check(
        tmp_path, aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)]), pod("web", [image(name)])
    )

    verdict = only_image(result)
    assert (result.exit_code, verdict["outcome"]) == (1, "forbidden")
    assert (
        f"with an explicit deny in statement 'DenyNodes' of repository policy of {name}" in verdict["message"]
    )
    assert verdict["fix"].startswith(
        f"remove or narrow statement 'DenyNodes' of repository policy of {name}:"
    )


def test_cross_account_repository_without_a_policy_grant_is_denied_with_the_statement_to_add(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, ecr_name: Any, tmp_path: Path
) -> None:
    role = make_role(moto_aws, aws_names("ng-ro"), managed=[READ_ONLY])
    name = ecr_name("shared")
    make_repository(moto_aws, name, account=OTHER_ACCOUNT)
    push_image(registry_ecr, name, "1", credentials=registry_ecr.push_credentials)
    config = aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)], accounts=(ACCOUNT, OTHER_ACCOUNT))

    result = check(tmp_path, config, pod("web", [image(name, account=OTHER_ACCOUNT)]))

    assert result.exit_code == 1
    verdict = only_image(result)
    repo_arn = f"arn:aws:ecr:us-east-1:{OTHER_ACCOUNT}:repository/{name}"
    suffix = role.rsplit("-", 1)[-1]  # role ng-ro-<hex>: the Sid is PullBy + the name in CamelCase
    sid = "PullByNgRo" + suffix[:1].upper() + suffix[1:]
    assert verdict["outcome"] == "forbidden"
    assert (
        f"{role} is not authorized to perform: {PULL} on resource: {repo_arn} because no resource-based "
        "policy "
        f"allows the {PULL} action"
    ) in verdict["message"]
    assert verdict["fix"] == (
        f"add this statement to the repository policy of {name} in account {OTHER_ACCOUNT} (keep its other "
        f"statements; aws ecr set-repository-policy --registry-id {OTHER_ACCOUNT} --repository-name {name} "
        "--region us-east-1 --policy-text file://policy.json): "
        f'{{"Sid": "{sid}", "Effect": "Allow", "Principal": {{"AWS": "{role}"}}, '
        f'"Action": ["{PULL}", "{LAYERS}"]}}'
    )


def test_cross_account_repository_with_a_policy_grant_pulls(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, ecr_name: Any, tmp_path: Path
) -> None:
    role = make_role(moto_aws, aws_names("ng-ro"), managed=[READ_ONLY])
    name = ecr_name("shared")
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": [PULL, LAYERS],
            }
        ],
    }
    make_repository(moto_aws, name, account=OTHER_ACCOUNT, policy=grant)
    push_image(registry_ecr, name, "1", credentials=registry_ecr.push_credentials)
    config = aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)], accounts=(ACCOUNT, OTHER_ACCOUNT))

    result = check(tmp_path, config, pod("web", [image(name, account=OTHER_ACCOUNT)]))

    assert (result.exit_code, only_image(result)["outcome"]) == (0, "pullable")


# -- Fargate, platforms ------------------------------------------------------------------------------


def test_a_fargate_pod_is_judged_by_its_pod_execution_role(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    node_role = make_role(moto_aws, aws_names("ng-ro"), managed=[READ_ONLY])
    fargate_role = make_role(moto_aws, aws_names("fargate-exec"), inline={"logs": allow("logs:*")})
    groups = [
        node_group("ng-a", node_role),
        {
            "name": "fp-serverless",
            "fargateSelectors": [{"namespace": "serverless"}],
            "identity": {"fargatePodExecutionRoleArn": fargate_role},
        },
    ]
    config = aws_config(moto_aws, registry_ecr, groups)

    result = check(
        tmp_path,
        config,
        pod("on-fargate", [image(repo)], namespace="serverless"),
        pod("on-nodes", [image(repo)]),
    )

    assert result.exit_code == 1
    by_pod = {r["object"]["name"]: r["images"][0] for r in result.json["results"]}
    fargate, nodes = by_pod["on-fargate"], by_pod["on-nodes"]
    assert fargate["outcome"] == "unauthorized"
    assert fargate["identity"]["kind"] == "fargate-role"
    assert fargate["identity"]["name"] == fargate_role
    assert fargate["identity"]["nodeGroup"] == "fp-serverless"
    assert fargate["message"].startswith(
        f"the registry rejected Fargate pod execution role {fargate_role} of node group fp-serverless: 401"
    )
    name = fargate_role.rsplit("/", 1)[-1]
    assert fargate["fix"].startswith(
        "attach the AWS managed policy AmazonEKSFargatePodExecutionRolePolicy to Fargate pod execution role "
        f"{name} (node group fp-serverless): aws iam attach-role-policy --role-name {name}"
    )
    assert (nodes["outcome"], nodes["identity"]["kind"], nodes["identity"]["name"]) == (
        "pullable",
        "node-role",
        node_role,
    )


def test_a_fargate_pod_execution_role_with_its_managed_policy_pulls(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    fargate_role = make_role(moto_aws, aws_names("fargate-exec"), managed=[FARGATE_POLICY])
    groups = [
        {
            "name": "fp-serverless",
            "fargateSelectors": [{"namespace": "serverless", "labels": {"app": "web"}}],
            "identity": {"fargatePodExecutionRoleArn": fargate_role},
        }
    ]
    manifest = pod("on-fargate", [image(repo)], namespace="serverless")
    manifest["metadata"]["labels"] = {"app": "web"}

    result = check(tmp_path, aws_config(moto_aws, registry_ecr, groups), manifest)

    verdict = only_image(result)
    assert (result.exit_code, verdict["outcome"], verdict["identity"]["kind"]) == (
        0,
        "pullable",
        "fargate-role",
    )


def test_an_arm64_node_group_and_an_amd64_only_image_is_a_platform_mismatch_naming_the_group(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    role = make_role(moto_aws, aws_names("ng-ro"), managed=[READ_ONLY])
    groups = [node_group("ng-arm", role, platform="linux/arm64")]

    result = check(tmp_path, aws_config(moto_aws, registry_ecr, groups), pod("web", [image(repo)]))

    assert result.exit_code == 1
    verdict = only_image(result)
    assert verdict["outcome"] == "platform-mismatch"
    assert verdict["failingNodeGroups"] == ["ng-arm"]
    assert verdict["platforms"] == {"required": ["linux/arm64"], "available": ["linux/amd64"], "ok": False}
    assert verdict["message"] == (
        f"{ecr_host()}/{repo} is a single-platform image for linux/amd64; containerd pulls it on node group "
        "ng-arm (linux/arm64) but the container will not start (exec format error)"
    )


def test_a_multi_arch_index_pulls_on_an_amd64_and_an_arm64_node_group(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, ecr_name: Any, tmp_path: Path
) -> None:
    name = ecr_name("team")
    make_repository(moto_aws, name)
    push_index(registry_ecr, name, "1", credentials=registry_ecr.push_credentials)
    role = make_role(moto_aws, aws_names("ng-ro"), managed=[PULL_ONLY])
    groups = [node_group("ng-amd", role), node_group("ng-arm", role, platform="linux/arm64")]

    result = check(tmp_path, aws_config(moto_aws, registry_ecr, groups), pod("web", [image(name)]))

    verdict = only_image(result)
    assert (result.exit_code, verdict["outcome"], verdict["platforms"]["ok"]) == (0, "pullable", True)
    assert [a["identity"]["nodeGroup"] for a in verdict["attempts"]] == ["ng-amd", "ng-arm"]


# -- what pullguard cannot know, and says so ------------------------------------------------------------


def test_an_unknown_node_role_is_undetermined_and_says_how_to_configure_it(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    result = check(tmp_path, aws_config(moto_aws, registry_ecr), pod("web", [image(repo)]))

    assert result.exit_code == 3
    verdict = only_image(result)
    assert (verdict["outcome"], verdict["exists"], verdict["identity"]["kind"]) == (
        "undetermined",
        True,
        "node-role",
    )
    assert verdict["message"] == (
        "the IAM role of the nodes is not known, so pullguard cannot tell whether "
        "ecr-credential-provider may "
        f"pull {repo}"
    )
    assert verdict["fix"].startswith(
        "set identity.awsRoleArn (node groups) or identity.fargatePodExecutionRoleArn (Fargate profiles) "
        "on a "
        "cluster.nodeGroups entry in the configuration"
    )


def test_a_missing_tag_is_not_found_even_when_the_node_role_is_unknown(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    result = check(tmp_path, aws_config(moto_aws, registry_ecr), pod("web", [image(repo, tag="2")]))

    assert result.exit_code == 1
    verdict = only_image(result)
    assert (verdict["outcome"], verdict["exists"]) == ("not-found", False)
    assert verdict["message"] == (
        f"tag 2 of {ecr_host()}/{repo} does not exist (404 MANIFEST_UNKNOWN): pullguard looked with its "
        "own AWS credentials and "
        f"{ecr_host()} has no such manifest (the registry's pull-through cache rules could not be read: "
        "HTTP 500 "
        "(the endpoint does not implement describe_pull_through_cache_rules))"
    )
    assert "suggestions" not in verdict  # tags are listed only with a credential kubelet itself would send


def test_pullguards_own_refused_credentials_are_undetermined_with_a_clear_message(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    role = make_role(moto_aws, aws_names("ng-ro"), managed=[READ_ONLY])
    config = aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)])

    with moto_aws.enforcing_auth():  # IAM knows no user with pullguard's access key
        result = check(tmp_path, config, pod("web", [image(repo)]))

    assert result.exit_code == 3
    verdict = only_image(result)
    assert verdict["outcome"] == "undetermined"
    assert verdict["message"] == (
        "pullguard's own AWS credentials were refused by ECR in us-east-1 (InvalidClientTokenId: The "
        "security "
        "token included in the request is invalid.); without them it cannot see the image — fix the "
        "credentials "
        "pullguard runs with (IRSA/Pod Identity role in the cluster, environment or profile in CI)"
    )
    assert verdict["fix"].startswith("give pullguard working AWS credentials")
    assert ACCESS_KEY not in result.stdout and SECRET_KEY not in result.stdout


def test_an_unreachable_aws_endpoint_is_undetermined_not_a_crash(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    role = make_role(moto_aws, aws_names("ng-ro"), managed=[READ_ONLY])
    closed = dict.fromkeys(("ecr", "iam", "sts", "ec2", "eks"), "http://127.0.0.1:9")
    config = aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)], endpoints=closed)

    result = check(tmp_path, config, pod("web", [image(repo)]), output="text")

    assert result.exit_code == 3
    assert "pullguard could not get an ECR token in us-east-1: ecr: get_authorization_token:" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_role_in_another_account_than_pullguards_is_not_guessed(
    moto_aws: MotoServer, aws_names: Any, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    make_role(moto_aws, aws_names("ng-shared-name"), managed=[READ_ONLY])  # same name, pullguard's account
    foreign = role_arn("ng-shared-name", account="111122223333")

    result = check(
        tmp_path, aws_config(moto_aws, registry_ecr, [node_group("ng-a", foreign)]), pod("w", [image(repo)])
    )

    verdict = only_image(result)
    assert (result.exit_code, verdict["outcome"]) == (3, "undetermined")
    assert verdict["message"].startswith(
        f"role {foreign} is in account 111122223333, but pullguard's AWS credentials are for account "
        f"{ACCOUNT}"
    )


# -- ECR Public --------------------------------------------------------------------------------------


def test_ecr_public_is_pulled_anonymously_without_the_node_role(
    moto_aws: MotoServer,
    aws_names: Any,
    registry_ecr: RegistryProcess,
    registry_token: RegistryProcess,
    ecr_name: Any,
    tmp_path: Path,
) -> None:
    name = ecr_name("public")  # the token server lets anonymous pull public/*, as ECR Public does
    push_image(registry_token, name, "1", credentials=registry_token.push_credentials)
    role = make_role(moto_aws, aws_names("ng-plain"))
    config = aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)])
    config["aws"]["registryEndpoints"]["public.ecr.aws"] = registry_token.url

    result = check(tmp_path, config, pod("web", [f"public.ecr.aws/{name}:1"]))

    assert result.exit_code == 0, result.stdout
    verdict = only_image(result)
    assert (verdict["outcome"], verdict["visibility"]) == ("pullable", "public")
    assert [a["identity"]["kind"] for a in verdict["attempts"]] == ["anonymous"]


# -- configuration --------------------------------------------------------------------------------------

BAD_CONFIG = [
    pytest.param({"policyEvaluation": "guess"}, "aws.policyEvaluation", id="policy-evaluation"),
    pytest.param({"eksClusterName": "bad name!"}, "aws.eksClusterName", id="cluster-name"),
    pytest.param({"endpoints": {"s3": "http://127.0.0.1:1"}}, "aws.endpoints", id="unknown-service"),
]


@pytest.mark.parametrize(("aws", "key"), BAD_CONFIG)
def test_bad_aws_configuration_is_refused_naming_the_key(
    tmp_path: Path, aws: dict[str, Any], key: str
) -> None:
    result = run(
        ["check", "--config", write_config(tmp_path, {"aws": aws}), "-"], manifests(pod("p", ["nginx"]))
    )
    assert result.exit_code == 2
    assert f": {key}" in result.stderr


def test_a_role_of_another_partition_cannot_authenticate_to_the_registry(
    moto_aws: MotoServer, registry_ecr: RegistryProcess, repo: str, tmp_path: Path
) -> None:
    china = "arn:aws-cn:iam::123456789012:role/ng-cn"

    result = check(
        tmp_path, aws_config(moto_aws, registry_ecr, [node_group("ng-cn", china)]), pod("w", [image(repo)])
    )

    verdict = only_image(result)
    assert (result.exit_code, verdict["outcome"]) == (1, "unauthorized")
    assert f"role {china} is in partition aws-cn and {ecr_host()} in aws" in verdict["message"]


@pytest.mark.parametrize(
    ("managed", "code", "outcome"),
    [
        pytest.param([READ_ONLY], 3, "undetermined", id="node-may"),
        pytest.param([], 1, "unauthorized", id="node-may-not"),
    ],
)
def test_the_registry_refusing_pullguards_own_token_leaves_existence_open_but_not_the_node_roles_denial(
    moto_aws: MotoServer,
    aws_names: Any,
    registry_ecr: RegistryProcess,
    registry_htpasswd: RegistryProcess,
    repo: str,
    tmp_path: Path,
    managed: list[str],
    code: int,
    outcome: str,
) -> None:
    role = make_role(moto_aws, aws_names("ng"), managed=managed)
    config = aws_config(moto_aws, registry_ecr, [node_group("ng-a", role)])
    config["aws"]["registryEndpoints"][ecr_host()] = registry_htpasswd.url  # knows no user AWS

    result = check(tmp_path, config, pod("w", [image(repo)]))

    verdict = only_image(result)
    assert (result.exit_code, verdict["outcome"], verdict["exists"]) == (code, outcome, None)
    if outcome == "undetermined":
        assert f"but pullguard's own AWS identity may not read {repo} (401 UNAUTHORIZED" in verdict["message"]
        assert verdict["fix"].startswith("grant pullguard's own AWS identity ecr:GetAuthorizationToken")
