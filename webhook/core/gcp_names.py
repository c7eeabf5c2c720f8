"""Which Artifact Registry repository, package, tag or image an image reference names (pure).

What: ``ar_target`` takes an image reference on an Artifact Registry host and returns the
resource names the Artifact Registry v1 API uses for it:

- ``<location>-docker.pkg.dev/<project>/<repository>/<image path>``: the first two path
  components are the project and the repository, the rest is the package (AR "Docker repository
  URLs"; research/domain-facts.md §5.2);
- ``gcr.io/<project>/<image path>`` (and ``us.``/``eu.``/``asia.gcr.io``): Container Registry
  shut down on 2025-03-18 and these hosts are served by AR *gcr.io repositories* named after the
  host (``gcr.io``, ``us.gcr.io``, ...) in location ``us``, ``europe`` or ``asia`` (AR "gcr.io
  repositories"; ``core.registries.parse_gcp_host`` holds the table).

Resource ids follow the API's rule that a package or image name is written with ``/`` escaped
as ``%2F`` inside the resource name (``.../packages/team%2Fapp/tags/v1``,
``.../dockerImages/team%2Fapp@sha256:...``). The REST client percent-encodes the whole name a
second time on the wire; that is the client's business, not ours.

What it deliberately does not do: no API calls, no guess for hosts that are not AR (``mirror.gcr.io``,
``k8s.gcr.io``, ``marketplace.gcr.io`` and ``container.cloud.google.com`` are Google-run but not
addressable through the AR API; callers treat them separately).
"""

from __future__ import annotations

from dataclasses import dataclass

from webhook.core.reference import ImageReference
from webhook.core.registries import parse_gcp_host

__all__ = ["ArTarget", "ar_path_problem", "ar_target"]


@dataclass(frozen=True, slots=True)
class ArTarget:
    """One image in one Artifact Registry repository."""

    host: str
    project: str
    location: str
    repository: str
    package: str  # the image path inside the repository, "/" kept ("team/app")

    @property
    def repository_name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/repositories/{self.repository}"

    @property
    def package_id(self) -> str:
        return self.package.replace("/", "%2F")

    @property
    def package_name(self) -> str:
        return f"{self.repository_name}/packages/{self.package_id}"

    def tag_name(self, tag: str) -> str:
        return f"{self.package_name}/tags/{tag}"

    def docker_image_name(self, digest: str) -> str:
        return f"{self.repository_name}/dockerImages/{self.package_id}@{digest}"

    @property
    def display(self) -> str:
        """How a sentence names the repository ("repository images (us, project acme-shared)")."""
        return f"repository {self.repository} ({self.location}, project {self.project})"


def ar_target(ref: ImageReference) -> ArTarget | None:
    """The AR resources ``ref`` names, or None when its host is not an AR (or gcr.io-on-AR) host.

    A path too short to name a package (``us-docker.pkg.dev/proj/repo``) also gives None with
    ``ar_path_problem`` explaining why.
    """
    registry = parse_gcp_host(ref.domain)
    if registry is None:
        return None
    parts = ref.path.split("/")
    if registry.kind == "gcr":
        if len(parts) < 2:
            return None
        return ArTarget(ref.domain, parts[0], registry.location, ref.domain, "/".join(parts[1:]))
    if len(parts) < 3:
        return None
    return ArTarget(ref.domain, parts[0], registry.location, parts[1], "/".join(parts[2:]))


def ar_path_problem(ref: ImageReference) -> str | None:
    """Why an image on an AR host names no package, or None when it does (or the host is not AR)."""
    registry = parse_gcp_host(ref.domain)
    if registry is None or ar_target(ref) is not None:
        return None
    if registry.kind == "gcr":
        return f"{ref.name} names no image: gcr.io paths are <project>/<image>"
    return f"{ref.name} names no image: Artifact Registry paths are <project>/<repository>/<image>"
