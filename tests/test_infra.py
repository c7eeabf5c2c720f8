"""The test infrastructure itself behaves as the research notes say (real processes, real wire).

If one of these fails, every higher-level pullguard test built on the infrastructure is suspect,
so the assertions pin the concrete statuses, challenges and ctr/skopeo messages the notes record.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import httpx
import pytest

from tests.infra import skopeo
from tests.infra.containerd import Containerd, ContainerdUnavailableError
from tests.infra.fixtures import ALICE, BOB
from tests.infra.images import (
    ACCEPT_ALL,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    PushedManifest,
    head_manifest,
    push_image,
    push_index,
    tag_exists,
)
from tests.infra.registry import HTPASSWD_REALM, RegistryProcess, RegistryStartError
from tests.infra.tokenserver import TokenServer

pytestmark = pytest.mark.registry
RepoName = Callable[..., str]


def _token(ts: TokenServer, scope: str, creds: tuple[str, str] | None = None) -> httpx.Response:
    return httpx.get(
        ts.realm, params={"service": ts.service, "scope": scope}, auth=creds, trust_env=False, timeout=5
    )


def _head(
    registry: RegistryProcess,
    repo: str,
    ref: str,
    *,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
) -> httpx.Response:
    """A raw HEAD (no challenge handling) with the full Accept list unless overridden."""
    return httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{ref}",
        headers={"Accept": ACCEPT_ALL, **(headers or {})},
        auth=auth,
        verify=registry.ssl_context or True,
        trust_env=False,
        timeout=5,
    )


# ---------------------------------------------------------------------------- registry + pusher
def test_push_all_media_kinds_and_head_them(registry_noauth: RegistryProcess, repo_name: RepoName) -> None:
    repo = repo_name("library")
    started = time.monotonic()
    pushed: dict[str, PushedManifest] = {
        "oci": push_image(registry_noauth, repo, "oci"),
        "docker": push_image(registry_noauth, repo, "docker", media="docker"),
        "oci-index": push_index(registry_noauth, repo, "oci-index"),
        "docker-list": push_index(registry_noauth, repo, "docker-list", media="docker"),
    }
    per_push = (time.monotonic() - started) / len(pushed)
    assert per_push < 0.5, f"pushes are too slow for a test helper: {per_push:.3f}s each"

    expected_types = {
        "oci": OCI_MANIFEST,
        "docker": DOCKER_MANIFEST,
        "oci-index": OCI_INDEX,
        "docker-list": DOCKER_LIST,
    }
    for tag, p in pushed.items():
        assert p.media_type == expected_types[tag]
        resp = _head(registry_noauth, repo, tag)
        assert resp.status_code == 200, tag
        assert resp.headers["Docker-Content-Digest"] == p.digest
        assert resp.headers["Content-Type"] == p.media_type
        assert int(resp.headers["Content-Length"]) == p.size
        assert tag_exists(registry_noauth, repo, tag)
        # and by digest
        assert _head(registry_noauth, repo, p.digest).headers["Docker-Content-Digest"] == p.digest
    assert not tag_exists(registry_noauth, repo, "missing")
    untagged = push_image(registry_noauth, repo, None, arch="arm64", variant="v8")
    assert untagged.ref == untagged.digest_ref == f"{registry_noauth.host}/{repo}@{untagged.digest}"
    assert _head(registry_noauth, repo, untagged.digest).status_code == 200
    assert not tag_exists(registry_noauth, repo_name("nothere"), "v1")

    children = pushed["oci-index"].children
    assert [str(c.platform) for c in children] == ["linux/amd64", "linux/arm64/v8"]
    index = httpx.get(
        f"{registry_noauth.url}/v2/{repo}/manifests/oci-index",
        headers={"Accept": ACCEPT_ALL},
        trust_env=False,
    ).json()
    assert [m["digest"] for m in index["manifests"]] == [c.digest for c in children]
    assert index["manifests"][1]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}

    # Quirks from the notes that pullguard depends on:
    oci_only_docker_accept = _head(registry_noauth, repo, "oci", headers={"Accept": DOCKER_MANIFEST})
    assert oci_only_docker_accept.status_code == 404
    list_with_v2_only = _head(registry_noauth, repo, "docker-list", headers={"Accept": DOCKER_MANIFEST})
    assert list_with_v2_only.status_code == 200
    assert list_with_v2_only.headers["Docker-Content-Digest"] == pushed["docker-list"].children[0].digest


def test_htpasswd_registry_challenges_basic(registry_htpasswd: RegistryProcess, repo_name: RepoName) -> None:
    repo = repo_name()
    push_image(registry_htpasswd, repo, "v1")
    anon = _head(registry_htpasswd, repo, "v1")
    assert anon.status_code == 401
    assert anon.headers["WWW-Authenticate"] == f'Basic realm="{HTPASSWD_REALM}"'
    assert _head(registry_htpasswd, repo, "v1", auth=ALICE).status_code == 200
    assert _head(registry_htpasswd, repo, "v1", auth=BOB).status_code == 200
    assert _head(registry_htpasswd, repo, "v1", auth=("alice", "wrong")).status_code == 401
    assert head_manifest(registry_htpasswd, repo, "v1", credentials=ALICE).status_code == 200


def test_htpasswd_user_added_at_runtime(request: pytest.FixtureRequest, repo_name: RepoName) -> None:
    registry = RegistryProcess("htpasswd", users={"carol": "pw-carol"}).start()
    request.addfinalizer(registry.stop)
    repo = repo_name()
    push_image(registry, repo, "v1")
    assert _head(registry, repo, "v1", auth=("dave", "pw-dave")).status_code == 401
    time.sleep(0.01)  # make sure the mtime differs on coarse-grained filesystems
    registry.add_user("dave", "pw-dave")
    assert _head(registry, repo, "v1", auth=("dave", "pw-dave")).status_code == 200


def test_token_registry_challenge_and_scopes(
    registry_token: RegistryProcess, token_server: TokenServer, repo_name: RepoName
) -> None:
    alice_repo, bob_repo = repo_name("team"), repo_name("bob")
    push_image(registry_token, alice_repo, "v1")
    push_image(registry_token, bob_repo, "v1")
    token_server.reset_stats()

    anon = _head(registry_token, alice_repo, "v1")
    assert anon.status_code == 401
    assert anon.headers["WWW-Authenticate"] == (
        f'Bearer realm="{token_server.realm}",service="{token_server.service}",'
        f'scope="repository:{alice_repo}:pull"'
    )

    ok = _token(token_server, f"repository:{alice_repo}:pull", ALICE)
    assert ok.status_code == 200
    body = ok.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == token_server.token_ttl
    bearer = {"Authorization": f"Bearer {body['token']}"}
    assert _head(registry_token, alice_repo, "v1", headers=bearer).status_code == 200

    # Valid credentials without access: 200 from the token server, reduced (empty) access...
    reduced = _token(token_server, f"repository:{bob_repo}:pull", ALICE)
    assert reduced.status_code == 200
    reduced_grant = token_server.requests[-1].granted
    assert reduced_grant == ()
    # ...and the registry says insufficient_scope.
    denied = _head(
        registry_token, bob_repo, "v1", headers={"Authorization": f"Bearer {reduced.json()['token']}"}
    )
    assert denied.status_code == 401
    assert 'error="insufficient_scope"' in denied.headers["WWW-Authenticate"]

    bad = _token(token_server, f"repository:{alice_repo}:pull", ("alice", "wrong"))
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["code"] == "UNAUTHORIZED"

    # Push asked, pull granted only.
    _token(token_server, f"repository:{alice_repo}:pull,push", ALICE)
    assert token_server.requests[-1].granted == (
        {"type": "repository", "name": alice_repo, "actions": ["pull"]},
    )

    assert token_server.get_count == 4
    assert token_server.post_count == 0
    assert [r.username for r in token_server.requests] == ["alice"] * 4
    assert "s3cret" not in repr(token_server.requests)


def test_token_server_post_grant_and_anonymous(
    registry_token: RegistryProcess, token_server: TokenServer, repo_name: RepoName
) -> None:
    repo, public = repo_name("team"), repo_name("public")
    push_image(registry_token, repo, "v1")
    push_image(registry_token, public, "v1")
    token_server.reset_stats()
    form = {
        "grant_type": "password",
        "username": ALICE[0],
        "password": ALICE[1],
        "service": token_server.service,
        "scope": f"repository:{repo}:pull repository:{public}:pull",
        "client_id": "pullguard-tests",
    }
    resp = httpx.post(token_server.realm, data=form, trust_env=False)
    assert resp.status_code == 200
    token = resp.json()["access_token"]
    for name in (repo, public):
        assert (
            _head(registry_token, name, "v1", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        )
    bad = httpx.post(token_server.realm, data={**form, "password": "nope"}, trust_env=False)
    assert bad.status_code == 401
    refresh = httpx.post(token_server.realm, data={**form, "grant_type": "refresh_token"}, trust_env=False)
    assert refresh.status_code == 400

    anon = _token(token_server, f"repository:{public}:pull")
    assert anon.status_code == 200
    anon_bearer = {"Authorization": f"Bearer {anon.json()['token']}"}
    assert _head(registry_token, public, "v1", headers=anon_bearer).status_code == 200
    assert token_server.post_count == 3
    assert token_server.get_count == 1
    assert token_server.requests[0].client_id == "pullguard-tests"
    assert token_server.requests[-1].username is None


def test_token_server_faults(token_server: TokenServer) -> None:
    token_server.fail_with_status = 503
    token_server.fail_times = 1
    assert _token(token_server, "repository:team/x:pull", ALICE).status_code == 503
    assert _token(token_server, "repository:team/x:pull", ALICE).status_code == 200
    token_server.fail_with_status, token_server.fail_times = None, None
    token_server.delay = 0.3
    started = time.monotonic()
    assert _token(token_server, "repository:team/x:pull", ALICE).status_code == 200
    assert time.monotonic() - started >= 0.3
    assert [r.status for r in token_server.requests] == [503, 200, 200]


def test_registry_start_failure_is_reported_fast() -> None:
    started = time.monotonic()
    with pytest.raises(RegistryStartError, match="exit code 1"):
        RegistryProcess("noauth", binary="/bin/false").start()
    assert time.monotonic() - started < 2


def test_stop_reaps_process_and_removes_dir() -> None:
    registry = RegistryProcess("noauth").start()
    pid, workdir = registry.pid, registry.log_path.parent
    assert pid is not None
    registry.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()


# ---------------------------------------------------------------------------- containerd
def test_containerd_refuses_loudly_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ContainerdUnavailableError, match="needs root"):
        Containerd().start()


@pytest.mark.containerd
def test_containerd_pulls_from_every_registry_kind(
    containerd: Containerd,
    registry_noauth: RegistryProcess,
    registry_htpasswd: RegistryProcess,
    registry_token: RegistryProcess,
    registry_tls: RegistryProcess,
    token_server: TokenServer,
    repo_name: RepoName,
) -> None:
    containerd.remove_all_images()
    repo = repo_name("team")
    refs = {
        r.mode + ("-tls" if r.tls else ""): push_image(r, repo, "v1").ref
        for r in (registry_noauth, registry_htpasswd, registry_token, registry_tls)
    }
    token_server.reset_stats()

    assert containerd.pull(refs["noauth"]).ok
    assert containerd.pull(refs["htpasswd"], user=ALICE[0], password=ALICE[1]).ok
    result = containerd.pull(refs["token"], user=ALICE[0], password=ALICE[1])
    assert result.ok, result.message
    # containerd POSTs the password grant first and does not need the GET fallback. A cold
    # `ctr images pull` authorizes twice (resolve, then fetch), with the same scope each time.
    assert (token_server.post_count, token_server.get_count) == (2, 0)
    assert {(r.client_id, r.username, r.scopes) for r in token_server.requests} == {
        ("containerd-client", "alice", (f"repository:{repo}:pull",))
    }

    hosts_dir = containerd.make_hosts_dir(registry_tls.host, registry_tls.ca_file or "")
    tls = containerd.pull(
        refs["htpasswd-tls"], user=ALICE[0], password=ALICE[1], hosts_dir=hosts_dir, plain_http=False
    )
    assert tls.ok, tls.message
    no_hosts = containerd.pull(refs["htpasswd-tls"], user=ALICE[0], password=ALICE[1])
    assert not no_hosts.ok
    assert "400 Bad Request" in no_hosts.message

    assert len(containerd.images()) == 4
    containerd.remove_all_images()
    assert containerd.images() == []
    assert containerd.content_count() == 0


@pytest.mark.containerd
def test_containerd_failure_messages(
    containerd: Containerd,
    registry_noauth: RegistryProcess,
    registry_htpasswd: RegistryProcess,
    registry_token: RegistryProcess,
    token_server: TokenServer,
    repo_name: RepoName,
) -> None:
    repo = repo_name("team")
    single = push_image(registry_noauth, repo, "amd64-only")
    index = push_index(registry_noauth, repo, "multi")
    basic = push_image(registry_htpasswd, repo, "v1")
    tok = push_image(registry_token, repo, "v1")

    missing = containerd.pull(f"{registry_noauth.host}/{repo}:nope")
    assert not missing.ok
    assert missing.message == (
        f'ctr: failed to resolve reference "{registry_noauth.host}/{repo}:nope": '
        f"{registry_noauth.host}/{repo}:nope: not found"
    )

    unauth = containerd.pull(basic.ref)
    assert not unauth.ok
    assert "failed with status code [manifests v1]: 401 Unauthorized" in unauth.message

    wrong_pw = containerd.pull(tok.ref, user="alice", password="wrong")
    assert not wrong_pw.ok
    assert "failed to fetch oauth token: unexpected status: 401 Unauthorized" in wrong_pw.message

    bob = containerd.pull(tok.ref, user=BOB[0], password=BOB[1])
    assert not bob.ok
    assert "insufficient_scope: authorization failed" in bob.message

    anon = containerd.pull(tok.ref)
    assert not anon.ok
    assert "pull access denied" in anon.message

    no_platform = containerd.pull(index.ref, platform="linux/s390x")
    assert not no_platform.ok
    assert no_platform.message == f"ctr: no match for platform in manifest {index.digest}: not found"

    arm_child = containerd.pull(index.ref, platform="linux/arm64")
    assert arm_child.ok, arm_child.message

    # Documented containerd behaviour: a single-arch manifest is NOT platform-checked at pull time.
    wrong_arch = containerd.pull(single.ref, platform="linux/arm64")
    assert wrong_arch.ok, wrong_arch.message
    by_digest = containerd.pull(single.digest_ref)
    assert by_digest.ok, by_digest.message
    containerd.remove_all_images()


# ---------------------------------------------------------------------------- skopeo
def test_skopeo_inspect(
    registry_noauth: RegistryProcess, registry_tls: RegistryProcess, repo_name: RepoName
) -> None:
    repo = repo_name("team")
    plain = push_image(registry_noauth, repo, "v1")
    index = push_index(registry_noauth, repo, "multi")
    tls = push_image(registry_tls, repo, "v1")

    ok, out = skopeo.inspect(plain.ref)
    assert ok, out
    assert json.loads(out)["Digest"] == plain.digest

    ok, out = skopeo.inspect(index.ref, raw=True)
    assert ok, out
    assert json.loads(out)["mediaType"] == OCI_INDEX

    ok, out = skopeo.inspect(index.ref, override_arch="arm64")
    assert ok, out
    assert json.loads(out)["Architecture"] == "arm64"

    ok, out = skopeo.inspect(index.ref, override_arch="s390x")
    assert not ok
    assert "no image found in image index for architecture s390x" in out

    ok, out = skopeo.inspect(f"{registry_noauth.host}/{repo}:nope")
    assert not ok
    assert "manifest unknown" in out

    ok, out = skopeo.inspect(tls.ref, creds=ALICE, cert_dir=registry_tls.cert_dir)
    assert ok, out
    assert json.loads(out)["Digest"] == tls.digest

    ok, out = skopeo.inspect(tls.ref, creds=ALICE, tls_verify=True)
    assert not ok
    assert "x509: certificate signed by unknown authority" in out

    ok, out = skopeo.inspect(tls.ref, cert_dir=registry_tls.cert_dir)
    assert not ok
    assert "authentication required" in out
