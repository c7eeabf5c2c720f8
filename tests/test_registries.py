"""Registry classification: the ECR plugin's host regex and region parsing, ECR Public, Artifact
Registry / gcr.io locations and which default ``matchImages`` cover an image."""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.core.errors import InputError
from webhook.core.registries import (
    ECR_PRIVATE_HOST_RE,
    ECR_PUBLIC_HOSTS,
    EKS_DEFAULT_MATCH_IMAGES,
    GKE_DEFAULT_MATCH_IMAGES,
    EcrHost,
    GcpRegistry,
    host_from_image_reference,
    matching_patterns,
    parse_ecr_host,
    parse_gcp_host,
    region_from_ecr_host,
)

DATA = Path(__file__).parent / "data" / "conformance" / "registries-and-platforms.json"
if not DATA.is_file():
    pytest.fail(f"conformance vectors missing: {DATA} (copy ../shared/conformance into tests/data)")
VECTORS: dict[str, Any] = json.loads(DATA.read_text())


# --- conformance ----------------------------------------------------------------------------


def test_ecr_regex_is_the_plugins_regex() -> None:
    assert VECTORS["ecr_private_host_regex"] == ECR_PRIVATE_HOST_RE.pattern


@pytest.mark.parametrize(
    "row", [pytest.param(r, id=r["registry"]) for r in VECTORS["ecr_TestRegistryPatternMatch"]]
)
def test_registry_pattern_match_agrees_with_plugin(row: dict[str, Any]) -> None:
    assert (parse_ecr_host(row["registry"]) is not None) is row["expected"]


@pytest.mark.parametrize(
    "row", [pytest.param(r, id=r["host"]) for r in VECTORS["ecr_parseRegionFromECRPrivateHost"]]
)
def test_region_agrees_with_plugin(row: dict[str, Any]) -> None:
    assert region_from_ecr_host(row["host"]) == row["region"]


@pytest.mark.parametrize(
    "row", [pytest.param(r, id=r["image"]) for r in VECTORS["ecr_parseHostFromImageReference"]]
)
def test_host_from_image_reference_agrees_with_plugin(row: dict[str, Any]) -> None:
    if "error" in row:
        with pytest.raises(InputError) as caught:
            host_from_image_reference(row["image"])
        assert str(caught.value) == row["error"]
    else:
        assert host_from_image_reference(row["image"]) == row["host"]


def test_ecr_public_hosts_agree_with_plugin() -> None:
    assert frozenset(VECTORS["ecr_public_hosts"]) == ECR_PUBLIC_HOSTS


@pytest.mark.parametrize(
    ("host", "want"),
    [pytest.param(h, w, id=h) for h, w in VECTORS["matchImages_coverage_computed"]["result"].items()],
)
def test_default_match_images_coverage_agrees(host: str, want: list[str]) -> None:
    assert matching_patterns(EKS_DEFAULT_MATCH_IMAGES + GKE_DEFAULT_MATCH_IMAGES, f"{host}/some/repo") == want


# --- ECR host details -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "want"),
    [
        pytest.param(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            EcrHost("123456789012", "us-east-1", False, False, "amazonaws.com", "aws"),
            id="commercial",
        ),
        pytest.param(
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            EcrHost("123456789012", "us-gov-west-1", True, False, "amazonaws.com", "aws-us-gov"),
            id="gov-fips",
        ),
        pytest.param(
            "123456789012.dkr-ecr.us-west-2.on.aws",
            EcrHost("123456789012", "us-west-2", False, True, "on.aws", "aws"),
            id="dualstack",
        ),
        pytest.param(
            "123456789012.dkr-ecr-fips.us-gov-east-1.on.aws",
            EcrHost("123456789012", "us-gov-east-1", True, True, "on.aws", "aws-us-gov"),
            id="dualstack-gov",
        ),
        pytest.param(
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            EcrHost("123456789012", "cn-north-1", False, False, "amazonaws.com.cn", "aws-cn"),
            id="china",
        ),
        pytest.param(
            "123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn",
            EcrHost("123456789012", "cn-north-1", False, True, "on.amazonwebservices.com.cn", "aws-cn"),
            id="china-dualstack",
        ),
        pytest.param(
            "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
            EcrHost("123456789012", "eusc-de-east-1", False, False, "amazonaws.eu", "aws-eusc"),
            id="eusc",
        ),
        pytest.param(
            "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
            EcrHost("123456789012", "us-iso-east-1", False, False, "c2s.ic.gov", "aws-iso"),
            id="iso",
        ),
        pytest.param(
            "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
            EcrHost("123456789012", "us-isob-east-1", False, False, "sc2s.sgov.gov", "aws-iso-b"),
            id="iso-b",
        ),
        pytest.param(
            "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
            EcrHost("123456789012", "eu-isoe-west-1", False, False, "cloud.adc-e.uk", "aws-iso-e"),
            id="iso-e",
        ),
        pytest.param(
            "123456789012.dkr.ecr.us-isof-east-1.csp.hci.ic.gov",
            EcrHost("123456789012", "us-isof-east-1", False, False, "csp.hci.ic.gov", "aws-iso-f"),
            id="iso-f",
        ),
        pytest.param("123456789012.dkr.ecr.us-east-1.amazonaws.com\n", None, id="trailing-newline-like-go"),
        pytest.param(
            "\u0661\u0662\u0663456789012.dkr.ecr.us-east-1.amazonaws.com", None, id="ascii-digits-only"
        ),
        pytest.param("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", None, id="port-not-part-of-host"),
        pytest.param("public.ecr.aws", None, id="public"),
    ],
)
def test_ecr_hosts_are_taken_apart(host: str, want: EcrHost | None) -> None:
    assert parse_ecr_host(host) == want
    assert region_from_ecr_host(host) == (want.region if want else "")


