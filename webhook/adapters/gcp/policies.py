"""Reading the allow policies that decide an Artifact Registry pull: repository, project, ancestors.

IAM is inherited down the resource hierarchy, so a grant on the project, a folder or the
organization counts as much as one on the repository (IAM "Resource hierarchy" /
"Policy inheritance"). ``PolicyReader.read`` returns every policy it could read, the ones it
could not (named, with the API's reason: pullguard's own service account needs
``getIamPolicy`` there), and hands them to the pure ``core.gcp_iam.evaluate``. Policies are asked
for with ``requestedPolicyVersion: 3`` so that conditional bindings are returned with their
conditions instead of being hidden.

Policies are cached for ``ttl`` seconds per resource: many images share a repository.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from webhook.adapters.gcp._errors import google_errors
from webhook.adapters.gcp.apis import GoogleApis
from webhook.core.errors import CloudError
from webhook.core.gcp_iam import Binding, Condition, Policy
from webhook.core.gcp_names import ArTarget
from webhook.memo import Memo

T = TypeVar("T")
#: A project's ancestry is at most 10 folders deep under its organization (Resource Manager limit).
MAX_ANCESTORS = 12


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: tuple[Policy, ...]
    unreadable: tuple[str, ...]


def _policy(resource: str, proto: Any) -> Policy:
    bindings = []
    for b in proto.bindings:
        condition = None
        if b.HasField("condition"):
            condition = Condition(str(b.condition.title), str(b.condition.expression))
        bindings.append(Binding(str(b.role), tuple(str(m) for m in b.members), condition))
    return Policy(resource, tuple(bindings))


class PolicyReader:
    def __init__(self, apis: GoogleApis, ttl: float = 60.0) -> None:
        self._apis = apis
        self._memo: Memo[object] = Memo(ttl)

    async def read(self, target: ArTarget) -> PolicySet:
        policies: list[Policy] = []
        unreadable: list[str] = []
        resources = [target.repository_name, f"projects/{target.project}"]
        resource: str | None = f"projects/{target.project}"
        for _ in range(MAX_ANCESTORS):
            assert resource is not None
            parent = await self._parent(resource)
            if isinstance(parent, CloudError):
                unreadable.append(f"the ancestors of {resource} could not be read ({parent.message})")
                break
            if not parent:
                break
            resources.append(parent)
            resource = parent
        for name in resources:
            got = await self._policy(name)
            if isinstance(got, CloudError):
                unreadable.append(f"the IAM policy of {name} could not be read ({got.message})")
            else:
                policies.append(got)
        return PolicySet(tuple(policies), tuple(unreadable))

    async def _once(self, key: str, fetch: Callable[[], Awaitable[T]]) -> T | CloudError:
        """``fetch()`` cached for ``ttl`` and single-flighted: parallel checks of one repository
        (every image of a chart) read each policy once."""
        # Errors are captured as values, so a refusal is kept for the TTL too (as before).
        return cast("T | CloudError", await self._memo.get(key, lambda: self._capture(fetch)))

    @staticmethod
    async def _capture(fetch: Callable[[], Awaitable[object]]) -> object:
        try:
            return await fetch()
        except CloudError as exc:
            return exc

    async def _policy(self, resource: str) -> Policy | CloudError:
        return await self._once(
            "policy:" + resource, lambda: self._apis.call(lambda: self._get_policy(resource))
        )

    def _get_policy(self, resource: str) -> Policy:
        request = {"resource": resource, "options": {"requested_policy_version": 3}}
        if resource.startswith("projects/") and "/repositories/" in resource:
            client = self._apis.artifact_registry()
            service = "artifactregistry"
        else:
            client = self._apis.resource_manager(resource.split("/", 1)[0])
            service = "cloudresourcemanager"
        with google_errors(service, f"getIamPolicy {resource}"):
            proto = client.get_iam_policy(request=request, retry=None, timeout=self._apis.timeout)
        return _policy(resource, proto)

    async def _parent(self, resource: str) -> str | CloudError:
        """``folders/…``/``organizations/…`` above ``resource``; "" at the top."""
        if resource.startswith("organizations/"):
            return ""
        kind = resource.split("/", 1)[0]

        def get() -> str:
            client = self._apis.resource_manager(kind)
            with google_errors("cloudresourcemanager", f"get {resource}"):
                if kind == "projects":
                    found = client.get_project(name=resource, retry=None, timeout=self._apis.timeout)
                else:
                    found = client.get_folder(name=resource, retry=None, timeout=self._apis.timeout)
            return str(found.parent)

        return await self._once("parent:" + resource, lambda: self._apis.call(get))
