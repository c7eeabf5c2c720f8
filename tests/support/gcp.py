"""Fixtures for the GCP tests: the wire fake of the Google APIs and the real registry as AR's data plane.

``gcp_env`` gives one test a clean fake cloud, the session's htpasswd ``docker-registry`` whose
only user is ``oauth2accesstoken`` with pullguard's token as password (what Artifact Registry's
Docker endpoint accepts), a token file for ``gcp.accessTokenFile`` and a config builder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra.fake_gcp import FakeGcp
from tests.infra.registry import RegistryProcess

PULLGUARD_TOKEN = "ya29.pullguard-test-token"
SERVICES = ("artifactregistry", "container", "cloudresourcemanager", "iamcredentials")
AR_HOSTS = ("us-docker.pkg.dev", "europe-west1-docker.pkg.dev", "gcr.io", "eu.gcr.io")


@pytest.fixture(scope="session")
def fake_gcp_session() -> Iterator[FakeGcp]:
    with FakeGcp(PULLGUARD_TOKEN) as fake:
        yield fake


@pytest.fixture(scope="session")
def registry_ar(request: pytest.FixtureRequest) -> RegistryProcess:
    registry = RegistryProcess("htpasswd", users={"oauth2accesstoken": PULLGUARD_TOKEN})
    request.addfinalizer(registry.stop)
    return registry.start()


@dataclass
class GcpEnv:
    fake: FakeGcp
    registry: RegistryProcess
    token_file: Path
    tmp: Path

    def config(self, groups: list[dict[str, Any]], **gcp: Any) -> dict[str, Any]:
        return {
            "network": {"allowLoopback": True},
            "cluster": {"nodeGroups": groups},
            "gcp": {
                "endpoints": {s: self.fake.url for s in SERVICES},
                "registryEndpoints": {h: self.registry.url for h in AR_HOSTS},
                "accessTokenFile": str(self.token_file),
                **gcp,
            },
        }


@pytest.fixture
def gcp_env(fake_gcp_session: FakeGcp, registry_ar: RegistryProcess, tmp_path: Path) -> Iterator[GcpEnv]:
    fake_gcp_session.reset()
    token_file = tmp_path / "gcp-token"
    token_file.write_text(PULLGUARD_TOKEN + "\n")
    try:
        yield GcpEnv(fake_gcp_session, registry_ar, token_file, tmp_path)
    finally:
        fake_gcp_session.reset()
