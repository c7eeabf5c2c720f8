"""The OCI distribution client against the real registry (and, for lies, a scripted one).

What a real ``docker-registry`` can do is tested against it: the four media types, Basic,
Bearer tokens, TLS with a private CA, plain HTTP only where configured, 404 vs 401 vs
``insufficient_scope``. What it cannot do — serve content whose digest is wrong, rate-limit,
fail with 5xx, hang, send a huge body, redirect elsewhere — is tested against
tests/support/scripted.py, a wire-level fake that says so at its top.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

import pytest

from tests.infra.fixtures import ALICE, BOB
from tests.infra.images import push_image, push_index
from tests.infra.registry import RegistryProcess
from tests.support.online import LOOPBACK, client, cred, ref, run
from tests.support.scripted import Reply, ScriptedServer, Seen
from webhook.adapters.http import make_client
from webhook.adapters.registry import ACCEPT, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from webhook.core.assess import Observation
from webhook.core.identity import StaticCredential

pytestmark = pytest.mark.registry
RepoName = Callable[..., str]


def _check(registry: RegistryProcess, image: str, who: StaticCredential | None, **kw: object) -> Observation:
    async def go() -> Observation:
        c = client([registry], **kw)  # type: ignore[arg-type]
        try:
            return await c.check(ref(image), who, want_manifest=True)
        finally:
            await c.aclose()

    return run(go())


# ---------------------------------------------------------------------------- real registries


@pytest.mark.parametrize("mode", ["noauth", "htpasswd", "token", "tls"])
@pytest.mark.parametrize(
    ("media", "index", "expected_type"),
    [
        pytest.param("oci", False, OCI_MANIFEST, id="oci-manifest"),
        pytest.param("docker", False, DOCKER_MANIFEST, id="docker-v2"),
        pytest.param("oci", True, OCI_INDEX, id="oci-index"),
        pytest.param("docker", True, DOCKER_LIST, id="docker-list"),
    ],
)
def test_head_resolves_every_media_type_to_its_own_digest(
    request: pytest.FixtureRequest,
    repo_name: RepoName,
    mode: str,
    media: str,
    index: bool,
    expected_type: str,
) -> None:
    registry: RegistryProcess = request.getfixturevalue(f"registry_{mode}")
    repo = repo_name()
    pushed = (
        push_index(registry, repo, "v1", media=media)  # type: ignore[arg-type]
        if index
        else push_image(registry, repo, "v1", media=media)  # type: ignore[arg-type]
    )
    who = None if mode == "noauth" else cred(*ALICE)
    got = _check(registry, pushed.ref, who)
    # Without the OCI types distribution answers 404; without the list types a Docker list
    # resolves to its amd64 child (another digest). The index's own digest proves all four were sent.
    assert (got.result, got.digest) == ("pullable", pushed.digest)
    assert got.manifest is not None and got.manifest.media_type == expected_type
    if index:
        assert [str(p) for p in got.manifest.children] == ["linux/amd64", "linux/arm64"]
    else:
        assert str(got.manifest.config_platform) == "linux/amd64"
    by_digest = _check(registry, pushed.digest_ref, who)
    assert (by_digest.result, by_digest.digest) == ("pullable", pushed.digest)


@pytest.mark.parametrize(
    ("mode", "who", "reference", "outcome", "status"),
    [
        # htpasswd: Basic on every request
        pytest.param("htpasswd", None, "v1", "unauthorized", 401, id="basic-anonymous"),
        pytest.param("htpasswd", ALICE, "v1", "pullable", 200, id="basic-right"),
        pytest.param("htpasswd", ("alice", "wrong"), "v1", "unauthorized", 401, id="basic-wrong-password"),
        pytest.param("htpasswd", ALICE, "nope", "not-found", 404, id="basic-missing-tag"),
        # token: the token server decides; insufficient_scope after a real user's token is forbidden
        pytest.param("token", None, "v1", "unauthorized", 401, id="token-anonymous"),
        pytest.param("token", ALICE, "v1", "pullable", 200, id="token-right"),
        pytest.param("token", ("alice", "wrong"), "v1", "unauthorized", 401, id="token-wrong-password"),
        pytest.param("token", BOB, "v1", "forbidden", 401, id="token-other-user-insufficient-scope"),
        pytest.param("token", ALICE, "nope", "not-found", 404, id="token-missing-tag"),
    ],
)
def test_registry_answers_map_to_outcomes(
    request: pytest.FixtureRequest,
    repo_name: RepoName,
    mode: str,
    who: tuple[str, str] | None,
    reference: str,
    outcome: str,
    status: int,
) -> None:
    registry: RegistryProcess = request.getfixturevalue(f"registry_{mode}")
    repo = repo_name("team")
    push_image(registry, repo, "v1")
    got = _check(registry, f"{registry.host}/{repo}:{reference}", cred(*who) if who else None)
    assert (got.result, got.status) == (outcome, status), got
    if outcome == "forbidden":
        assert (
            got.detail
            == "the token server accepted the credentials but grants no pull access (insufficient_scope)"
        )
    if mode == "token" and who == ("alice", "wrong"):
        assert got.detail is not None and "rejected the credentials: POST 401, then GET 401" in got.detail


def test_tls_registry_needs_the_ca_file_and_speaks_http2(
    registry_tls: RegistryProcess, repo_name: RepoName
) -> None:
    repo = repo_name()
    pushed = push_image(registry_tls, repo, "v1")
    trusted = _check(registry_tls, pushed.ref, cred(*ALICE))
    assert trusted.result == "pullable"
    # Without network.caFile the system store does not know the test CA.
    untrusted = _check(registry_tls, pushed.ref, cred(*ALICE), ca_file="/etc/ssl/certs/ca-certificates.crt")
    assert untrusted.result == "unreachable"
    assert untrusted.detail is not None and "certificate is not trusted" in untrusted.detail

    async def version() -> str:
        async with make_client(policy=LOOPBACK, timeout=2, ca_file=str(registry_tls.ca_file)) as http:
            return (await http.get(f"{registry_tls.url}/v2/")).http_version

    assert run(version()) == "HTTP/2"


def test_plain_http_only_for_configured_hosts(registry_noauth: RegistryProcess, repo_name: RepoName) -> None:
    pushed = push_image(registry_noauth, repo_name(), "v1")
    assert _check(registry_noauth, pushed.ref, None).result == "pullable"
    # Not in network.plainHttp: pullguard speaks TLS to it, as containerd does to a non-local host.
    https = _check(registry_noauth, pushed.ref, None, plain_http=())
    assert https.result == "unreachable", https


def test_tag_listing_and_missing_repository(registry_htpasswd: RegistryProcess, repo_name: RepoName) -> None:
    repo = repo_name()
    for tag in ("1.0", "1.1", "2.0"):
        push_image(registry_htpasswd, repo, tag)

    async def go() -> tuple[object, object, object]:
        c = client([registry_htpasswd])
        try:
            return (
                await c.list_tags(ref(f"{registry_htpasswd.host}/{repo}:x"), cred(*ALICE)),
                await c.list_tags(ref(f"{registry_htpasswd.host}/{repo}-none:x"), cred(*ALICE)),
                await c.list_tags(ref(f"{registry_htpasswd.host}/{repo}:x"), None),
            )
        finally:
            await c.aclose()

    tags, missing, anonymous = run(go())  # type: ignore[misc]
    assert tags is not None and sorted(tags[0]) == ["1.0", "1.1", "2.0"] and tags[1] is False
    assert missing == ([], True)
    assert anonymous is None


def test_down_registry_is_unreachable(registry_noauth: RegistryProcess) -> None:
    with ScriptedServer() as s:
        dead = s.netloc
    got = _check(registry_noauth, f"{dead}/team/app:v1", None, plain_http=[dead])
    assert got.result == "unreachable"
    assert got.detail is not None and f"cannot connect to {dead}" in got.detail


# ---------------------------------------------------------------------------- scripted misbehaviour

MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + "c" * 64,
            "size": 2,
        },
        "layers": [],
    }
).encode()
MANIFEST_DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
OTHER = "sha256:" + "e" * 64


def _scripted(
    s: ScriptedServer, image: str, who: StaticCredential | None = None, **kw: object
) -> Observation:
    async def go() -> Observation:
        kw.setdefault("plain_http", [s.netloc])
        c = client(**kw)  # type: ignore[arg-type]
        try:
            return await c.check(ref(f"{s.netloc}/{image}"), who, want_manifest=True)
        finally:
            await c.aclose()

    return run(go())


def _error(code: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}).encode()


@pytest.mark.parametrize(
    ("head", "get", "outcome", "detail"),
    [
        pytest.param(Reply(401), None, "unauthorized", None, id="401-without-challenge"),
        pytest.param(
            Reply(403), Reply(403, body=_error("DENIED")), "forbidden", "denied", id="403-body-read-by-get"
        ),
        pytest.param(Reply(404), None, "not-found", None, id="404"),
        pytest.param(
            Reply(429, {"Retry-After": "30"}), None, "rate-limited", "retry after 30 s", id="429-retry-after"
        ),
        pytest.param(Reply(500), None, "unreachable", "answered 500", id="500"),
        pytest.param(Reply(503), None, "unreachable", "answered 503", id="503"),
        pytest.param(Reply(504), None, "timeout", "answered 504", id="504"),
        pytest.param(Reply(418), None, "undetermined", "answered 418", id="unexpected-status"),
    ],
)
def test_error_statuses_map_to_outcomes(
    head: Reply, get: Reply | None, outcome: str, detail: str | None
) -> None:
    with ScriptedServer() as s:
        s.route("HEAD", "/v2/team/app/manifests/v1", head)
        if get is not None:
            s.route("GET", "/v2/team/app/manifests/v1", get)
        got = _scripted(s, "team/app:v1")
    assert got.result == outcome, got
    if detail is not None:
        assert got.detail is not None and detail in got.detail


def test_manifest_requests_send_all_four_media_types() -> None:
    with ScriptedServer() as s:
        s.route("HEAD", "/v2/team/app/manifests/v1", Reply(404))
        _scripted(s, "team/app:v1")
        accept = s.requests()[0].headers["accept"]
    assert accept == ACCEPT
    assert [t.strip() for t in accept.split(",")][:4] == [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_LIST,
        DOCKER_MANIFEST,
    ]


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(Reply(405), id="head-not-allowed"),
        pytest.param(Reply(200, {"Content-Type": OCI_MANIFEST}), id="head-without-digest"),
    ],
)
def test_get_fallback_computes_the_digest(head: Reply) -> None:
    with ScriptedServer() as s:
        s.route("HEAD", "/v2/team/app/manifests/v1", head)
        s.route("GET", "/v2/team/app/manifests/v1", Reply(200, {"Content-Type": OCI_MANIFEST}, MANIFEST))
        got = _scripted(s, "team/app:v1")
    assert (got.result, got.digest) == ("pullable", MANIFEST_DIGEST)


@pytest.mark.parametrize(
    ("image", "routes", "detail"),
    [
        pytest.param(
            f"team/app@{MANIFEST_DIGEST}",
            {
                ("HEAD", MANIFEST_DIGEST): Reply(
                    200, {"Docker-Content-Digest": OTHER, "Content-Type": OCI_MANIFEST}
                )
            },
            "the registry announced",
            id="head-announces-another-digest",
        ),
        pytest.param(
            f"team/app@{OTHER}",
            {
                ("HEAD", OTHER): Reply(405),
                ("GET", OTHER): Reply(200, {"Content-Type": OCI_MANIFEST}, MANIFEST),
            },
            "asked for",
            id="body-is-not-the-digest-asked-for",
        ),
        pytest.param(
            "team/app:v1",
            {
                ("HEAD", "v1"): Reply(405),
                ("GET", "v1"): Reply(
                    200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": OTHER}, MANIFEST
                ),
            },
            "announced",
            id="body-is-not-the-digest-announced",
        ),
        pytest.param(
            "team/app:v1",
            {
                ("HEAD", "v1"): Reply(200, {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": OTHER}),
                ("GET", OTHER): Reply(200, {"Content-Type": OCI_MANIFEST}, MANIFEST),
            },
            "asked for",
            id="platform-check-get-returns-other-content",
        ),
    ],
)
def test_content_with_the_wrong_digest_is_digest_mismatch(
    image: str, routes: dict[tuple[str, str], Reply], detail: str
) -> None:
    with ScriptedServer() as s:
        for (method, reference), reply in routes.items():
            s.route(method, f"/v2/team/app/manifests/{reference}", reply)
        got = _scripted(s, image)
    assert got.result == "digest-mismatch", got
    assert got.detail is not None and detail in got.detail


def test_bodies_are_capped() -> None:
    huge = b"{" + b" " * (4 * 1048 * 1048 + 10) + b"}"
    with ScriptedServer() as s:
        s.route("HEAD", "/v2/team/app/manifests/v1", Reply(405))
        s.route("GET", "/v2/team/app/manifests/v1", Reply(200, {"Content-Type": OCI_MANIFEST}, huge))
        got = _scripted(s, "team/app:v1")
    assert got.result == "undetermined"
    assert got.detail is not None and f"is larger than {4 * 1048 * 1048} bytes, containerd" in got.detail


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(Reply(200, delay=5.0), id="no-answer"),
        pytest.param(Reply(200, {"Content-Type": OCI_MANIFEST}, MANIFEST, trickle=0.2), id="slow-drip-body"),
    ],
)
def test_slow_registry_times_out_within_the_request_timeout(reply: Reply) -> None:
    with ScriptedServer() as s:
        s.route("HEAD", "/v2/team/app/manifests/v1", Reply(405))
        s.route("GET", "/v2/team/app/manifests/v1", reply)
        started = time.monotonic()
        got = _scripted(s, "team/app:v1", request_timeout=0.5)
        elapsed = time.monotonic() - started
    assert got.result == "timeout", got
    assert got.detail is not None and "0.5s" in got.detail
    assert elapsed < 4.0  # bounded by the request timeout, not by the server's 5 s (or ~4 s drip)


def test_redirects_never_carry_credentials_to_another_origin() -> None:
    with ScriptedServer("127.0.0.1") as registry, ScriptedServer("127.0.0.2") as storage:

        def answer(seen: Seen) -> Reply:
            if "authorization" not in seen.headers:
                return Reply(401, {"WWW-Authenticate": 'Basic realm="r"'})
            return Reply(307, {"Location": f"{storage.url}/blob/manifest"})

        registry.route("HEAD", "/v2/team/app/manifests/v1", Reply(405))
        registry.route("GET", "/v2/team/app/manifests/v1", answer)
        storage.route("GET", "/blob/manifest", Reply(200, {"Content-Type": OCI_MANIFEST}, MANIFEST))
        got = _scripted(
            registry, "team/app:v1", cred("alice", "pw"), plain_http=[registry.netloc, storage.netloc]
        )
        sent_to_registry = [s.headers.get("authorization") for s in registry.requests("GET")]
        sent_to_storage = [s.headers.get("authorization") for s in storage.requests()]
    assert (got.result, got.digest) == ("pullable", MANIFEST_DIGEST)
    assert sent_to_registry[-1] is not None and sent_to_registry[-1].startswith("Basic ")
    assert sent_to_storage and all(h is None for h in sent_to_storage)


def test_same_origin_redirect_keeps_credentials() -> None:
    with ScriptedServer() as registry:

        def answer(seen: Seen) -> Reply:
            if "authorization" not in seen.headers:
                return Reply(401, {"WWW-Authenticate": 'Basic realm="r"'})
            return Reply(302, {"Location": "/v2/team/app/manifests/elsewhere"})

        registry.route("HEAD", "/v2/team/app/manifests/v1", answer)
        registry.route(
            "HEAD",
            "/v2/team/app/manifests/elsewhere",
            lambda seen: (
                Reply(200, {"Docker-Content-Digest": MANIFEST_DIGEST})
                if "authorization" in seen.headers
                else Reply(401)
            ),
        )
        registry.route(
            "GET",
            f"/v2/team/app/manifests/{MANIFEST_DIGEST}",
            Reply(200, {"Content-Type": OCI_MANIFEST}, MANIFEST),
        )
        got = _scripted(registry, "team/app:v1", cred("alice", "pw"))
    assert got.result == "pullable", got


def test_redirect_loops_are_bounded() -> None:
    with ScriptedServer() as registry:
        registry.route(
            "HEAD", "/v2/team/app/manifests/v1", Reply(302, {"Location": "/v2/team/app/manifests/v1"})
        )
        got = _scripted(registry, "team/app:v1")
        hops = len(registry.requests())
    assert got.result == "undetermined"
    assert got.detail is not None and "more than 5 redirects" in got.detail
    assert hops == 6


def test_no_httpx_exception_escapes_the_client() -> None:
    """A server that hangs up mid-answer is an observation, not an exception (STYLE rule 3)."""
    with ScriptedServer() as registry:
        registry.route("HEAD", "/v2/team/app/manifests/v1", Reply(405))
        registry.route(
            "GET", "/v2/team/app/manifests/v1", Reply(200, {"Content-Type": OCI_MANIFEST}, b"{}", length=9999)
        )
        got = _scripted(registry, "team/app:v1")
    assert got.result in ("unreachable", "timeout"), got
