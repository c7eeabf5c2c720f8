"""GKE node pools pulling from Artifact Registry and gcr.io, through ``pullguard check`` end to end.

The Google APIs are the wire fake (no emulator exists; tests/infra/fake_gcp.py) driven by the real
Google client libraries; the Docker data plane is the real ``docker-registry`` with the htpasswd
user ``oauth2accesstoken``. Each case builds a small cloud — a cluster project ``acme-prod`` whose
node pool ``pool-a`` runs as ``nodes@acme-prod``, and an image repository in another project,
``acme-shared`` (so every grant here is a cross-project one) — and asserts what a user sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.infra.fake_gcp import FakeProject, binding
from tests.infra.images import push_image, push_index
from tests.infra.registry import RegistryProcess
from tests.support.cli import manifests, pod, run, write_config
from tests.support.gcp import PULLGUARD_TOKEN, GcpEnv

pytestmark = pytest.mark.registry

NODE_SA = "nodes@acme-prod.iam.gserviceaccount.com"
MEMBER = f"serviceAccount:{NODE_SA}"
READER = "roles/artifactregistry.reader"
STORAGE_RO = "https://www.googleapis.com/auth/devstorage.read_only"
LOGGING = "https://www.googleapis.com/auth/logging.write"
MONITORING = "https://www.googleapis.com/auth/monitoring"
GKE_DEFAULT_SCOPES = [STORAGE_RO, LOGGING, MONITORING]
IMAGE = "us-docker.pkg.dev/acme-shared/images/team/web"
REPO = "projects/acme-shared/locations/us/repositories/images"


@dataclass
class World:
    repo: list[dict[str, Any]] = field(default_factory=list)
    project: list[dict[str, Any]] = field(default_factory=list)
    folder: list[dict[str, Any]] = field(default_factory=list)
    scopes: list[str] = field(default_factory=lambda: list(GKE_DEFAULT_SCOPES))
    refused: tuple[str, ...] = ()
    impersonable: bool = False


def _build(env: GcpEnv, world: World) -> None:
    fake = env.fake
    fake.add_project("acme-prod", "222")
    fake.add_project("acme-shared", "111", "folders/9", *world.project)
    fake.folders["folders/9"] = FakeProject("", "organizations/5", list(world.folder))
    fake.organizations["organizations/5"] = []
    repo = fake.add_repository("acme-shared", "us", "images")
    repo.bindings.extend(world.repo)
    pushed = push_image(env.registry, "acme-shared/images/team/web", "1.4.2")
    repo.tags["team/web"] = {"1.4.2": pushed.digest, "1.4.3": pushed.digest, "2.0.0": pushed.digest}
    fake.refused.update(world.refused)
    if world.impersonable:
        fake.impersonable.add(NODE_SA)


def _check(env: GcpEnv, world: World, image: str, **gcp: Any) -> Any:
    _build(env, world)
    group = {
        "name": "pool-a",
        "platform": "linux/amd64",
        "identity": {"gcpServiceAccount": NODE_SA, "scopes": world.scopes},
    }
    config = write_config(env.tmp, env.config([group], **gcp))
    path = env.tmp / "pod.yaml"
    path.write_text(manifests(pod("web", [image], namespace="shop")))
    return config, str(path)


def _json(env: GcpEnv, world: World, image: str, **gcp: Any) -> tuple[int, dict[str, Any]]:
    config, path = _check(env, world, image, **gcp)
    r = run(["check", "--config", config, "--output", "json", path])
    assert r.exit_code in (0, 1, 3), r.stderr
    return r.exit_code, r.json["results"][0]["images"][0]


CASES = [
    # -- granted: the exit code is 0 and the node SA is the identity that pulls ------------------
    pytest.param(World(repo=[binding(READER, MEMBER)]), "pullable", 0, [], id="cross-project-repo-grant"),
    pytest.param(
        World(project=[binding("roles/artifactregistry.writer", MEMBER)]),
        "pullable",
        0,
        [],
        id="grant-on-the-repository-project",
    ),
    pytest.param(
        World(folder=[binding("roles/viewer", MEMBER)]), "pullable", 0, [], id="grant-inherited-from-folder"
    ),
    pytest.param(World(repo=[binding(READER, "allUsers")]), "pullable", 0, [], id="public-repository"),
    pytest.param(
        World(repo=[binding(READER, MEMBER)], scopes=["https://www.googleapis.com/auth/cloud-platform"]),
        "pullable",
        0,
        [],
        id="cloud-platform-scope",
    ),
    # -- denied: exit 1, the message and fix name what to change ---------------------------------
    pytest.param(
        World(
            repo=[
                binding(
                    "roles/artifactregistry.reader", "serviceAccount:other@acme-prod.iam.gserviceaccount.com"
                )
            ],
            project=[binding("roles/logging.logWriter", MEMBER)],
        ),
        "forbidden",
        1,
        [NODE_SA, "pool-a", "repository images", READER, "roles/logging.logWriter"],
        id="no-reader-for-the-node-sa",
    ),
    pytest.param(
        World(repo=[binding(READER, MEMBER)], scopes=[LOGGING, MONITORING]),
        "forbidden",
        1,
        ["access scopes [logging.write, monitoring]", "devstorage.read_only", "cannot be changed", "pool-a"],
        id="no-storage-scope",
    ),
    pytest.param(
        World(project=[binding("roles/container.defaultNodeServiceAccount", MEMBER)]),
        "forbidden",
        1,
        [READER],
        id="gke-default-node-role-is-not-enough",
    ),
    # -- unknown: exit 3, the message names what could not be decided ----------------------------
    pytest.param(
        World(
            repo=[
                binding(
                    READER, MEMBER, title="business-hours", expression="request.time.getHours('UTC') < 18"
                )
            ]
        ),
        "undetermined",
        3,
        ["'business-hours'", "request.time.getHours"],
        id="iam-condition",
    ),
    pytest.param(
        World(repo=[binding(READER, "group:platform@acme.example")]),
        "undetermined",
        3,
        ["group:platform@acme.example"],
        id="group-cannot-be-expanded",
    ),
    pytest.param(
        World(repo=[binding("projects/acme-shared/roles/puller", MEMBER)]),
        "undetermined",
        3,
        ["custom role projects/acme-shared/roles/puller"],
        id="custom-role",
    ),
    pytest.param(
        World(refused=("organizations/5",)),
        "undetermined",
        3,
        ["IAM policy of organizations/5 could not be read"],
        id="ancestor-policy-unreadable",
    ),
    pytest.param(
        World(refused=(REPO,)),
        "undetermined",
        3,
        ["pullguard's own credentials may not read it"],
        id="pullguards-own-access-refused",
    ),
]


@pytest.mark.parametrize(("world", "outcome", "exit_code", "words"), CASES)
def test_node_pool_service_account_access(
    gcp_env: GcpEnv, world: World, outcome: str, exit_code: int, words: list[str]
) -> None:
    code, image = _json(gcp_env, world, f"{IMAGE}:1.4.2")
    assert (image["outcome"], code) == (outcome, exit_code), image
    attempt = image["attempts"][0]
    assert attempt["identity"] == {
        "kind": "node-service-account",
        "name": NODE_SA,
        "key": "*.pkg.dev",
        "username": None,
        "nodeGroup": "pool-a",
    }
    text = f"{image['message']} {image['fix'] or ''}"
    for word in words:
        assert word in text, text
    if outcome == "pullable":
        assert image["digest"].startswith("sha256:")
        assert image["platforms"] == {"required": ["linux/amd64"], "available": ["linux/amd64"], "ok": True}
        assert image["exists"] is True
    if outcome == "forbidden":
        assert image["exists"] is True  # pullguard saw the image: no "or it may not exist"
        assert "does not exist" not in image["message"]


def test_missing_tag_is_not_found_with_the_nearest_tags(gcp_env: GcpEnv) -> None:
    code, image = _json(gcp_env, World(repo=[binding(READER, MEMBER)]), f"{IMAGE}:1.4.4")
    assert (image["outcome"], code) == ("not-found", 1)
    assert image["exists"] is False
    assert image["suggestions"] == ["1.4.3", "1.4.2"]
    assert "did you mean 1.4.3, 1.4.2?" in image["message"]
    assert image["fix"] == f"use an existing tag, e.g. {IMAGE}:1.4.3"


@pytest.mark.parametrize(
    ("image", "detail"),
    [
        pytest.param(
            "us-docker.pkg.dev/acme-shared/images/team/api:1.0",
            "no image team/api in repository images (us, project acme-shared)",
            id="missing-package",
        ),
        pytest.param(
            "us-docker.pkg.dev/acme-shared/imagez/team/web:1.4.2",
            "repository imagez (us, project acme-shared) does not exist",
            id="missing-repository",
        ),
        pytest.param(
            f"{IMAGE}@sha256:{'0' * 64}",
            "no image team/web@sha256:000000000000",
            id="missing-digest",
        ),
        pytest.param(
            "us-docker.pkg.dev/acme-shared/images",
            "names no image: Artifact Registry paths are <project>/<repository>/<image>",
            id="path-names-no-image",
        ),
    ],
)
def test_what_is_missing_is_named(gcp_env: GcpEnv, image: str, detail: str) -> None:
    code, verdict = _json(gcp_env, World(repo=[binding(READER, MEMBER)]), image)
    assert (verdict["outcome"], code) == ("not-found", 1)
    assert detail in verdict["fix"]


def test_gcr_io_is_served_by_the_gcr_io_repository(gcp_env: GcpEnv) -> None:
    config, path = _check(gcp_env, World(), "gcr.io/acme-shared/legacy/app:v3")
    repo = gcp_env.fake.add_repository("acme-shared", "us", "gcr.io")
    pushed = push_image(gcp_env.registry, "acme-shared/legacy/app", "v3")
    repo.tags["legacy/app"] = {"v3": pushed.digest}
    repo.bindings.append(binding(READER, MEMBER))
    r = run(["check", "--config", config, "--output", "json", path])
    image = r.json["results"][0]["images"][0]
    assert (image["outcome"], r.exit_code) == ("pullable", 0), image
    assert image["attempts"][0]["identity"]["key"] == "gcr.io"
    # The client double-encodes the package id; the fake unquoted it once and saw AR's own form.
    gcr_repo = "projects/acme-shared/locations/us/repositories/gcr.io"
    assert ("GET", f"/v1/{gcr_repo}/packages/legacy%2Fapp/tags/v3") in gcp_env.fake.requests


def test_platform_comes_from_the_data_plane(gcp_env: GcpEnv) -> None:
    world = World(repo=[binding(READER, MEMBER)])
    config, path = _check(gcp_env, world, "us-docker.pkg.dev/acme-shared/images/team/arm:1.0")
    index = push_index(gcp_env.registry, "acme-shared/images/team/arm", "1.0", (("linux", "arm64", "v8"),))
    gcp_env.fake.repositories[REPO].tags["team/arm"] = {"1.0": index.digest}
    r = run(["check", "--config", config, "--output", "json", path])
    image = r.json["results"][0]["images"][0]
    assert (image["outcome"], r.exit_code) == ("platform-mismatch", 1), image
    assert image["platforms"]["available"] == ["linux/arm64"]


@pytest.mark.parametrize(
    ("impersonable", "repo", "outcome", "words"),
    [
        pytest.param(True, [binding(READER, MEMBER)], "pullable", [], id="iam-says-yes"),
        pytest.param(True, [], "forbidden", ["testIamPermissions as", NODE_SA, READER], id="iam-says-no"),
        pytest.param(
            False,
            [binding(READER, MEMBER)],
            "undetermined",
            ["roles/iam.serviceAccountTokenCreator", "iam.serviceAccounts.getAccessToken"],
            id="pullguard-may-not-impersonate",
        ),
    ],
)
def test_impersonate_mode_asks_iam_as_the_node_sa(
    gcp_env: GcpEnv, impersonable: bool, repo: list[dict[str, Any]], outcome: str, words: list[str]
) -> None:
    world = World(repo=repo, impersonable=impersonable)
    _, image = _json(gcp_env, world, f"{IMAGE}:1.4.2", permissionCheck="impersonate")
    assert image["outcome"] == outcome, image
    text = f"{image['message']} {image['fix'] or ''}"
    for word in words:
        assert word in text, text
    # The real check ran: IAM Credentials issued a token and AR was asked as the node SA.
    assert any(p.endswith(f"{NODE_SA}:generateAccessToken") for _, p in gcp_env.fake.requests)
    if impersonable:
        assert ("POST", f"/v1/{REPO}:testIamPermissions") in gcp_env.fake.requests


def test_denial_texts_name_account_pool_repository_and_remedy(gcp_env: GcpEnv) -> None:
    """The text a developer reads in CI for the two most common GKE denials."""
    texts = []
    for world in (World(), World(repo=[binding(READER, MEMBER)], scopes=[LOGGING])):
        gcp_env.fake.reset()
        config, path = _check(gcp_env, world, f"{IMAGE}:1.4.2")
        r = run(["check", "--config", config, path])
        assert r.exit_code == 1, r.stdout
        texts.append(r.stdout)
    no_reader, no_scope = texts
    assert f"node service account {NODE_SA} of node group pool-a authenticated but may not pull" in no_reader
    assert (
        f"gcloud artifacts repositories add-iam-policy-binding images --project=acme-shared --location=us "
        f"--member=serviceAccount:{NODE_SA} --role=roles/artifactregistry.reader"
    ) in no_reader
    assert "node pool pool-a runs with access scopes [logging.write]" in no_scope
    assert "--scopes=https://www.googleapis.com/auth/devstorage.read_only" in no_scope
    assert all(PULLGUARD_TOKEN not in t for t in texts)


def test_unknown_node_identity_is_undetermined(gcp_env: GcpEnv) -> None:
    _, path = _check(gcp_env, World(repo=[binding(READER, MEMBER)]), f"{IMAGE}:1.4.2")
    config = write_config(gcp_env.tmp, gcp_env.config([{"name": "pool-x", "platform": "linux/amd64"}]))
    r = run(["check", "--config", config, "--output", "json", path])
    image = r.json["results"][0]["images"][0]
    assert (image["outcome"], r.exit_code) == ("undetermined", 3)
    assert "gcpServiceAccount" in image["message"]


def test_google_api_unreachable_is_unknown_not_a_crash(gcp_env: GcpEnv) -> None:
    _, path = _check(gcp_env, World(repo=[binding(READER, MEMBER)]), f"{IMAGE}:1.4.2")
    data = gcp_env.config(
        [{"name": "pool-a", "identity": {"gcpServiceAccount": NODE_SA}}],
        endpoints={"artifactregistry": "http://127.0.0.1:9"},
    )
    config = write_config(gcp_env.tmp, data)
    r = run(["check", "--config", config, "--output", "json", path])
    image = r.json["results"][0]["images"][0]
    assert (image["outcome"], r.exit_code) == ("unreachable", 3), image
    assert "artifactregistry" in image["message"]


def test_empty_token_file_is_pullguards_own_problem(gcp_env: GcpEnv) -> None:
    _, path = _check(gcp_env, World(repo=[binding(READER, MEMBER)]), f"{IMAGE}:1.4.2")
    gcp_env.token_file.write_text("")
    config = write_config(
        gcp_env.tmp, gcp_env.config([{"name": "pool-a", "identity": {"gcpServiceAccount": NODE_SA}}])
    )
    r = run(["check", "--config", config, "--output", "json", path])
    image = r.json["results"][0]["images"][0]
    assert (image["outcome"], r.exit_code) == ("undetermined", 3), image
    assert f"gcp.accessTokenFile {gcp_env.token_file} is empty" in image["message"]


@pytest.mark.parametrize(
    ("public", "outcome", "exit_code"),
    [
        pytest.param(True, "pullable", 0, id="public-mirror"),
        pytest.param(False, "undetermined", 3, id="private-non-ar-host"),
    ],
)
def test_google_hosts_outside_artifact_registry(
    gcp_env: GcpEnv, registry_noauth: RegistryProcess, public: bool, outcome: str, exit_code: int
) -> None:
    """mirror.gcr.io is matched by GKE's *.gcr.io but is not an AR repository: an anonymous probe decides."""
    registry = registry_noauth if public else gcp_env.registry
    push_image(registry, "library/nginx", "1.27")
    group = {"name": "pool-a", "identity": {"gcpServiceAccount": NODE_SA, "scopes": GKE_DEFAULT_SCOPES}}
    data = gcp_env.config([group])
    data["gcp"]["registryEndpoints"]["mirror.gcr.io"] = registry.url
    config = write_config(gcp_env.tmp, data)
    path = gcp_env.tmp / "pod.yaml"
    path.write_text(manifests(pod("web", ["mirror.gcr.io/library/nginx:1.27"])))
    r = run(["check", "--config", config, "--output", "json", str(path)])
    image = r.json["results"][0]["images"][0]
    assert (image["outcome"], r.exit_code) == (outcome, exit_code), image
    assert image["attempts"][0]["identity"]["key"] == "*.gcr.io"
    if not public:
        assert "mirror.gcr.io is not an Artifact Registry host" in image["message"]
