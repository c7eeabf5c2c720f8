"""The network guard (adapters/http.py) on the host's loopback: what is refused never gets a SYN.

Every server here listens on 127.0.0.x and counts accepted TCP connections. Destinations that
must be refused while loopback is allowed are multicast addresses (224.0.0.0/4, always refused):
if the guard were broken, Linux refuses a TCP connect to them locally (``tcp_v4_connect``:
ENETUNREACH for multicast routes), so nothing leaves the machine either way — and the test tells
the two apart, because only the guard raises ``DestinationRefusedError``. Link-local and metadata
destinations are tested inside a loopback-only network namespace (tests/test_netns_guard.py).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from tests.netns.servers import CountingServer
from tests.support.cli import run as run_cli
from tests.support.cli import write_config
from tests.support.online import LOOPBACK, client, ref, run
from tests.support.scripted import Reply, ScriptedServer
from webhook.adapters.http import make_client
from webhook.core.assess import Observation
from webhook.core.destinations import DestinationPolicy
from webhook.core.errors import DestinationRefusedError

DEFAULT = DestinationPolicy()


class Resolver:
    """An injected resolver with scripted answers per call (the second answer is the rebinding one)."""

    def __init__(self, answers: dict[str, Sequence[Sequence[str]]]) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        queue = self.answers.get(host)
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} is not in the test's table")
        return queue.pop(0) if len(queue) > 1 else queue[0]


async def _get(url: str, policy: DestinationPolicy, resolver: Resolver | None = None, **kw: object) -> object:
    async with make_client(policy=policy, timeout=2, resolver=resolver) as http:
        try:
            return (await http.get(url, **kw)).status_code  # type: ignore[arg-type]
        except DestinationRefusedError as exc:
            return exc


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "127.1.2.3"])
def test_loopback_is_refused_by_default_and_allowed_with_allow_loopback(address: str) -> None:
    with CountingServer(address) as server:
        refused = run(_get(server.url("/v2/"), DEFAULT))
        assert isinstance(refused, DestinationRefusedError)
        assert "loopback" in refused.reason and "network.allowLoopback" in refused.reason
        assert server.connections == 0
        assert run(_get(server.url("/v2/"), LOOPBACK)) == 200
        assert server.connections == 1


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]", "localhost"])
def test_every_spelling_of_loopback_is_refused(spelling: str) -> None:
    with CountingServer("127.0.0.1") as server:
        refused = run(_get(server.url("/", host=spelling), DEFAULT))
        assert isinstance(refused, DestinationRefusedError), refused
        assert server.connections == 0


def test_a_name_resolving_to_loopback_is_refused_without_connecting() -> None:
    resolver = Resolver({"registry.test": [["127.0.0.2"]]})
    with CountingServer("127.0.0.2") as server:
        refused = run(_get(server.url("/v2/", host="registry.test"), DEFAULT, resolver))
        assert isinstance(refused, DestinationRefusedError) and refused.address == "127.0.0.2"
        assert server.connections == 0 and resolver.asked == ["registry.test"]


def test_dns_rebinding_cannot_swap_the_address_after_the_check() -> None:
    # First answer: the allowed server. Any later resolution would get a refused address — and a
    # socket layer that resolved again would not know "rebind.test" at all. One answer is used.
    resolver = Resolver({"rebind.test": [["127.0.0.1"], ["224.0.0.1"]]})
    with CountingServer("127.0.0.1") as server:
        assert run(_get(server.url("/v2/", host="rebind.test"), LOOPBACK, resolver)) == 200
        assert resolver.asked == ["rebind.test"] and server.connections == 1
        again = run(_get(server.url("/v2/", host="rebind.test"), LOOPBACK, resolver))
        assert isinstance(again, DestinationRefusedError) and again.address == "224.0.0.1"
        assert server.connections == 1


def test_a_name_with_refused_and_allowed_addresses_connects_only_to_the_allowed_one() -> None:
    resolver = Resolver({"mixed.test": [["224.0.0.1", "127.0.0.1"]]})
    with CountingServer("127.0.0.1") as server:
        assert run(_get(server.url("/v2/", host="mixed.test"), LOOPBACK, resolver)) == 200
        assert server.connections == 1


@pytest.mark.parametrize("target", ["http://224.0.0.1/latest", "http://mcast.test/latest"])
def test_a_redirect_to_a_refused_address_is_refused(target: str) -> None:
    resolver = Resolver({"mcast.test": [["224.0.0.1"]]})
    with CountingServer("127.0.0.1") as server:
        hop = server.url(f"/redirect?to={target}")
        refused = run(_get(hop, LOOPBACK, resolver, follow_redirects=True))
        assert isinstance(refused, DestinationRefusedError) and refused.address == "224.0.0.1"
        assert server.requests == 1  # the redirecting server was asked; the target never was


def _observe(s: ScriptedServer, resolver: Resolver | None = None) -> Observation:
    async def go() -> Observation:
        c = client(plain_http=[s.netloc], resolver=resolver)
        try:
            return await c.check(ref(f"{s.netloc}/team/app:v1"), None, want_manifest=False)
        finally:
            await c.aclose()

    return run(go())


@pytest.mark.parametrize(
    ("header", "names"),
    [
        pytest.param({"Location": "http://224.0.0.5/v2/team/app/manifests/v1"}, {}, id="redirect-literal"),
        pytest.param(
            {"Location": "http://mcast.test/v2/x"}, {"mcast.test": [["224.0.0.5"]]}, id="redirect-name"
        ),
        pytest.param(
            {"WWW-Authenticate": 'Bearer realm="http://224.0.0.6/token",service="s"'},
            {},
            id="token-realm-literal",
        ),
        pytest.param(
            {"WWW-Authenticate": 'Bearer realm="http://realm.test/token",service="s"'},
            {"realm.test": [["224.0.0.6"]]},
            id="token-realm-name",
        ),
    ],
)
def test_registry_redirects_and_token_realms_pass_the_guard(
    header: dict[str, str], names: dict[str, Sequence[Sequence[str]]]
) -> None:
    status = 302 if "Location" in header else 401
    with ScriptedServer() as registry:
        registry.route("HEAD", "/v2/team/app/manifests/v1", Reply(status, header))
        got = _observe(registry, Resolver(names))
    assert got.result == "refused-destination", got
    assert got.detail is not None and "224.0.0." in got.detail and "refused" in got.detail


def test_cli_refuses_a_loopback_registry_without_allow_loopback(tmp_path: Path) -> None:
    with CountingServer("127.0.0.1") as server:
        config = write_config(tmp_path, {"network": {"plainHttp": [f"127.0.0.1:{server.port}"]}})
        r = run_cli(
            ["explain", "--config", config, "--output", "json", f"127.0.0.1:{server.port}/team/app:v1"]
        )
        assert server.connections == 0
    assert r.exit_code == 1, r.stdout + r.stderr
    assert r.json["outcome"] == "refused-destination"
    assert "network.allowLoopback" in r.json["message"]


def test_httpx_is_not_the_one_refusing() -> None:
    """The refusal is pullguard's own type, raised before any httpx transport error could occur."""
    with CountingServer("127.0.0.1") as server:
        outcome = run(_get(server.url("/"), DEFAULT))
    assert type(outcome) is DestinationRefusedError and not isinstance(outcome, httpx.HTTPError)


class _SlowResolver:
    async def __call__(self, host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(5)
        return ["127.0.0.1"]


@pytest.mark.parametrize(
    ("resolver", "error"),
    [
        pytest.param(Resolver({}), httpx.ConnectError, id="unknown-name-is-connect-error"),
        pytest.param(_SlowResolver(), httpx.ConnectTimeout, id="slow-resolver-is-connect-timeout"),
    ],
)
def test_resolution_failures_are_httpx_errors_as_for_httpx_own_resolver(
    resolver: object, error: type
) -> None:
    async def go() -> BaseException | None:
        async with make_client(policy=LOOPBACK, timeout=0.3, resolver=resolver) as http:  # type: ignore[arg-type]
            try:
                await http.get("http://nowhere.test/v2/")
            except Exception as exc:
                return exc
        return None

    assert type(run(go())) is error
