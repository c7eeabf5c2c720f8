"""The pure GCP rules: which bindings give a node SA downloadArtifacts, which scopes pull, AR names."""

from __future__ import annotations

import pytest

from webhook.core.gcp_iam import Binding, Condition, Policy, evaluate, has_pull_scope
from webhook.core.gcp_names import ar_path_problem, ar_target
from webhook.core.reference import parse_normalized_named

SA = "nodes@acme-prod.iam.gserviceaccount.com"
REPO = "projects/acme-shared/locations/us/repositories/images"


def _decide(*bindings: Binding, number: str | None = None) -> tuple[str, str | None]:
    decision = evaluate(SA, [Policy(REPO, tuple(bindings))], number)
    return decision.result, decision.grant.role if decision.grant else None


@pytest.mark.parametrize(
    ("bindings", "number", "expected"),
    [
        # -- roles that contain artifactregistry.repositories.downloadArtifacts ---------------------
        *[
            pytest.param([Binding(role, (f"serviceAccount:{SA}",))], None, ("granted", role), id=role)
            for role in (
                "roles/artifactregistry.reader",
                "roles/artifactregistry.writer",
                "roles/artifactregistry.repoAdmin",
                "roles/artifactregistry.admin",
                "roles/artifactregistry.createOnPushWriter",
                "roles/artifactregistry.createOnPushRepoAdmin",
                "roles/viewer",
                "roles/editor",
                "roles/owner",
            )
        ],
        # -- roles that do not ------------------------------------------------------------------
        pytest.param(
            [Binding("roles/container.defaultNodeServiceAccount", (f"serviceAccount:{SA}",))],
            None,
            ("denied", None),
            id="gke-default-node-role",
        ),
        pytest.param(
            [Binding("roles/storage.objectViewer", (f"serviceAccount:{SA}",))],
            None,
            ("denied", None),
            id="legacy-gcr-bucket-role-is-not-ar",
        ),
        # -- members ----------------------------------------------------------------------------
        pytest.param(
            [Binding("roles/artifactregistry.reader", (f"serviceAccount:{SA.upper()}",))],
            None,
            ("granted", "roles/artifactregistry.reader"),
            id="email-case-insensitive",
        ),
        pytest.param(
            [Binding("roles/artifactregistry.reader", ("allAuthenticatedUsers",))],
            None,
            ("granted", "roles/artifactregistry.reader"),
            id="all-authenticated-users",
        ),
        pytest.param(
            [Binding("roles/artifactregistry.reader", (f"deleted:serviceAccount:{SA}?uid=123",))],
            None,
            ("denied", None),
            id="deleted-member",
        ),
        pytest.param(
            [Binding("roles/artifactregistry.reader", ("user:alice@acme.example",))],
            None,
            ("denied", None),
            id="a-user-is-not-the-sa",
        ),
        pytest.param(
            [Binding("roles/artifactregistry.reader", ("domain:acme.example",))],
            None,
            ("unknown", None),
            id="domain-cannot-be-expanded",
        ),
        pytest.param(
            [
                Binding(
                    "roles/artifactregistry.reader",
                    ("principalSet://cloudresourcemanager.googleapis.com/projects/222/type/ServiceAccount",),
                )
            ],
            "222",
            ("granted", "roles/artifactregistry.reader"),
            id="all-sas-of-the-sa-project",
        ),
        pytest.param(
            [
                Binding(
                    "roles/artifactregistry.reader",
                    ("principalSet://cloudresourcemanager.googleapis.com/projects/222/type/ServiceAccount",),
                )
            ],
            None,
            ("unknown", None),
            id="project-principal-set-without-number",
        ),
        # -- a definite grant wins over an unknown one ------------------------------------------
        pytest.param(
            [
                Binding("roles/artifactregistry.reader", ("group:g@acme.example",)),
                Binding("roles/artifactregistry.reader", (f"serviceAccount:{SA}",)),
            ],
            None,
            ("granted", "roles/artifactregistry.reader"),
            id="grant-beside-group",
        ),
        pytest.param(
            [
                Binding(
                    "roles/artifactregistry.reader",
                    (f"serviceAccount:{SA}",),
                    Condition("expires", 'request.time < timestamp("2030-01-01T00:00:00Z")'),
                )
            ],
            None,
            ("unknown", None),
            id="conditional-binding",
        ),
    ],
)
def test_download_permission_from_bindings(
    bindings: list[Binding], number: str | None, expected: tuple[str, str | None]
) -> None:
    assert _decide(*bindings, number=number) == expected


