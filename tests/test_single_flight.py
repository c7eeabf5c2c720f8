"""Concurrent checks share what does not depend on who asks: the challenge, tokens, manifest bodies.

A fresh client meeting many images at once (a Deployment of 20 images, a stampede of admissions,
a CI run over 200 images) must not collect one 401 challenge per image, fetch the same token once
per waiting check, or GET the same manifest digest once per tag. Counted at the real token server
(its request record) and at the client's own request hook — never timed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from tests.infra.fixtures import ALICE
from tests.infra.images import push_image, push_index, put_manifest, registry_client
from tests.infra.registry import RegistryProcess
from tests.infra.tokenserver import TokenServer
from tests.support.cli import pod, pull_secret
from tests.support.online import client, cred, ref, run
from webhook.adapters.stream_objects import StreamObjects
from webhook.core.identity import ClusterView
from webhook.core.nodes import NodeGroup
from webhook.core.objects import secret_from_dict
from webhook.core.platforms import parse_platform
from webhook.engine import Engine, EngineOptions

pytestmark = pytest.mark.registry
RepoName = Callable[..., str]
Seen = Counter[tuple[str, int | None]]
AMD64 = ClusterView(groups=(NodeGroup(None, parse_platform("linux/amd64")),), providers=())


def _checks(
    registry: RegistryProcess, images: list[str], who: tuple[str, str] | None, *, want_manifest: bool = False
) -> tuple[list[str], Seen]:
    """Check ``images`` all at once on one fresh client; outcomes and (method, status) counts."""
    seen: Seen = Counter()

    def hook(host: str, method: str, status: int | None, seconds: float) -> None:
        seen[(method, status)] += 1

    async def go() -> list[str]:
        c = client([registry], on_request=hook)
        identity = cred(*who) if who else None
        try:
            answers = await asyncio.gather(
                *(c.check(ref(image), identity, want_manifest=want_manifest) for image in images)
            )
        finally:
            await c.aclose()
        return [a.result for a in answers]

    return run(go()), seen


@pytest.mark.parametrize(
    ("who", "method"),
    [
        pytest.param(ALICE, "POST", id="password-grant"),
        pytest.param(None, "GET", id="anonymous"),
    ],
)
def test_concurrent_checks_of_one_repository_fetch_one_token_and_learn_one_challenge(
    registry_token: RegistryProcess,
    token_server: TokenServer,
    repo_name: RepoName,
    who: tuple[str, str] | None,
    method: str,
) -> None:
    repo = repo_name("team" if who else "public")
    push_image(registry_token, repo, "v1", credentials=registry_token.push_credentials)
    token_server.reset_stats()

    results, seen = _checks(registry_token, [f"{registry_token.host}/{repo}:v1"] * 12, who)

    assert results == ["pullable"] * 12
    assert [(r.method, r.status) for r in token_server.requests] == [(method, 200)]
    assert seen[("HEAD", 401)] == 1  # the first request learnt the challenge; the others waited
    assert seen[("HEAD", 200)] == 12


def test_concurrent_checks_of_many_repositories_share_one_challenge(
    registry_token: RegistryProcess, token_server: TokenServer, repo_name: RepoName
) -> None:
    repos = [repo_name() for _ in range(5)]
    for repo in repos:
        push_image(registry_token, repo, "v1", credentials=registry_token.push_credentials)
    token_server.reset_stats()

    results, seen = _checks(registry_token, [f"{registry_token.host}/{r}:v1" for r in repos], ALICE)

    assert results == ["pullable"] * 5
    assert seen[("HEAD", 401)] == 1
    # tokens are per repository scope: one each, none twice
    assert sorted(r.scopes for r in token_server.requests) == sorted((f"repository:{r}:pull",) for r in repos)


def test_a_digest_behind_several_tags_is_fetched_once(
    registry_noauth: RegistryProcess, repo_name: RepoName
) -> None:
    repo = repo_name()
    pushed = push_index(registry_noauth, repo, "v1")
    with registry_client(registry_noauth) as http:
        body = http.get(f"/v2/{repo}/manifests/v1", headers={"Accept": pushed.media_type}).content
        for tag in ("v2", "v3", "v4"):
            put_manifest(http, repo, tag, body, pushed.media_type)
    images = [f"{registry_noauth.host}/{repo}:{t}" for t in ("v1", "v2", "v3", "v4")]

    results, seen = _checks(registry_noauth, images, None, want_manifest=True)

    assert results == ["pullable"] * 4
    # the first check GETs its tag (the index it needs anyway); the other three HEAD meanwhile and
    # share one GET by digest if the first body has not arrived yet — never one download per tag
    assert seen[("HEAD", 200)] == 3
    assert 1 <= seen[("GET", 200)] <= 2


def test_an_open_registry_costs_one_request_per_check(
    registry_noauth: RegistryProcess, repo_name: RepoName
) -> None:
    repo = repo_name()
    tags = [f"t{i}" for i in range(4)]
    for tag in tags:
        push_image(registry_noauth, repo, tag)

    results, seen = _checks(registry_noauth, [f"{registry_noauth.host}/{repo}:{t}" for t in tags], None)

    assert results == ["pullable"] * 4
    assert seen == Counter({("HEAD", 200): 4})


async def _engine_checks(
    registry: RegistryProcess, images: list[str], who: tuple[str, str]
) -> tuple[list[tuple[str, str]], Seen]:
    """One pod per image, all at once, through one fresh engine; (outcome, visibility) per pod."""
    seen: Seen = Counter()

    def hook(host: str, method: str, status: int | None, seconds: float) -> None:
        seen[(method, status)] += 1

    store = StreamObjects()
    store.add_secret(secret_from_dict(pull_secret("good", registry.host, *who), "default", "good"))
    registry_client_ = client([registry], on_request=hook)
    engine = Engine(EngineOptions(), registry=registry_client_)
    try:
        verdicts = await asyncio.gather(
            *(
                engine.check_object(
                    pod(f"p{i}", [image], ["good"]), AMD64, store, default_namespace="default"
                )
                for i, image in enumerate(images)
            )
        )
    finally:
        await registry_client_.aclose()
    return [(v.images[0].outcome, v.images[0].visibility) for v in verdicts if v is not None], seen


def test_tags_of_one_private_repository_share_one_anonymous_probe(
    registry_token: RegistryProcess, token_server: TokenServer, repo_name: RepoName
) -> None:
    repo = repo_name()
    tags = ["v1", "v2", "v3"]
    for tag in tags:
        push_image(registry_token, repo, tag, credentials=registry_token.push_credentials)
    token_server.reset_stats()

    answers, _ = run(
        _engine_checks(registry_token, [f"{registry_token.host}/{repo}:{t}" for t in tags], ALICE)
    )

    assert answers == [("pullable", "private")] * 3
    scope = (f"repository:{repo}:pull",)
    anonymous = [r for r in token_server.requests if r.username is None and r.scopes == scope]
    assert len(anonymous) == 1  # "is it public?" asked once for the repository, not once per tag


def test_a_basic_challenge_met_without_credentials_answers_the_visibility_probe(
    registry_htpasswd: RegistryProcess, repo_name: RepoName
) -> None:
    repo = repo_name()
    push_image(registry_htpasswd, repo, "v1")

    answers, seen = run(_engine_checks(registry_htpasswd, [f"{registry_htpasswd.host}/{repo}:v1"], ALICE))

    assert answers == [("pullable", "private")]
    # the unauthenticated request that learnt the Basic challenge was the anonymous pull: no second one
    refused = {k: n for k, n in seen.items() if k[1] == 401}
    assert sum(refused.values()) == 1, seen
    assert seen[("GET", 200)] >= 1 and ("HEAD", 200) not in seen


def test_missing_tags_of_one_repository_share_one_tag_listing(
    registry_htpasswd: RegistryProcess, repo_name: RepoName
) -> None:
    """Five missing tags at once: one listing for the "did you mean" suggestions, not five.

    A listing of a large repository takes pages and holds a registry slot; one per missing tag
    piled up in bench/soak.py until they held every slot and every other check timed out.
    """
    repo = repo_name()
    push_image(registry_htpasswd, repo, "v1")
    images = [f"{registry_htpasswd.host}/{repo}:v{i}-missing" for i in range(5)]

    answers, seen = run(_engine_checks(registry_htpasswd, images, ALICE))

    assert [outcome for outcome, _ in answers] == ["not-found"] * 5
    assert seen[("GET", 200)] == 1, seen  # the tag listing; the manifests answered 404
