"""pytest fixtures for the real-process infrastructure (loaded via ``pytest_plugins``).

Servers are session-scoped because tests share them cheaply when each test seeds its own
repositories (use ``repo_name`` for collision-free names). Every fixture is a yield fixture, so
teardown runs even when tests fail; processes are stopped by their own PID.

Identities (also importable as constants):

* htpasswd registries: ``alice:s3cret-ALICE``, ``bob:s3cret-BOB``.
* token server: the same users; alice may pull ``team/*`` and ``alice/*``; bob may pull ``bob/*``
  and ``team/shared``; everybody (incl. anonymous) may pull ``public/*``. Seeding uses the token
  server's admin, whose requests show up in the stats — call ``token_server.reset_stats()``
  after seeding when asserting on request counts.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator

import pytest
import trustme

from tests.infra.containerd import Containerd
from tests.infra.registry import RegistryProcess
from tests.infra.tokenserver import TokenServer

ALICE = ("alice", "s3cret-ALICE")
BOB = ("bob", "s3cret-BOB")
USERS: dict[str, str] = dict([ALICE, BOB])
TOKEN_ACL: tuple[tuple[str | None, str], ...] = (
    ("alice", "team/*"),
    ("alice", "alice/*"),
    ("bob", "bob/*"),
    ("bob", "team/shared"),
    (None, "public/*"),
)


@pytest.fixture(scope="session")
def test_ca() -> trustme.CA:
    """One trustme CA per session; registry_tls and webhook TLS tests can share it."""
    return trustme.CA()


@pytest.fixture(scope="session")
def token_server_session() -> Iterator[TokenServer]:
    """The session's token server with the default users and ACL (state shared across tests)."""
    server = TokenServer(USERS)
    for principal, pattern in TOKEN_ACL:
        server.grant(principal, pattern, ("pull",))
    with server:
        yield server


@pytest.fixture
def token_server(token_server_session: TokenServer) -> Iterator[TokenServer]:
    """The session token server, reset before and after the test.

    Reset = default users/ACL restored, request stats cleared, ``delay``/``fail_with_status``
    cleared — so a test may change ACLs or inject faults without leaking them.
    """
    token_server_session.reset()
    try:
        yield token_server_session
    finally:
        token_server_session.reset()


def _registry(request: pytest.FixtureRequest, registry: RegistryProcess) -> RegistryProcess:
    request.addfinalizer(registry.stop)
    return registry.start()


@pytest.fixture(scope="session")
def registry_noauth(request: pytest.FixtureRequest) -> RegistryProcess:
    return _registry(request, RegistryProcess("noauth"))


@pytest.fixture(scope="session")
def registry_htpasswd(request: pytest.FixtureRequest) -> RegistryProcess:
    return _registry(request, RegistryProcess("htpasswd", users=USERS))


@pytest.fixture(scope="session")
def registry_token(request: pytest.FixtureRequest, token_server_session: TokenServer) -> RegistryProcess:
    return _registry(request, RegistryProcess("token", token_server=token_server_session))


@pytest.fixture(scope="session")
def registry_tls(request: pytest.FixtureRequest, test_ca: trustme.CA) -> RegistryProcess:
    """htpasswd + TLS (server cert for 127.0.0.1/localhost/::1 from ``test_ca``)."""
    return _registry(request, RegistryProcess("htpasswd", users=USERS, tls_ca=test_ca))


@pytest.fixture(scope="session")
def containerd(request: pytest.FixtureRequest) -> Containerd:
    """One private containerd for the session; raises ContainerdUnavailableError rather than skipping."""
    daemon = Containerd()
    request.addfinalizer(daemon.stop)
    return daemon.start()


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Factory for unique repository names: ``repo_name("team")`` → ``team/<test>-<random>``.

    Session registries are shared, so per-test names keep seeded content from colliding.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40] or "t"

    def make(prefix: str = "team") -> str:
        return f"{prefix}/{slug}-{secrets.token_hex(3)}"

    return make