def test_unknown_names_condition_and_member() -> None:
    decision = evaluate(
        SA,
        [
            Policy(
                REPO,
                (
                    Binding(
                        "roles/artifactregistry.reader",
                        (f"serviceAccount:{SA}",),
                        Condition("hours", "x < 1"),
                    ),
                    Binding("roles/viewer", ("group:g@acme.example",)),
                ),
            )
        ],
    )
    assert decision.unknowns == (
        f"roles/artifactregistry.reader on {REPO} to serviceAccount:{SA} has IAM condition 'hours' (x < 1), "
        "not evaluated",
        f"roles/viewer on {REPO} to group:g@acme.example: pullguard cannot tell whether group:g@acme.example "
        f"includes {SA}",
    )


@pytest.mark.parametrize(
    ("scopes", "pulls"),
    [
        pytest.param(["https://www.googleapis.com/auth/cloud-platform"], True, id="cloud-platform"),
        pytest.param(["https://www.googleapis.com/auth/devstorage.read_only"], True, id="storage-ro"),
        pytest.param(["https://www.googleapis.com/auth/devstorage.read_write"], True, id="storage-rw"),
        pytest.param(["https://www.googleapis.com/auth/devstorage.full_control"], True, id="storage-full"),
        pytest.param(["devstorage.read_only"], True, id="gke-short-alias"),
        pytest.param(
            ["https://www.googleapis.com/auth/logging.write", "https://www.googleapis.com/auth/monitoring"],
            False,
            id="logging-and-monitoring-only",
        ),
        pytest.param(["https://www.googleapis.com/auth/cloud-platform.read-only"], False, id="cp-read-only"),
        pytest.param([], False, id="no-scopes"),
    ],
)
def test_pull_needs_cloud_platform_or_a_storage_scope(scopes: list[str], pulls: bool) -> None:
    assert has_pull_scope(scopes) is pulls


@pytest.mark.parametrize(
    ("image", "names"),
    [
        pytest.param(
            "us-docker.pkg.dev/p/r/team/app:1",
            ("p", "us", "r", "projects/p/locations/us/repositories/r/packages/team%2Fapp/tags/1"),
            id="ar-nested-package",
        ),
        pytest.param(
            "europe-west1-docker.pkg.dev/p/r/app:1",
            (
                "p",
                "europe-west1",
                "r",
                "projects/p/locations/europe-west1/repositories/r/packages/app/tags/1",
            ),
            id="ar-regional",
        ),
        pytest.param(
            "gcr.io/p/app:1",
            ("p", "us", "gcr.io", "projects/p/locations/us/repositories/gcr.io/packages/app/tags/1"),
            id="gcr-io-is-us",
        ),
        pytest.param(
            "eu.gcr.io/p/a/b:1",
            (
                "p",
                "europe",
                "eu.gcr.io",
                "projects/p/locations/europe/repositories/eu.gcr.io/packages/a%2Fb/tags/1",
            ),
            id="eu-gcr-io-is-europe",
        ),
        pytest.param(
            "asia.gcr.io/p/a:1",
            (
                "p",
                "asia",
                "asia.gcr.io",
                "projects/p/locations/asia/repositories/asia.gcr.io/packages/a/tags/1",
            ),
            id="asia-gcr-io-is-asia",
        ),
    ],
)
def test_artifact_registry_names(image: str, names: tuple[str, str, str, str]) -> None:
    ref = parse_normalized_named(image)
    target = ar_target(ref)
    assert target is not None
    assert (target.project, target.location, target.repository, target.tag_name(ref.tag or "")) == names


@pytest.mark.parametrize(
    ("image", "problem"),
    [
        pytest.param("us-docker.pkg.dev/p/r", "paths are <project>/<repository>/<image>", id="ar-too-short"),
        pytest.param("gcr.io/p", "gcr.io paths are <project>/<image>", id="gcr-too-short"),
        pytest.param("mirror.gcr.io/library/nginx", None, id="not-an-ar-host"),
    ],
)
def test_paths_that_name_no_image(image: str, problem: str | None) -> None:
    ref = parse_normalized_named(image)
    assert ar_target(ref) is None
    text = ar_path_problem(ref)
    assert (text is None) if problem is None else (problem in (text or ""))
