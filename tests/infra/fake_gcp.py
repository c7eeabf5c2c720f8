"""A wire-level fake of the Google REST APIs pullguard calls, on 127.0.0.1.

NO EMULATOR EXISTS for Artifact Registry, GKE (container v1), Resource Manager v3 or IAM
Credentials (gcloud ships emulators only for Pub/Sub, Firestore, Datastore, Bigtable and Spanner;
research/test-infrastructure.md §5), so this stdlib ``http.server`` plays them at the HTTP level.
pullguard's real adapters drive it through the real Google client libraries
(``google-cloud-artifact-registry``, ``google-cloud-container``, ``google-cloud-resource-manager``
with ``transport="rest"``, and google-auth's ``impersonated_credentials``); nothing of
pullguard's is patched. The Docker data plane is *not* faked: tests run the real
``docker-registry`` with an htpasswd user ``oauth2accesstoken``.

Wire details it honours (seen with the real clients):

- every request carries ``?$alt=json;enum-encoding=int``; errors are ``{"error": {"code",
  "message", "status"}}`` (a REST 403 becomes ``google.api_core.exceptions.Forbidden``);
- **names are percent-encoded twice**: an AR package id ``team%2Fapp`` arrives as
  ``team%252Fapp``, so the path is unquoted once to get resource ids, and ids once more to get
  the package path;
- ``getIamPolicy`` is ``GET …:getIamPolicy`` on Artifact Registry but ``POST`` on Resource
  Manager; ``testIamPermissions`` is ``POST`` with ``{"permissions": [...]}``;
- ``generateAccessToken`` answers ``{"accessToken", "expireTime"}``.

It checks the bearer token of every call (pullguard's token, or one it issued by
impersonation) and answers ``testIamPermissions`` with a deliberately simple policy check of its
own — unconditional ``serviceAccount:`` bindings of a few reader-or-wider roles on the repository
or its project (IAM policy simulation, which nothing real here can do).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.infra._http import LoopbackHTTP, QuietHandler

_FAKE_READ_ROLES = {
    "roles/artifactregistry.reader",
    "roles/artifactregistry.writer",
    "roles/artifactregistry.admin",
    "roles/viewer",
    "roles/editor",
    "roles/owner",
}
DOWNLOAD = "artifactregistry.repositories.downloadArtifacts"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}


def binding(
    role: str, *members: str, title: str | None = None, expression: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"role": role, "members": list(members)}
    if expression is not None:
        out["condition"] = {"title": title or "", "expression": expression}
    return out


@dataclass
class FakeRepository:
    #: package path ("team/app") -> tag -> digest
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    bindings: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeProject:
    number: str
    parent: str = ""
    bindings: list[dict[str, Any]] = field(default_factory=list)


class FakeGcp(LoopbackHTTP):
    """State of the fake cloud plus the server; tests mutate the state between checks."""

    thread_name = "fake-gcp"

    def __init__(self, token: str) -> None:
        self.token = token
        self.projects: dict[str, FakeProject] = {}
        self.folders: dict[str, FakeProject] = {}  # "folders/123" -> parent + bindings
        self.organizations: dict[str, list[dict[str, Any]]] = {}
        self.repositories: dict[str, FakeRepository] = {}  # "projects/p/locations/l/repositories/r"
        self.clusters: dict[str, list[dict[str, Any]]] = {}  # cluster resource -> nodePools JSON
        self.impersonable: set[str] = set()
        self.refused: set[str] = set()  # resources whose reads answer 403 to pullguard
        self.requests: list[tuple[str, str]] = []
        self._issued: dict[str, str] = {}  # impersonated token -> service account email
        self._lock = threading.Lock()

    # -- setup helpers ---------------------------------------------------------------------------

    def add_project(
        self, project: str, number: str, parent: str = "", *bindings: dict[str, Any]
    ) -> FakeProject:
        self.projects[project] = FakeProject(number, parent, list(bindings))
        return self.projects[project]

    def add_repository(self, project: str, location: str, repository: str) -> FakeRepository:
        name = f"projects/{project}/locations/{location}/repositories/{repository}"
        self.repositories[name] = FakeRepository()
        return self.repositories[name]

    def add_node_pool(self, cluster: str, pool: str, service_account: str, scopes: list[str]) -> None:
        self.clusters.setdefault(cluster, []).append(
            {"name": pool, "config": {"serviceAccount": service_account, "oauthScopes": scopes}}
        )

    def reset(self) -> None:
        with self._lock:
            self.projects.clear()
            self.folders.clear()
            self.organizations.clear()
            self.repositories.clear()
            self.clusters.clear()
            self.impersonable.clear()
            self.refused.clear()
            self.requests.clear()
            self._issued.clear()

    # -- server ----------------------------------------------------------------------------------

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake._dispatch(self, "GET")

            def do_POST(self) -> None:
                fake._dispatch(self, "POST")

        return Handler

    # -- dispatch --------------------------------------------------------------------------------

    def _dispatch(self, handler: QuietHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)  # once: AR ids keep their own %2F
        raw = handler.read_body()
        body: dict[str, Any] = json.loads(raw) if raw else {}
        auth = handler.headers.get("authorization", "")
        with self._lock:
            self.requests.append((method, path))
        try:
            status, doc = self._route(method, path, parse_qs(parts.query), body, auth)
        except _ApiError as answer:
            status, doc = (
                answer.status,
                {
                    "error": {
                        "code": answer.status,
                        "message": answer.message,
                        "status": _STATUS.get(answer.status),
                    }
                },
            )
        handler.reply_json(status, doc)

    def _caller(self, auth: str) -> str:
        """ "pullguard", or the email of an impersonated token; 401 otherwise."""
        token = auth.removeprefix("Bearer ").strip()
        if token == self.token:
            return "pullguard"
        with self._lock:
            email = self._issued.get(token)
        if email is None:
            raise _ApiError(401, "Request had invalid authentication credentials.")
        return email

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any], auth: str
    ) -> tuple[int, dict[str, Any]]:
        caller = self._caller(auth)
        if path.startswith("/v1/projects/-/serviceAccounts/") and path.endswith(":generateAccessToken"):
            return self._generate(path, caller, body)
        if path.startswith("/v3/"):
            return self._resource_manager(method, path.removeprefix("/v3/"), caller)
        if "/clusters/" in path:
            return self._gke(path.removeprefix("/v1/"))
        if path.startswith("/v1/projects/") and "/repositories/" in path:
            return self._artifact_registry(method, path.removeprefix("/v1/"), query, body, caller)
        raise _ApiError(404, f"no such API path {path}")

    # -- IAM Credentials -------------------------------------------------------------------------

    def _generate(self, path: str, caller: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        email = path.split("/serviceAccounts/", 1)[1].removesuffix(":generateAccessToken")
        if caller != "pullguard" or email not in self.impersonable:
            raise _ApiError(
                403, f"Permission 'iam.serviceAccounts.getAccessToken' denied on resource {email}"
            )
        token = f"impersonated-{len(self._issued)}-{email}"
        with self._lock:
            self._issued[token] = email
        return 200, {"accessToken": token, "expireTime": "2099-01-01T00:00:00Z"}

    # -- Resource Manager ------------------------------------------------------------------------

    def _resource_manager(self, method: str, rest: str, caller: str) -> tuple[int, dict[str, Any]]:
        name, _, verb = rest.partition(":")
        if name in self.refused:
            raise _ApiError(403, f"The caller does not have permission on {name}")
        kind, _, ident = name.partition("/")
        if kind == "projects":
            project = self.projects.get(ident) or next(
                (p for p in self.projects.values() if p.number == ident), None
            )
            if project is None:
                raise _ApiError(403, f"Project {ident} not found or permission denied")
            if verb == "getIamPolicy" and method == "POST":
                return 200, {"version": 3, "etag": "BwX", "bindings": project.bindings}
            pid = next(k for k, v in self.projects.items() if v is project)
            return 200, {"name": f"projects/{project.number}", "projectId": pid, "parent": project.parent}
        if kind == "folders":
            folder = self.folders.get(name)
            if folder is None:
                raise _ApiError(403, f"Folder {name} not found or permission denied")
            if verb == "getIamPolicy":
                return 200, {"version": 3, "etag": "BwY", "bindings": folder.bindings}
            return 200, {"name": name, "parent": folder.parent}
        if kind == "organizations" and verb == "getIamPolicy":
            if name not in self.organizations:
                raise _ApiError(403, f"Organization {name} not found or permission denied")
            return 200, {"version": 3, "etag": "BwZ", "bindings": self.organizations[name]}
        raise _ApiError(404, f"no such resource {name}")

    # -- GKE -------------------------------------------------------------------------------------

    def _gke(self, rest: str) -> tuple[int, dict[str, Any]]:
        cluster = rest.removesuffix("/nodePools")
        if cluster not in self.clusters:
            raise _ApiError(404, f"Not found: {cluster}.")
        return 200, {"nodePools": self.clusters[cluster]}

    # -- Artifact Registry -----------------------------------------------------------------------

    def _artifact_registry(
        self, method: str, rest: str, query: dict[str, list[str]], body: dict[str, Any], caller: str
    ) -> tuple[int, dict[str, Any]]:
        name, verb = rest, ""
        for known in ("getIamPolicy", "testIamPermissions"):
            if rest.endswith(":" + known):
                name, verb = rest.removesuffix(":" + known), known
        segments = name.split("/")
        repo_name = "/".join(segments[:6])
        repo = self.repositories.get(repo_name)
        if verb == "testIamPermissions" and method == "POST":
            if repo is None:
                raise _ApiError(404, f"Repository {repo_name} not found")
            held = DOWNLOAD in body.get("permissions", []) and self._simulate(caller, repo_name, repo)
            return 200, {"permissions": [DOWNLOAD] if held else []}
        if caller != "pullguard":
            raise _ApiError(403, "impersonated tokens are only used for testIamPermissions here")
        if repo_name in self.refused:
            raise _ApiError(
                403, f"Permission 'artifactregistry.repositories.get' denied on resource {repo_name}"
            )
        if repo is None:
            raise _ApiError(404, f"Requested entity was not found: {repo_name}")
        if verb == "getIamPolicy":
            return 200, {"version": 3, "etag": "BwA", "bindings": repo.bindings}
        rest_segments = segments[6:]
        if not rest_segments:
            return 200, {"name": repo_name, "format": 1}
        if rest_segments[0] == "packages":
            package = unquote(rest_segments[1])
            tags = repo.tags.get(package)
            if tags is None:
                raise _ApiError(404, f"Requested entity was not found: package {package}")
            if len(rest_segments) == 2:
                return 200, {"name": f"{repo_name}/packages/{rest_segments[1]}"}
            if len(rest_segments) == 3:
                return 200, self._tag_page(repo_name, rest_segments[1], tags, query)
            tag = rest_segments[3]
            if tag not in tags:
                raise _ApiError(404, f"Requested entity was not found: tag {tag}")
            base = f"{repo_name}/packages/{rest_segments[1]}"
            return 200, {"name": f"{base}/tags/{tag}", "version": f"{base}/versions/{tags[tag]}"}
        if rest_segments[0] == "dockerImages":
            image, _, digest = rest_segments[1].partition("@")
            package = unquote(image)
            if digest not in repo.tags.get(package, {}).values():
                raise _ApiError(404, f"Requested entity was not found: image {package}@{digest}")
            return 200, {"name": name, "uri": f"{package}@{digest}"}
        raise _ApiError(404, f"no such resource {name}")

    @staticmethod
    def _tag_page(
        repo_name: str, package_id: str, tags: dict[str, str], query: dict[str, list[str]]
    ) -> dict[str, Any]:
        names = sorted(tags)
        size = int((query.get("pageSize") or ["1000"])[0])
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        page = names[start : start + size]
        base = f"{repo_name}/packages/{package_id}"
        doc: dict[str, Any] = {
            "tags": [{"name": f"{base}/tags/{t}", "version": f"{base}/versions/{tags[t]}"} for t in page]
        }
        if start + size < len(names):
            doc["nextPageToken"] = str(start + size)
        return doc

    def _simulate(self, email: str, repo_name: str, repo: FakeRepository) -> bool:
        project = self.projects.get(repo_name.split("/")[1])
        bindings = list(repo.bindings) + (list(project.bindings) if project else [])
        return any(
            b["role"] in _FAKE_READ_ROLES
            and f"serviceAccount:{email}" in b["members"]
            and "condition" not in b
            for b in bindings
        )


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
