"""Bearer tokens the way containerd gets them, against the real token-auth registry.

containerd (core/remotes/docker/authorizer.go, auth/fetch.go) POSTs an OAuth2 password grant
when it has a password and falls back to GET with Basic credentials on 400/401/404 (405 with a
username); anonymous clients GET. Tokens are cached per (realm, service, scope, credential)
until shortly before ``expires_in``. The token server records every request it answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.infra.fixtures import ALICE, BOB
from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.infra.tokenserver import TokenServer
from tests.support.online import client, cred, ref, run
from tests.support.scripted import Reply, ScriptedServer
from webhook.adapters.http import make_client
from webhook.adapters.registry_auth import EXPIRY_MARGIN, MAX_TOKEN_RESPONSE, TokenCache, fetch_token
from webhook.core.challenge import Challenge
from webhook.core.destinations import DestinationPolicy
from webhook.core.errors import RegistryError
from webhook.core.identity import StaticCredential

pytestmark = pytest.mark.registry
RepoName = Callable[..., str]


def _checks(
    registry: RegistryProcess,
    images: list[tuple[str, StaticCredential | None]],
    tokens: TokenCache | None = None,
    between: Callable[[], None] | None = None,
) -> list[str]:
    async def go() -> list[str]:
        c = client([registry], tokens=tokens)
        out = []
        try:
            for image, who in images:
                out.append((await c.check(ref(image), who, want_manifest=False)).result)
                if between is not None:
                    between()
        finally:
            await c.aclose()
        return out

    return run(go())


def _log(ts: TokenServer) -> list[tuple[str, str | None, int]]:
    return [(r.method, r.username, r.status) for r in ts.requests]


@pytest.mark.parametrize(
    ("who", "fault", "log", "outcome"),
    [
        pytest.param(ALICE, None, [("POST", "alice", 200)], "pullable", id="password-grant-post"),
        pytest.param(
            ALICE,
            404,
            [("POST", "alice", 404), ("GET", "alice", 200)],
            "pullable",
            id="post-404-falls-back-to-get",
        ),
        pytest.param(
            ALICE,
            400,
            [("POST", "alice", 400), ("GET", "alice", 200)],
            "pullable",
            id="post-400-falls-back-to-get",
        ),
        pytest.param(
            ALICE,
            405,
            [("POST", "alice", 405), ("GET", "alice", 200)],
            "pullable",
            id="post-405-with-username",
        ),
        pytest.param(ALICE, 503, [("POST", "alice", 503)], "unreachable", id="post-503-is-not-a-fallback"),
        pytest.param(
            ("alice", "wrong"),
            None,
            [("POST", "alice", 401), ("GET", "alice", 401)],
            "unauthorized",
            id="wrong-password-post-then-get",
        ),
        pytest.param(None, None, [("GET", None, 200)], "unauthorized", id="anonymous-get-only"),
    ],
)
def test_token_requests_follow_containerd(
    registry_token: RegistryProcess,
    token_server: TokenServer,
    repo_name: RepoName,
    who: tuple[str, str] | None,
    fault: int | None,
    log: list[tuple[str, str | None, int]],
    outcome: str,
) -> None:
    pushed = push_image(registry_token, repo_name("team"), "v1")
    token_server.reset_stats()
    if fault is not None:
        token_server.fail_with_status, token_server.fail_times = fault, 1
    assert _checks(registry_token, [(pushed.ref, cred(*who) if who else None)]) == [outcome]
    assert _log(token_server) == log
    post = next((r for r in token_server.requests if r.method == "POST"), None)
    if post is not None:
        assert post.client_id == "pullguard" and post.scopes == (
            f"repository:{pushed.ref.split('/', 1)[1].split(':')[0]}:pull",
        )


def test_tokens_are_cached_per_scope_and_credential(
    registry_token: RegistryProcess, token_server: TokenServer, repo_name: RepoName
) -> None:
    a = push_image(registry_token, repo_name("team"), "v1")
    b = push_image(registry_token, repo_name("team"), "v1")
    token_server.reset_stats()
    results = _checks(
        registry_token,
        [
            (a.ref, cred(*ALICE)),
            (a.ref, cred(*ALICE)),  # cached: same realm, service, scope, credential
            (a.digest_ref, cred(*ALICE)),  # same scope (the repository), another reference: cached
            (b.ref, cred(*ALICE)),  # another scope
            (a.ref, cred(*BOB)),  # another credential
            (a.ref, cred("alice", "wrong")),  # same username, another password: another fingerprint
            (a.ref, None),  # anonymous
            (a.ref, None),  # anonymous again: the anonymous token is cached too
        ],
    )
    assert results == ["pullable"] * 4 + ["forbidden", "unauthorized", "unauthorized", "unauthorized"]
    scope_a, scope_b = (f"repository:{p.ref.split('/', 1)[1].split(':')[0]}:pull" for p in (a, b))
    assert [(r.method, r.username, r.scopes, r.status) for r in token_server.requests] == [
        ("POST", "alice", (scope_a,), 200),
        ("POST", "alice", (scope_b,), 200),
        ("POST", "bob", (scope_a,), 200),
        ("POST", "alice", (scope_a,), 401),
        ("GET", "alice", (scope_a,), 401),
        ("GET", None, (scope_a,), 200),
    ]


def test_tokens_expire_by_expires_in(
    registry_token: RegistryProcess, token_server: TokenServer, repo_name: RepoName
) -> None:
    pushed = push_image(registry_token, repo_name("team"), "v1")
    token_server.reset_stats()
    now = [1000.0]
    ttl = float(token_server.token_ttl)  # the token server answers expires_in = token_ttl
    # after check 1: no time passes; after 2: until 1 s before expiry minus the margin; after 3: past it
    steps = iter([0.0, ttl - EXPIRY_MARGIN - 1, 2.0, 0.0])

    def tick() -> None:
        now[0] += next(steps)

    results = _checks(
        registry_token,
        [(pushed.ref, cred(*ALICE))] * 4,
        tokens=TokenCache(clock=lambda: now[0]),
        between=tick,
    )
    assert results == ["pullable"] * 4
    assert [r.method for r in token_server.requests] == ["POST", "POST"]  # checks 1 and 4 fetched


def test_a_token_cache_shared_by_clients_is_reused(
    registry_token: RegistryProcess, token_server: TokenServer, repo_name: RepoName
) -> None:
    pushed = push_image(registry_token, repo_name("team"), "v1")
    token_server.reset_stats()
    tokens = TokenCache()
    assert _checks(registry_token, [(pushed.ref, cred(*ALICE))], tokens=tokens) == ["pullable"]
    assert _checks(registry_token, [(pushed.ref, cred(*ALICE))], tokens=tokens) == ["pullable"]
    assert token_server.count("POST") == 1 and len(tokens) == 1


def test_slow_token_server_is_a_timeout_naming_it(
    registry_token: RegistryProcess, token_server: TokenServer, repo_name: RepoName
) -> None:
    pushed = push_image(registry_token, repo_name("team"), "v1")
    token_server.delay = 1.5

    async def go() -> tuple[str, str | None]:
        c = client([registry_token], request_timeout=0.5)
        try:
            o = await c.check(ref(pushed.ref), cred(*ALICE), want_manifest=False)
        finally:
            await c.aclose()
        return o.result, o.detail

    result, detail = run(go())
    assert result == "timeout"
    assert detail == f"token server {token_server.realm} did not answer within 0.5s"


def test_a_token_answer_larger_than_the_cap_is_refused_not_buffered() -> None:
    with ScriptedServer() as realm:
        realm.route("GET", "/token", Reply(200, body=b"{" + b" " * (MAX_TOKEN_RESPONSE + 10) + b"}"))
        challenge = Challenge("bearer", {"realm": f"http://{realm.netloc}/token", "service": "s"})

        async def ask() -> str:
            client = make_client(policy=DestinationPolicy(allow_loopback=True), timeout=2.0)
            try:
                await fetch_token(client, challenge, "repository:a/b:pull", None, 2.0)
            except RegistryError as exc:
                return exc.message
            finally:
                await client.aclose()
            return "no error"

        message = asyncio.run(ask())
    assert message.endswith(f"sent more than {MAX_TOKEN_RESPONSE} bytes")