# --- GCP -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "want"),
    [
        pytest.param("gcr.io", GcpRegistry("gcr", "gcr.io", "us"), id="gcr"),
        pytest.param("us.gcr.io", GcpRegistry("gcr", "us.gcr.io", "us"), id="us-gcr"),
        pytest.param("eu.gcr.io", GcpRegistry("gcr", "eu.gcr.io", "europe"), id="eu-gcr"),
        pytest.param("asia.gcr.io", GcpRegistry("gcr", "asia.gcr.io", "asia"), id="asia-gcr"),
        pytest.param(
            "us-docker.pkg.dev", GcpRegistry("artifact-registry", "us-docker.pkg.dev", "us"), id="ar-multi"
        ),
        pytest.param(
            "europe-west4-docker.pkg.dev",
            GcpRegistry("artifact-registry", "europe-west4-docker.pkg.dev", "europe-west4"),
            id="ar-region",
        ),
        pytest.param("docker.pkg.dev", None, id="no-location"),
        pytest.param("us-python.pkg.dev", None, id="not-docker-format"),
        pytest.param("mirror.gcr.io", None, id="docker-hub-mirror"),
        pytest.param("k8s.gcr.io", None, id="frozen-k8s"),
        pytest.param("registry.k8s.io", None, id="not-gcp"),
        pytest.param("US-docker.pkg.dev", None, id="case-sensitive"),
    ],
)
def test_gcp_hosts_and_locations(host: str, want: GcpRegistry | None) -> None:
    assert parse_gcp_host(host) == want


# --- matchImages ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo", "want"),
    [
        pytest.param(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/app", ["*.dkr.ecr.*.amazonaws.com"], id="ecr"
        ),
        pytest.param("123456789012.dkr.ecr.us-east-1.amazonaws.com:443/app", [], id="port-blocks-glob"),
        pytest.param("public.ecr.aws/nginx/nginx", [], id="ecr-public-not-covered"),
        pytest.param("gcr.io/p/i", ["gcr.io"], id="gcr-exact"),
        pytest.param("us-docker.pkg.dev/p/r/i", ["*.pkg.dev"], id="ar"),
        pytest.param("docker.io/library/nginx", [], id="docker-hub"),
    ],
)
def test_matching_patterns_use_kubelet_globs(repo: str, want: list[str]) -> None:
    assert matching_patterns(EKS_DEFAULT_MATCH_IMAGES + GKE_DEFAULT_MATCH_IMAGES, repo) == want


def test_matching_patterns_keep_the_given_order() -> None:
    assert matching_patterns(["*.io", "gcr.io", "*"], "gcr.io/x") == ["*.io", "gcr.io"]


@given(st.text(max_size=60))
def test_classifiers_never_raise(host: str) -> None:
    parse_ecr_host(host)
    parse_gcp_host(host)
    region_from_ecr_host(host)
    matching_patterns(EKS_DEFAULT_MATCH_IMAGES, host)
    with suppress(InputError):
        host_from_image_reference(host)
