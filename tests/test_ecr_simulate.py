"""``aws.policyEvaluation: simulate``: IAM's policy simulator decides, pullguard asks it the right question.

moto does not implement iam:SimulatePrincipalPolicy, so IAM is the wire-level fake in
``tests/infra/iam_simulator.py`` (scripted decisions, recorded requests); ECR, STS and the data plane
are moto and the real registry as in ``test_ecr_pull.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.iam_simulator import IamSimulator
from tests.infra.images import push_image
from tests.infra.moto_server import ACCOUNT, OTHER_ACCOUNT, MotoServer
from tests.infra.registry import RegistryProcess
from tests.support.cli import Run, manifests, pod, run, write_config
from tests.support.ecr import aws_config, ecr_host, make_repository, node_group, role_arn

TOKEN = "ecr:GetAuthorizationToken"
PULL = "ecr:BatchGetImage"
LAYERS = "ecr:GetDownloadUrlForLayer"
ROLE = role_arn("ng-sim")


@pytest.fixture
def ecr_name(repo_name: Any) -> Any:
    return lambda prefix="team": re.sub(r"[-._]{2,}", "-", str(repo_name(prefix)))


def setup(
    moto: MotoServer,
    registry: RegistryProcess,
    simulator: IamSimulator,
    name: str,
    account: str = ACCOUNT,
    policy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    make_repository(moto, name, account=account, policy=policy)
    push_image(registry, name, "1", credentials=registry.push_credentials)
    endpoints = {**moto.endpoints(), "iam": simulator.url}
    return aws_config(
        moto,
        registry,
        [node_group("ng-a", ROLE)],
        accounts=(ACCOUNT, OTHER_ACCOUNT),
        endpoints=endpoints,
        policyEvaluation="simulate",
    )


def check(tmp_path: Path, config: dict[str, Any], image: str) -> tuple[Run, dict[str, Any]]:
    result = run(
        ["check", "--config", write_config(tmp_path, config), "--output", "json", "-"],
        manifests(pod("w", [image])),
    )
    return result, result.json["results"][0]["images"][0]


def test_the_simulator_is_asked_for_the_token_and_the_repository_actions(
    moto_aws: MotoServer,
    registry_ecr: RegistryProcess,
    iam_simulator: IamSimulator,
    ecr_name: Any,
    tmp_path: Path,
) -> None:
    name = ecr_name()
    config = setup(moto_aws, registry_ecr, iam_simulator, name)

    result, verdict = check(tmp_path, config, f"{ecr_host()}/{name}:1")

    assert (result.exit_code, verdict["outcome"]) == (0, "pullable")
    token, repo = iam_simulator.requests
    assert (token["PolicySourceArn"], token["ActionNames"], token["ResourceArns"]) == (ROLE, [TOKEN], ["*"])
    assert (repo["ActionNames"], repo["ResourceArns"]) == (
        [PULL, LAYERS],
        [f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{name}"],
    )
    assert repo["ResourcePolicy"] is None  # the repository has none
    assert repo["Context"]["aws:SecureTransport"] == ["true"]
    assert repo["Context"]["aws:RequestedRegion"] == ["us-east-1"]


DECISIONS = [
    pytest.param(
        PULL,
        {"decision": "explicitDeny", "matched": [("deny-ecr", "role")]},
        1,
        "forbidden",
        f"{ROLE} is not authorized to perform: {PULL} on resource: "
        f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/"
        "{name} with an explicit deny in policy deny-ecr (role)",
        id="explicit-deny",
    ),
    pytest.param(
        TOKEN,
        {"decision": "implicitDeny"},
        1,
        "unauthorized",
        f"{ROLE} is not authorized to perform: {TOKEN} on resource: * because no identity-based policy "
        "allows "
        f"the {TOKEN} action",
        id="implicit-deny-token",
    ),
    pytest.param(
        PULL,
        {"decision": "implicitDeny", "organizations": False},
        1,
        "forbidden",
        f"because no service control policy allows the {PULL} action",
        id="scp",
    ),
    pytest.param(
        PULL,
        {"decision": "allowed", "missing_context": ["aws:SourceVpce"]},
        3,
        "undetermined",
        "the condition keys aws:SourceVpce, which the policy simulator was not given",
        id="missing-context",
    ),
]


@pytest.mark.parametrize(("action", "answer", "code", "outcome", "said"), DECISIONS)
def test_the_simulators_decision_is_what_the_user_sees(
    moto_aws: MotoServer,
    registry_ecr: RegistryProcess,
    iam_simulator: IamSimulator,
    ecr_name: Any,
    tmp_path: Path,
    action: str,
    answer: dict[str, Any],
    code: int,
    outcome: str,
    said: str,
) -> None:
    name = ecr_name()
    config = setup(moto_aws, registry_ecr, iam_simulator, name)
    iam_simulator.answer(action, **answer)

    result, verdict = check(tmp_path, config, f"{ecr_host()}/{name}:1")

    assert (result.exit_code, verdict["outcome"]) == (code, outcome)
    assert said.replace("{name}", name) in verdict["message"]


def test_a_cross_account_repository_policy_is_simulated_as_the_resource_owner(
    moto_aws: MotoServer,
    registry_ecr: RegistryProcess,
    iam_simulator: IamSimulator,
    ecr_name: Any,
    tmp_path: Path,
) -> None:
    name = ecr_name("shared")
    grant = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": PULL}],
    }
    config = setup(moto_aws, registry_ecr, iam_simulator, name, account=OTHER_ACCOUNT, policy=grant)
    iam_simulator.answer(LAYERS, decision="implicitDeny", details={"Resource Policy": "implicitDeny"})

    result, verdict = check(tmp_path, config, f"{ecr_host(OTHER_ACCOUNT)}/{name}:1")

    repo_arn = f"arn:aws:ecr:us-east-1:{OTHER_ACCOUNT}:repository/{name}"
    sent = iam_simulator.requests[1]
    assert (sent["CallerArn"], sent["ResourceOwner"]) == (ROLE, f"arn:aws:iam::{OTHER_ACCOUNT}:root")
    assert json.loads(sent["ResourcePolicy"])["Statement"][0]["Resource"] == repo_arn  # the implied Resource
    assert (result.exit_code, verdict["outcome"]) == (1, "forbidden")
    assert f"because no resource-based policy allows the {LAYERS} action" in verdict["message"]
    assert verdict["fix"].startswith(
        f"add this statement to the repository policy of {name} in account {OTHER_ACCOUNT}"
    )


def test_a_cross_account_repository_without_a_policy_is_refused_although_the_identity_allows(
    moto_aws: MotoServer,
    registry_ecr: RegistryProcess,
    iam_simulator: IamSimulator,
    ecr_name: Any,
    tmp_path: Path,
) -> None:
    name = ecr_name("shared")
    config = setup(moto_aws, registry_ecr, iam_simulator, name, account=OTHER_ACCOUNT)

    result, verdict = check(tmp_path, config, f"{ecr_host(OTHER_ACCOUNT)}/{name}:1")

    assert (result.exit_code, verdict["outcome"]) == (1, "forbidden")
    assert f"because no resource-based policy allows the {PULL} action" in verdict["message"]


def test_pullguard_not_allowed_to_simulate_is_undetermined_and_says_what_to_grant(
    moto_aws: MotoServer,
    registry_ecr: RegistryProcess,
    iam_simulator: IamSimulator,
    ecr_name: Any,
    tmp_path: Path,
) -> None:
    name = ecr_name()
    config = setup(moto_aws, registry_ecr, iam_simulator, name)
    iam_simulator.refuse = (
        403,
        "AccessDenied",
        "User: arn:aws:iam::123456789012:user/pullguard is not authorized",
    )

    result, verdict = check(tmp_path, config, f"{ecr_host()}/{name}:1")

    assert (result.exit_code, verdict["outcome"], verdict["exists"]) == (3, "undetermined", True)
    assert verdict["message"].startswith(
        "pullguard's own AWS identity may not call iam:SimulatePrincipalPolicy (AccessDenied: User: "
    )
