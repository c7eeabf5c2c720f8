"""Classifying registry hosts: ECR private/public, Artifact Registry and gcr.io, and which default
credential-provider ``matchImages`` cover an image.

What: the ECR private host regex and region parsing of kubernetes/cloud-provider-aws
``cmd/ecr-credential-provider/main.go`` (``ecrPrivateHostPattern``, ``parseRegionFromECRPrivateHost``,
``parseHostFromImageReference``), the ``matchImages`` lists EKS and GKE nodes configure
(awslabs/amazon-eks-ami ``nodeadm/internal/kubelet/image-credential-provider.template.json``;
kubernetes/kubernetes ``cluster/gce/gci/configure.sh``), and Artifact Registry / gcr.io locations.

Why: kubelet runs a credential-provider plugin only for images one of its ``matchImages`` globs
accepts (``pkg/credentialprovider/plugin/plugin.go isImageAllowed``, with the keyring's
``URLsMatchStr``), so whether the node identity is used at all is a glob question, and a FIFS host
or ECR Public is not covered by the default lists.

What it deliberately does not do: no cloud API calls, no decision about which identity pulls
(the identity planner does that), no guessing of partitions for hosts the regex rejects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from webhook.core.errors import InputError
from webhook.core.keyring import url_host_and_path, urls_match

__all__ = [
    "ECR_PRIVATE_HOST_RE",
    "ECR_PUBLIC_HOSTS",
    "EKS_DEFAULT_MATCH_IMAGES",
    "GKE_DEFAULT_MATCH_IMAGES",
    "EcrHost",
    "GcpRegistry",
    "host_from_image_reference",
    "matching_patterns",
    "parse_ecr_host",
    "parse_gcp_host",
    "region_from_ecr_host",
]

#: ``ecrPrivateHostPattern``; re.ASCII because Go's ``\d`` is ASCII-only. Match it with
#: ``fullmatch`` so that ``$`` cannot accept a trailing newline, which Go's ``$`` never does.
ECR_PRIVATE_HOST_RE: re.Pattern[str] = re.compile(
    r"^(\d{12})\.dkr[\.\-]ecr(\-fips)?\.([a-zA-Z0-9][a-zA-Z0-9-_]*)\."
    r"(amazonaws\.(?:com(?:\.cn)?|eu)|on\.(?:aws|amazonwebservices\.com\.cn)|sc2s\.sgov\.gov|c2s\.ic\.gov"
    r"|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)$",
    re.ASCII,
)

#: ECR Public registry hosts (the plugin asks ecr-public in us-east-1 for these).
ECR_PUBLIC_HOSTS: frozenset[str] = frozenset({"public.ecr.aws", "ecr-public.aws.com"})

#: The EKS AMI nodeadm template (stored version 07d9e05e). It lists neither ``public.ecr.aws``
#: nor ``*.dkr.ecr.*.csp.hci.ic.gov``, so those images get no plugin credentials on such nodes.
EKS_DEFAULT_MATCH_IMAGES: tuple[str, ...] = (
    "*.dkr.ecr.*.amazonaws.com",
    "*.dkr-ecr.*.on.aws",
    "*.dkr.ecr.*.amazonaws.com.cn",
    "*.dkr-ecr.*.on.amazonwebservices.com.cn",
    "*.dkr.ecr-fips.*.amazonaws.com",
    "*.dkr-ecr-fips.*.on.aws",
    "*.dkr.ecr.*.c2s.ic.gov",
    "*.dkr.ecr.*.sc2s.sgov.gov",
    "*.dkr.ecr.*.cloud.adc-e.uk",
    "*.dkr.ecr.*.amazonaws.eu",
)

#: auth-provider-gcp on GCE/GKE (configure.sh). ``gcr.io`` is listed on its own because
#: ``*.gcr.io`` needs one more label.
GKE_DEFAULT_MATCH_IMAGES: tuple[str, ...] = ("container.cloud.google.com", "gcr.io", "*.gcr.io", "*.pkg.dev")

_PARTITION_BY_SUFFIX = {
    "amazonaws.com.cn": "aws-cn",
    "on.amazonwebservices.com.cn": "aws-cn",
    "amazonaws.eu": "aws-eusc",
    "c2s.ic.gov": "aws-iso",
    "sc2s.sgov.gov": "aws-iso-b",
    "cloud.adc-e.uk": "aws-iso-e",
    "csp.hci.ic.gov": "aws-iso-f",
}
#: gcr.io hosts served as Artifact Registry "gcr.io repositories", with their AR location.
_GCR_LOCATIONS = {"gcr.io": "us", "us.gcr.io": "us", "eu.gcr.io": "europe", "asia.gcr.io": "asia"}
_AR_HOST = re.compile(r"([a-z][a-z0-9-]*[a-z0-9])-docker\.pkg\.dev", re.ASCII)


@dataclass(frozen=True, slots=True)
class EcrHost:
    """An ECR private registry host taken apart."""

    account: str
    region: str
    fips: bool
    dualstack: bool  # the ``dkr-ecr`` (IPv6-capable) endpoints
    suffix: str
    partition: str


@dataclass(frozen=True, slots=True)
class GcpRegistry:
    """An Artifact Registry (or gcr.io-on-AR) host and its location."""

    kind: str  # "artifact-registry" | "gcr"
    host: str
    location: str


def parse_ecr_host(host: str) -> EcrHost | None:
    """The ECR private registry ``host`` names, or None when ``ecrPrivateHostPattern`` rejects it."""
    found = ECR_PRIVATE_HOST_RE.fullmatch(host)
    if found is None:
        return None
    account, fips, region, suffix = found[1], found[2], found[3], found[4]
    partition = _PARTITION_BY_SUFFIX.get(suffix, "aws-us-gov" if region.startswith("us-gov-") else "aws")
    # account (12 digits) + "." + "dkr" puts the dkr/ecr separator at index 16.
    return EcrHost(account, region, bool(fips), host[16] == "-", suffix, partition)


def region_from_ecr_host(host: str) -> str:
    """``parseRegionFromECRPrivateHost``: the region of an ECR private host, "" when not one."""
    found = ECR_PRIVATE_HOST_RE.fullmatch(host)
    return found[3] if found else ""


def host_from_image_reference(image: str) -> str:
    """``parseHostFromImageReference``: ``https://`` unless ``://`` present, then ``url.Parse().Hostname()``.

    Raises :class:`InputError` with the plugin's own message when Go's ``url.Parse`` fails.
    """
    url = image if "://" in image else "https://" + image
    try:
        hostport, _ = url_host_and_path(url)
    except ValueError as exc:
        raise InputError(f"error parsing image reference {url}: {exc}", "image") from None
    colon = hostport.rfind(":")
    if colon >= 0 and all("0" <= c <= "9" for c in hostport[colon + 1 :]):
        hostport = hostport[:colon]
    if hostport.startswith("[") and hostport.endswith("]"):
        hostport = hostport[1:-1]
    return hostport


def parse_gcp_host(host: str) -> GcpRegistry | None:
    """Artifact Registry ``<location>-docker.pkg.dev`` or a gcr.io host AR serves, else None.

    Container Registry shut down on 2025-03-18; ``gcr.io``/``us.gcr.io`` are now AR "gcr.io
    repositories" in ``us``, ``eu.gcr.io`` in ``europe`` and ``asia.gcr.io`` in ``asia``.
    """
    if host in _GCR_LOCATIONS:
        return GcpRegistry("gcr", host, _GCR_LOCATIONS[host])
    found = _AR_HOST.fullmatch(host)
    return GcpRegistry("artifact-registry", host, found[1]) if found else None


def matching_patterns(patterns: Sequence[str], repo: str) -> list[str]:
    """The ``matchImages`` globs that accept ``repo`` (kubelet ``URLsMatchStr``), in the given order."""
    return [pattern for pattern in patterns if urls_match(pattern, repo)]
