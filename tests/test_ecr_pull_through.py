"""ECR pull-through cache repositories: the first pull of an uncached image imports it, which needs
``ecr:BatchImportUpstreamImage`` (and ``ecr:CreateRepository`` while the cache repository does not
exist) on top of the pull permissions (ECR User Guide, "IAM permissions required to sync an upstream
registry"). moto lacks DescribePullThroughCacheRules, so ``tests/infra/ecr_cache_rules.py`` answers
that one action in front of moto."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.ecr_cache_rules import CacheRulesFront
from tests.infra.moto_server import ACCOUNT, MotoServer
from tests.infra.registry import RegistryProcess
from tests.support.cli import manifests, pod, run, write_config
from tests.support.ecr import (
    PULL_ONLY,
    READ_ONLY,
    allow,
    aws_config,
    ecr_host,
    make_repository,
    make_role,
    node_group,
)

UPSTREAM = "registry-1.docker.io"


def check(tmp_path: Path, config: dict[str, Any], image: str) -> tuple[int, dict[str, Any]]:
    result = run(
        ["check", "--config", write_config(tmp_path, config), "--output", "json", "-"],
        manifests(pod("w", [image])),
    )
    return result.exit_code, result.json["results"][0]["images"][0]


CASES = [
    pytest.param(
        [READ_ONLY], {}, True, 1, "forbidden", "ecr:BatchImportUpstreamImage", id="readonly-cannot-import"
    ),
    pytest.param([PULL_ONLY], {}, False, 1, "forbidden", "ecr:CreateRepository", id="pullonly-cannot-create"),
    pytest.param(
        [PULL_ONLY],
        {"create": allow("ecr:CreateRepository")},
        False,
        3,
        "undetermined",
        None,
        id="may-import",
    ),
]


@pytest.mark.parametrize(("managed", "inline", "repo_exists", "code", "outcome", "missing"), CASES)
def test_an_uncached_pull_through_image_needs_the_import_permissions(
    moto_aws: MotoServer,
    aws_names: Any,
    registry_ecr: RegistryProcess,
    cache_rules: CacheRulesFront,
    tmp_path: Path,
    managed: list[str],
    inline: dict[str, Any],
    repo_exists: bool,
    code: int,
    outcome: str,
    missing: str | None,
) -> None:
    prefix = aws_names("docker-hub")
    repo = f"{prefix}/library/nginx"
    if repo_exists:
        make_repository(moto_aws, repo)
    cache_rules.rule(prefix, UPSTREAM, ACCOUNT)
    role = make_role(moto_aws, aws_names("ng-cache"), managed=managed, inline=inline)
    config = aws_config(
        moto_aws,
        registry_ecr,
        [node_group("ng-a", role)],
        endpoints={**moto_aws.endpoints(), "ecr": cache_rules.url},
    )

    exit_code, verdict = check(tmp_path, config, f"{ecr_host()}/{repo}:1.27")

    assert (exit_code, verdict["outcome"]) == (code, outcome)
    assert cache_rules.asked == 1
    if missing is not None:
        assert (
            f"{role} is not authorized to perform: {missing} on resource: "
            f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{repo}" in verdict["message"]
        )
        assert (
            f"({repo} is a pull-through cache of {UPSTREAM} and this image is not cached yet"
            in verdict["message"]
        )
    else:
        assert verdict["message"].startswith(
            f"{repo} is not cached yet in the pull-through cache of {UPSTREAM}: the first pull imports it"
        )
        assert verdict["fix"] == f"check that library/nginx exists on {UPSTREAM}"


def test_a_missing_image_outside_every_cache_prefix_is_simply_not_found(
    moto_aws: MotoServer,
    aws_names: Any,
    registry_ecr: RegistryProcess,
    cache_rules: CacheRulesFront,
    tmp_path: Path,
) -> None:
    cache_rules.rule(aws_names("docker-hub"), UPSTREAM, ACCOUNT)
    role = make_role(moto_aws, aws_names("ng-cache"), managed=[PULL_ONLY])
    config = aws_config(
        moto_aws,
        registry_ecr,
        [node_group("ng-a", role)],
        endpoints={**moto_aws.endpoints(), "ecr": cache_rules.url},
    )
    repo = aws_names("team/app")

    exit_code, verdict = check(tmp_path, config, f"{ecr_host()}/{repo}:1")

    assert (exit_code, verdict["outcome"], verdict["exists"]) == (1, "not-found", False)
    assert verdict["message"].endswith(
        f"pullguard looked with its own AWS credentials and {ecr_host()} has no such manifest"
    )
