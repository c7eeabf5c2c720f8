"""Does the tag or digest exist in Artifact Registry? Asked with pullguard's own credentials.

The AR API answers what the Docker data plane cannot say without ambiguity: the data plane's
403 reads "denied … (or it may not exist)" (research/domain-facts.md §5.2), while
``get_tag`` / ``get_docker_image`` return 404 for a missing tag or digest and ``list_tags``
gives the repository's tags for "did you mean". ``get_docker_image`` accepts only the digest
form; a tag is resolved through ``get_tag`` whose ``version`` ends in ``versions/sha256:…``
(research/test-infrastructure.md §5).

A missing tag is told apart from a missing package and a missing repository, since the fix
differs (push the tag / push the image / the repository name is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass

from webhook.adapters.gcp._errors import google_errors
from webhook.adapters.gcp.apis import GoogleApis
from webhook.core.errors import CloudError
from webhook.core.gcp_names import ArTarget
from webhook.core.reference import ImageReference

#: Bound on tags read for suggestions (pages of 1000).
MAX_TAGS = 5000


@dataclass(frozen=True, slots=True)
class Found:
    digest: str | None


@dataclass(frozen=True, slots=True)
class Missing:
    what: str  # "tag" | "digest" | "package" | "repository"
    detail: str
    tags: tuple[str, ...] | None = None

    @property
    def fix(self) -> str | None:
        """What to change; None for a missing tag (the verdict suggests the nearest tags)."""
        if self.what == "tag":
            return None
        if self.what == "repository":
            return f"{self.detail}: correct the image path, or create the repository and push the image"
        return f"{self.detail}: push it, or correct the image reference"


class ArtifactLookup:
    def __init__(self, apis: GoogleApis) -> None:
        self._apis = apis

    async def find(self, target: ArTarget, ref: ImageReference) -> Found | Missing:
        """The digest ``ref`` resolves to, or what is missing. Raises ``CloudError`` otherwise."""
        if ref.digest:
            return await self._digest(target, ref.digest)
        tag = ref.tag or "latest"
        try:
            version = await self._apis.call(lambda: self._get_tag(target.tag_name(tag)))
        except CloudError as exc:
            if exc.code != "not-found":
                raise
            return await self._why_missing(target, tag)
        digest = version.rsplit("/", 1)[-1] if "/versions/" in version else None
        return Found(digest)

    def _get_tag(self, name: str) -> str:
        client = self._apis.artifact_registry()
        with google_errors("artifactregistry", f"get_tag {name}"):
            return str(client.get_tag(name=name, retry=None, timeout=self._apis.timeout).version)

    async def _digest(self, target: ArTarget, digest: str) -> Found | Missing:
        name = target.docker_image_name(digest)
        client = self._apis.artifact_registry()

        def get() -> None:
            with google_errors("artifactregistry", f"get_docker_image {name}"):
                client.get_docker_image(name=name, retry=None, timeout=self._apis.timeout)

        try:
            await self._apis.call(get)
        except CloudError as exc:
            if exc.code != "not-found":
                raise
            missing = await self._container_missing(target)
            return missing or Missing(
                "digest", f"no image {target.package}@{digest[:19]}… in {target.display}"
            )
        return Found(digest)

    async def _why_missing(self, target: ArTarget, tag: str) -> Missing:
        try:
            tags = await self._apis.call(lambda: self._list_tags(target))
        except CloudError as exc:
            if exc.code != "not-found":
                raise
            tags = None
        if tags:
            return Missing("tag", f"no tag {tag} on package {target.package} in {target.display}", tags)
        missing = await self._container_missing(target)
        return missing or Missing("tag", f"no tag {tag} on package {target.package} in {target.display}", ())

    async def _container_missing(self, target: ArTarget) -> Missing | None:
        """``package``/``repository`` Missing when the package or the repository itself is absent."""
        client = self._apis.artifact_registry()

        def exists(kind: str, name: str) -> bool:
            try:
                with google_errors("artifactregistry", f"get_{kind} {name}"):
                    getter = client.get_repository if kind == "repository" else client.get_package
                    getter(name=name, retry=None, timeout=self._apis.timeout)
            except CloudError as exc:
                if exc.code == "not-found":
                    return False
                raise
            return True

        if not await self._apis.call(lambda: exists("repository", target.repository_name)):
            return Missing(
                "repository",
                f"{target.display} does not exist (check the project and repository in {target.host}/"
                f"{target.project}/…)",
            )
        if not await self._apis.call(lambda: exists("package", target.package_name)):
            return Missing("package", f"no image {target.package} in {target.display}")
        return None

    def _list_tags(self, target: ArTarget) -> tuple[str, ...]:
        client = self._apis.artifact_registry()
        out: list[str] = []
        with google_errors("artifactregistry", f"list_tags {target.package_name}"):
            pager = client.list_tags(
                request={"parent": target.package_name, "page_size": 1000},
                retry=None,
                timeout=self._apis.timeout,
            )
            for tag in pager:
                out.append(str(tag.name).rsplit("/", 1)[-1])
                if len(out) >= MAX_TAGS:
                    break
        return tuple(out)
