"""May a GKE node pool's service account pull from an Artifact Registry repository? (pure)

A GKE node pulls as its node pool's service account, through the metadata-server token that
carries the node pool's OAuth access scopes (kubernetes/cloud-provider-gcp ``auth-provider-gcp``;
research/domain-facts.md §5.2). Two independent things must hold:

1. **Access scopes.** The token must carry ``cloud-platform`` or a Cloud Storage scope
   (``devstorage.read_only``, ``devstorage.read_write``, ``devstorage.full_control``): the AR docs
   "Deploy to Compute Engine"/"integrate-compute" give the read-only storage scope as the minimum
   for pulls and name read-write, full-control and cloud-platform as the wider ones. Without one
   the pull fails whatever IAM says, and scopes of existing nodes cannot be changed.
2. **IAM.** Some allow-policy binding on the repository, its project, or the project's folders
   and organization must give the service account a role that contains
   ``artifactregistry.repositories.downloadArtifacts``.

Roles known to contain the permission (``ROLES_WITH_DOWNLOAD``), read from Google's role
definitions (IAM "Artifact Registry roles and permissions", and the role JSON of
iann0036/iam-dataset ``gcp/roles/*.json``): ``artifactregistry.reader``, ``.writer``,
``.repoAdmin``, ``.admin`` (``artifactregistry.*``), ``.createOnPushWriter``,
``.createOnPushRepoAdmin``, ``.serviceAgent`` (AR "Artifact Registry service agent"), and the
basic roles ``viewer`` (its role definition lists the permission), ``editor`` and ``owner`` (both
contain every viewer permission). ``roles/container.defaultNodeServiceAccount`` does **not**.
Other predefined roles are treated as not containing it; a custom role
(``projects/*/roles/*``, ``organizations/*/roles/*``) cannot be expanded here and is *unknown*.

Members: ``serviceAccount:<email>`` (case-insensitive), ``allUsers`` and
``allAuthenticatedUsers`` match; ``principalSet://cloudresourcemanager.googleapis.com/projects/
<number>/type/ServiceAccount`` matches when the service account's project number is known;
``group:``, ``domain:`` and other principal sets cannot be expanded → *unknown*, named.
A binding with an IAM condition is *unknown*, naming the condition's title and expression
(pullguard does not evaluate CEL). Deny policies (IAM v2) and principal access boundaries are
not read: the ``impersonate`` permission check (a real ``testIamPermissions`` as the node SA)
covers them.

What it deliberately does not do: no API calls (the adapter reads policies and hands them in),
no guessing about roles it does not know.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CLOUD_PLATFORM",
    "DOWNLOAD_PERMISSION",
    "READER_ROLE",
    "ROLES_WITH_DOWNLOAD",
    "STORAGE_SCOPES",
    "Binding",
    "Condition",
    "IamDecision",
    "Policy",
    "evaluate",
    "has_pull_scope",
    "short_scope",
]

DOWNLOAD_PERMISSION = "artifactregistry.repositories.downloadArtifacts"
READER_ROLE = "roles/artifactregistry.reader"
_SCOPE_PREFIX = "https://www.googleapis.com/auth/"
CLOUD_PLATFORM = _SCOPE_PREFIX + "cloud-platform"
#: Scopes whose metadata token may pull from AR / gcr.io (any one suffices).
STORAGE_SCOPES = frozenset(
    {
        CLOUD_PLATFORM,
        _SCOPE_PREFIX + "devstorage.read_only",
        _SCOPE_PREFIX + "devstorage.read_write",
        _SCOPE_PREFIX + "devstorage.full_control",
    }
)
ROLES_WITH_DOWNLOAD = frozenset(
    {
        "roles/artifactregistry.reader",
        "roles/artifactregistry.writer",
        "roles/artifactregistry.repoAdmin",
        "roles/artifactregistry.admin",
        "roles/artifactregistry.createOnPushWriter",
        "roles/artifactregistry.createOnPushRepoAdmin",
        "roles/artifactregistry.serviceAgent",
        "roles/viewer",
        "roles/editor",
        "roles/owner",
    }
)
#: The same scopes as GKE's short aliases (``--scopes=devstorage.read_only``).
_SCOPE_ALIASES = frozenset(scope.removeprefix(_SCOPE_PREFIX) for scope in STORAGE_SCOPES)


def short_scope(scope: str) -> str:
    """``https://www.googleapis.com/auth/logging.write`` → ``logging.write``."""
    return scope.removeprefix(_SCOPE_PREFIX)


