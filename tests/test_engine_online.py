"""The engine running kubelet's plan against the real registries: order, probes, platforms, caches.

Every check goes through the real adapters (guarded httpx client, registry client) to the
session's ``docker-registry`` processes; a request hook on the client counts what reached the
wire, so "one HEAD for fifty checks" is measured, not assumed. The slow registry for the deadline
is the scripted server (tests/support/scripted.py), because a real registry is never that slow.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from tests.infra.fixtures import ALICE, BOB
from tests.infra.images import push_image, push_index
from tests.infra.registry import RegistryProcess
from tests.support.cli import pod, pull_secret
from tests.support.online import client, run
from tests.support.scripted import Reply, ScriptedServer
from webhook.adapters.stream_objects import StreamObjects
from webhook.core.identity import ClusterView
from webhook.core.nodes import NodeGroup
from webhook.core.objects import secret_from_dict
from webhook.core.platforms import parse_platform
from webhook.core.verdict import ObjectVerdict
from webhook.engine import Engine, EngineOptions

pytestmark = pytest.mark.registry
RepoName = Callable[..., str]
AMD64 = ClusterView(groups=(NodeGroup(None, parse_platform("linux/amd64")),), providers=())


def _view(*platforms: str, named: bool = False) -> ClusterView:
    groups = tuple(
        NodeGroup(f"ng-{p.split('/')[1]}" if named else None, parse_platform(p)) for p in platforms
    )
    return ClusterView(groups=groups, providers=())


def _secrets(host: str, creds: Sequence[tuple[str, str, str]]) -> tuple[StreamObjects, list[str]]:
    store = StreamObjects()
    for name, user, password in creds:
        store.add_secret(secret_from_dict(pull_secret(name, host, user, password), "default", name))
    return store, [c[0] for c in creds]


async def _verdicts(
    registry_hosts: Sequence[str],
    pods: Sequence[dict[str, Any]],
    store: StreamObjects,
    *,
    view: ClusterView = AMD64,
    options: EngineOptions | None = None,
    rounds: int = 1,
    sequential: bool = False,
) -> tuple[list[list[ObjectVerdict]], Counter[tuple[str, str]], Engine]:
    """Check ``pods`` concurrently, ``rounds`` times with one engine; count requests by (method, host)."""
    seen: Counter[tuple[str, str]] = Counter()

    def count(host: str, method: str, _status: int | None, _elapsed: float) -> None:
        seen[(method, host)] += 1

    registry = client(plain_http=registry_hosts, on_request=count)
    engine = Engine(options or EngineOptions(), registry=registry)
    out: list[list[ObjectVerdict]] = []
    try:
        for _ in range(rounds):
            checks = [engine.check_object(p, view, store, default_namespace="default") for p in pods]
            if sequential:
                got = [await c for c in checks]
            else:
                got = await asyncio.gather(*checks)
            out.append([g for g in got if g is not None])
    finally:
        await registry.aclose()
    return out, seen, engine


def _one(registry: RegistryProcess, image: str, creds: Sequence[tuple[str, str, str]] = (), **kw: Any) -> Any:
    store, names = _secrets(registry.host, creds)
    verdicts, _, _ = run(_verdicts([registry.host], [pod("p", [image], names)], store, **kw))
    return verdicts[0][0].images[0].to_json(), verdicts[0][0]


# ---------------------------------------------------------------------------- kubelet's order


def test_attempts_follow_kubelet_order_and_stop_at_the_first_success(
    registry_htpasswd: RegistryProcess, repo_name: RepoName
) -> None:
    pushed = push_image(registry_htpasswd, repo_name(), "v1")
    image, _ = _one(
        registry_htpasswd,
        pushed.ref,
        [("stale", "alice", "old-password"), ("good", *ALICE), ("spare", *BOB)],
    )
    assert image["outcome"] == "pullable"
    assert [(a["identity"]["name"], a["result"]) for a in image["attempts"]] == [
        ("default/stale", "unauthorized"),
        ("default/good", "pullable"),
        ("default/spare", "not-tried"),
    ]
    assert image["identity"]["name"] == "default/good"
    assert image["visibility"] == "private"  # the anonymous probe: refused


def test_a_bad_secret_for_a_public_image_is_unauthorized_without_anonymous_retry(
    registry_token: RegistryProcess, repo_name: RepoName
) -> None:
    pushed = push_image(registry_token, repo_name("public"), "1.0")
    image, verdict = _one(registry_token, pushed.ref, [("stale", "alice", "old-password")])
    assert image["outcome"] == "unauthorized" and verdict.allowed is False
    assert [a["identity"]["kind"] for a in image["attempts"]] == ["pull-secret"]  # no anonymous attempt
    assert (image["exists"], image["visibility"]) == (True, "public")
    assert "kubelet never retries anonymously once a credential matched" in image["message"]
    assert "remove secret default/stale from the pod" in image["fix"]


def test_no_matching_secret_means_one_anonymous_pull(
    registry_htpasswd: RegistryProcess, repo_name: RepoName
) -> None:
    pushed = push_image(registry_htpasswd, repo_name(), "v1")
    image, _ = _one(registry_htpasswd, pushed.ref, [])
    assert [(a["identity"]["kind"], a["result"]) for a in image["attempts"]] == [
        ("anonymous", "unauthorized")
    ]
    assert (image["exists"], image["visibility"]) == (None, "private")
    assert "does not exist or is private" in image["message"]


def test_forbidden_is_authenticated_but_not_allowed(
    registry_token: RegistryProcess, repo_name: RepoName
) -> None:
    pushed = push_image(registry_token, repo_name("team"), "v1")
    image, _ = _one(registry_token, pushed.ref, [("bob", *BOB)])
    assert image["outcome"] == "forbidden"
    assert "authenticated but may not pull" in image["message"] and "grant user bob" in image["fix"]


# ---------------------------------------------------------------------------- existence


def test_missing_tag_suggests_the_nearest_tags(registry_noauth: RegistryProcess, repo_name: RepoName) -> None:
    repo = repo_name()
    for tag in ("1.25.3", "1.25.4", "1.24.0", "latest"):
        push_image(registry_noauth, repo, tag)
    image, _ = _one(registry_noauth, f"{registry_noauth.host}/{repo}:1.25.5")
    assert (image["outcome"], image["exists"]) == ("not-found", False)
    assert image["suggestions"] == ["1.25.4", "1.25.3", "1.24.0"]
    assert "did you mean 1.25.4, 1.25.3, 1.24.0?" in image["message"]


def test_missing_repository_is_named_as_such(registry_htpasswd: RegistryProcess, repo_name: RepoName) -> None:
    image, _ = _one(registry_htpasswd, f"{registry_htpasswd.host}/{repo_name()}:v1", [("good", *ALICE)])
    assert image["outcome"] == "not-found" and "suggestions" not in image
    assert image["message"].startswith(f"repository {registry_htpasswd.host}/")
    assert "has no repository of that name" in image["message"]


# ---------------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("children", "node", "exact", "outcome"),
    [
        pytest.param(
            (("linux", "amd64", None), ("linux", "arm64", "v8")), "linux/arm64", False, "pullable", id="multi"
        ),
        pytest.param(
            (("linux", "arm64", "v8"),), "linux/amd64", False, "platform-mismatch", id="arm64-only-index"
        ),
        pytest.param(
            (("linux", "386", None),), "linux/amd64", False, "pullable", id="386-on-amd64-compatible"
        ),
        pytest.param(
            (("linux", "386", None),), "linux/amd64", True, "platform-mismatch", id="386-on-amd64-exact"
        ),
        pytest.param(
            (("linux", "arm", "v7"),), "linux/arm64", False, "pullable", id="armv7-on-arm64-compatible"
        ),
        pytest.param(
            (("linux", "arm", "v7"),), "linux/arm64", True, "platform-mismatch", id="armv7-on-arm64-exact"
        ),
    ],
)
def test_index_children_are_selected_as_containerd_does(
    registry_noauth: RegistryProcess,
    repo_name: RepoName,
    children: tuple[tuple[str, str, str | None], ...],
    node: str,
    exact: bool,
    outcome: str,
) -> None:
    pushed = push_index(registry_noauth, repo_name(), "v1", children)
    image, _ = _one(
        registry_noauth, pushed.ref, view=_view(node), options=EngineOptions(exact_platforms=exact)
    )
    assert image["outcome"] == outcome
    assert image["platforms"]["required"] == [node]
    assert image["platforms"]["ok"] is (outcome == "pullable")


def test_single_platform_image_of_another_arch_is_platform_mismatch(
    registry_noauth: RegistryProcess, repo_name: RepoName
) -> None:
    pushed = push_image(registry_noauth, repo_name(), "v1", arch="arm64", variant="v8")
    image, _ = _one(registry_noauth, pushed.ref)
    assert image["outcome"] == "platform-mismatch"
    assert image["platforms"] == {"required": ["linux/amd64"], "available": ["linux/arm64"], "ok": False}
    assert "single-platform image for linux/arm64; containerd pulls it" in image["message"]


def test_every_node_group_must_pull(registry_noauth: RegistryProcess, repo_name: RepoName) -> None:
    pushed = push_index(registry_noauth, repo_name(), "v1", (("linux", "amd64", None),))
    image, _ = _one(registry_noauth, pushed.ref, view=_view("linux/amd64", "linux/arm64", named=True))
    assert image["outcome"] == "platform-mismatch"
    assert image["failingNodeGroups"] == ["ng-arm64"]
    assert image["platforms"]["required"] == ["linux/amd64", "linux/arm64"]


# ---------------------------------------------------------------------------- caches and deadline


def test_fifty_concurrent_checks_of_one_image_cost_one_manifest_request(
    registry_noauth: RegistryProcess, repo_name: RepoName
) -> None:
    pushed = push_image(registry_noauth, repo_name(), "v1")
    pods = [pod(f"p{i}", [pushed.ref]) for i in range(50)]
    verdicts, seen, engine = run(_verdicts([registry_noauth.host], pods, StreamObjects(), rounds=2))
    assert all(v.images[0].outcome == "pullable" for round_ in verdicts for v in round_)
    host = registry_noauth.host
    # one GET of the manifest (digest and platform check at once), one GET of its config — for 100 checks
    assert seen == Counter({("GET", host): 2})
    assert engine.stats["single_flight"] == 49 and engine.stats["cache_hit"] == 50


def test_zero_ttl_disables_the_verdict_cache(registry_noauth: RegistryProcess, repo_name: RepoName) -> None:
    pushed = push_image(registry_noauth, repo_name(), "v1")
    options = EngineOptions(tag_ttl=0, digest_ttl=0, negative_ttl=0)
    _, seen, _ = run(
        _verdicts(
            [registry_noauth.host], [pod("p", [pushed.ref])], StreamObjects(), options=options, rounds=3
        )
    )
    # the first check GETs the manifest and its config; the next two HEAD the tag and find its
    # digest's body cached in the client (digests are immutable)
    assert seen[("HEAD", registry_noauth.host)] == 2
    assert seen[("GET", registry_noauth.host)] == 2


def test_refused_anonymous_probe_is_cached_per_repository(
    registry_htpasswd: RegistryProcess, repo_name: RepoName
) -> None:
    repo = repo_name()
    refs = [push_image(registry_htpasswd, repo, tag).ref for tag in ("v1", "v2", "v3")]
    store, names = _secrets(registry_htpasswd.host, [("good", *ALICE)])
    verdicts, _, engine = run(
        _verdicts([registry_htpasswd.host], [pod("p", [r], names) for r in refs], store, sequential=True)
    )
    assert [v.images[0].visibility for v in verdicts[0]] == ["private"] * 3
    assert engine.stats["probe_cached"] == 2  # v2 and v3 reuse the refusal v1's probe got


@pytest.mark.parametrize(("on_unknown", "allowed"), [("allow", True), ("warn", True), ("deny", False)])
def test_deadline_gives_timeout_and_on_unknown_decides(on_unknown: str, allowed: bool) -> None:
    with ScriptedServer() as slow:
        slow.route("HEAD", "/v2/team/app/manifests/v1", Reply(200, delay=2.0))
        options = EngineOptions(deadline_seconds=0.3, request_seconds=2.0, on_unknown=on_unknown)
        verdicts, _, engine = run(
            _verdicts(
                [slow.netloc], [pod("p", [f"{slow.netloc}/team/app:v1"])], StreamObjects(), options=options
            )
        )
    verdict = verdicts[0][0]
    image = verdict.images[0]
    assert image.outcome == "timeout"
    assert image.attempts[0].detail == "no answer within the 0.3s left of the check's deadline"
    assert verdict.allowed is allowed
    assert engine.stats["deadline_exceeded"] == 1


def test_unreachable_registry_is_unknown_not_a_failure(registry_noauth: RegistryProcess) -> None:
    with ScriptedServer() as gone:
        dead = gone.netloc
    verdicts, _, _ = run(_verdicts([dead], [pod("p", [f"{dead}/team/app:v1"])], StreamObjects()))
    image = verdicts[0][0].images[0]
    assert image.outcome == "unreachable" and image.unknown and not image.failed
    assert (
        replace(image, message="").fix
        == f"check that {dead} resolves and accepts connections from the cluster"
    )
