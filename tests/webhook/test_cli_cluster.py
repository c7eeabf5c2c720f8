"""``pullguard check --kubeconfig/--context``: the CLI reads the cluster through the webhook's adapter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.infra.fake_apiserver import FakeApiServer
from tests.infra.fixtures import ALICE
from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.support.cli import registry_config, run, write_config
from tests.support.reviews import deployment


@pytest.mark.parametrize(
    ("password", "exit_code", "outcome"),
    [
        pytest.param(ALICE[1], 0, "pullable", id="secret-works"),
        pytest.param("old", 1, "unauthorized", id="secret-stale"),
    ],
)
def test_check_uses_the_clusters_service_account_and_pull_secret(
    fake_api: FakeApiServer,
    kubeconfig: Path,
    registry_htpasswd: RegistryProcess,
    repo_name: Callable[[str], str],
    namespace: str,
    tmp_path: Path,
    password: str,
    exit_code: int,
    outcome: str,
) -> None:
    repo = repo_name("team")
    push_image(registry_htpasswd, repo, "1.0", credentials=registry_htpasswd.push_credentials)
    fake_api.add_service_account(namespace, "builder", ["regcred"])
    fake_api.add_pull_secret(namespace, "regcred", registry_htpasswd.host, ALICE[0], password)
    manifest = tmp_path / "app.yaml"
    image = f"{registry_htpasswd.host}/{repo}:1.0"
    manifest.write_text(yaml.safe_dump(deployment("web", namespace, [image], service_account="builder")))
    config = write_config(tmp_path, registry_config(registry_htpasswd))

    result = run(
        ["check", str(manifest), "--config", config, "--kubeconfig", str(kubeconfig), "--output", "json"]
    )

    assert result.exit_code == exit_code, result.stderr
    image_json = result.json["results"][0]["images"][0]
    assert image_json["outcome"] == outcome
    assert image_json["identity"]["name"] == f"{namespace}/regcred"
    assert password not in result.stdout


def test_check_against_an_unreachable_context_reports_findings_not_a_traceback(
    kubeconfig: Path, registry_noauth: RegistryProcess, repo_name: Callable[[str], str], tmp_path: Path
) -> None:
    repo = repo_name("team")
    push_image(registry_noauth, repo, "1.0")
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump(deployment("web", "shop", [f"{registry_noauth.host}/{repo}:1.0"])))
    config = write_config(tmp_path, registry_config(registry_noauth))

    result = run(
        ["check", str(manifest), "--config", config, "--kubeconfig", str(kubeconfig), "--context", "down"]
    )

    assert result.exit_code == 0, result.stderr  # the public image pulls; what could not be read is said
    assert (
        "! spec.template.spec.serviceAccountName: ServiceAccount shop/default could not be read "
        "(the API server at "
        "https://127.0.0.1:9 is unreachable (connection refused))"
    ) in result.stdout


def test_check_with_an_unusable_kubeconfig_is_bad_usage(tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(yaml.safe_dump(deployment("web", "shop", ["nginx"])))

    result = run(["check", str(manifest), "--kubeconfig", str(tmp_path / "nope.yaml")])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"pullguard: cannot use {tmp_path}/nope.yaml: ")