def has_pull_scope(scopes: Sequence[str]) -> bool:
    """Whether a node pool's OAuth scopes let its token pull (full URLs or GKE's short aliases)."""
    return any(s in STORAGE_SCOPES or s in _SCOPE_ALIASES for s in scopes)


@dataclass(frozen=True, slots=True)
class Condition:
    title: str
    expression: str


@dataclass(frozen=True, slots=True)
class Binding:
    role: str
    members: tuple[str, ...]
    condition: Condition | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The allow policy of one resource (``projects/.../repositories/r``, ``projects/p``, ``folders/f``)."""

    resource: str
    bindings: tuple[Binding, ...]


@dataclass(frozen=True, slots=True)
class Grant:
    resource: str
    role: str
    member: str


@dataclass(frozen=True, slots=True)
class IamDecision:
    """``granted``, ``denied`` or ``unknown``; the binding that grants, or why it is unknown."""

    result: str
    grant: Grant | None = None
    unknowns: tuple[str, ...] = ()
    #: Every (resource, role) the principal holds directly, for "what it has instead" in messages.
    held: tuple[tuple[str, str], ...] = ()


def _is_custom(role: str) -> bool:
    return role.startswith(("projects/", "organizations/"))


def _member_matches(member: str, email: str, project_number: str | None) -> bool | None:
    """True/False when decidable, None when the member is a set pullguard cannot expand."""
    kind, _, value = member.partition(":")
    if member in ("allUsers", "allAuthenticatedUsers"):
        return True
    if kind == "serviceAccount":
        return value.lower() == email.lower()
    if kind in ("user", "deleted") or member.startswith("principal://"):
        return False
    if member.startswith("principalSet://cloudresourcemanager.googleapis.com/projects/") and member.endswith(
        "/type/ServiceAccount"
    ):
        number = member.split("/projects/", 1)[1].split("/", 1)[0]
        return None if project_number is None else number == project_number
    # group:, domain:, other principal sets, projectViewer: and the like.
    return None


def _condition_text(condition: Condition) -> str:
    title = f"{condition.title!r} " if condition.title else ""
    return f"condition {title}({condition.expression})"


def evaluate(email: str, policies: Sequence[Policy], project_number: str | None = None) -> IamDecision:
    """Whether ``serviceAccount:email`` holds ``artifactregistry.repositories.downloadArtifacts``.

    ``policies``: the repository's, its project's and the project's ancestors' allow policies.
    ``project_number``: the number of the project that owns the service account, when known.
    """
    unknowns: list[str] = []
    held: list[tuple[str, str]] = []
    for policy in policies:
        for binding in policy.bindings:
            for member in binding.members:
                matched = _member_matches(member, email, project_number)
                if matched is False:
                    continue
                grants = binding.role in ROLES_WITH_DOWNLOAD
                custom = _is_custom(binding.role)
                if matched is True and member.startswith("serviceAccount:"):
                    held.append((policy.resource, binding.role))
                if not grants and not custom:
                    continue
                where = f"{binding.role} on {policy.resource} to {member}"
                if matched is None:
                    unknowns.append(f"{where}: pullguard cannot tell whether {member} includes {email}")
                elif binding.condition is not None:
                    unknowns.append(f"{where} has IAM {_condition_text(binding.condition)}, not evaluated")
                elif custom:
                    unknowns.append(f"{where}: custom role {binding.role} may contain {DOWNLOAD_PERMISSION}")
                else:
                    return IamDecision(
                        "granted", Grant(policy.resource, binding.role, member), held=tuple(held)
                    )
    if unknowns:
        return IamDecision("unknown", unknowns=tuple(unknowns), held=tuple(held))
    return IamDecision("denied", held=tuple(held))
