"""pytest fixtures for the AWS tests: moto (session, reset per test), ECR's data plane, and the
environment pullguard's boto3 reads its own credentials from (loaded via ``pytest_plugins``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from tests.infra.ecr_cache_rules import CacheRulesFront
from tests.infra.iam_simulator import IamSimulator
from tests.infra.moto_server import ACCESS_KEY, ECR_PASSWORD, REGION, SECRET_KEY, MotoServer
from tests.infra.registry import RegistryProcess

#: Variables that would make boto3 look elsewhere than the test's environment credentials.
_FOREIGN = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_ENDPOINT_URL",
)


@pytest.fixture(scope="session")
def moto_session() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """pullguard's own AWS credentials: fixed test keys in the environment, no profile, no IMDS."""
    for name in _FOREIGN:
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path_factory.mktemp("aws") / "none"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto_aws(moto_session: MotoServer, aws_env: None) -> MotoServer:
    """The session's moto (not wiped per test: see ``aws_names``), with pullguard's credentials set."""
    return moto_session


@pytest.fixture
def aws_names() -> Callable[[str], str]:
    """Unique names for what a test creates in the shared moto: ``aws_names("ng-a")`` → ``ng-a-1f2e3d``."""
    suffix = secrets.token_hex(3)
    return lambda base: f"{base}-{suffix}"


@pytest.fixture(scope="session")
def registry_ecr(request: pytest.FixtureRequest) -> RegistryProcess:
    """The real registry as ECR's data plane: htpasswd user ``AWS`` / ``<account>-auth-token``."""
    registry = RegistryProcess("htpasswd", users={"AWS": ECR_PASSWORD})
    request.addfinalizer(registry.stop)
    return registry.start()


@pytest.fixture
def iam_simulator() -> Iterator[IamSimulator]:
    with IamSimulator() as server:
        yield server


@pytest.fixture
def cache_rules(moto_session: MotoServer) -> Iterator[CacheRulesFront]:
    """An ``ecr`` endpoint answering DescribePullThroughCacheRules itself and the rest via moto."""
    with CacheRulesFront(moto_session.url) as front:
        yield front
