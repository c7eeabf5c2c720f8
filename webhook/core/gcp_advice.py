"""The words for a GKE node pool that cannot pull from Artifact Registry: why, and what to run (pure).

The GCP checker hands these texts to the verdict as the observation's ``detail`` and ``fix``, so
a denial names the service account, the node pool, the repository and the exact role or scope —
the four things an engineer needs to fix it (research/domain-facts.md §5.2):

- missing IAM: grant ``roles/artifactregistry.reader`` on the repository, in the repository's
  project (a cross-project pull needs the grant there, not in the cluster's project);
- missing scope: access scopes of existing nodes cannot be changed, so the fix is a new node pool
  with a storage scope (or ``cloud-platform`` plus IAM) and moving the workloads to it.
"""

from __future__ import annotations

from webhook.core.gcp_iam import READER_ROLE, IamDecision, short_scope
from webhook.core.gcp_names import ArTarget


def _pool(node_pool: str | None) -> str:
    return f"node pool {node_pool}" if node_pool else "the node pool"


def scope_detail(email: str, node_pool: str | None, scopes: tuple[str, ...]) -> str:
    shown = ", ".join(short_scope(s) for s in scopes) or "none"
    return (
        f"{_pool(node_pool)} runs with access scopes [{shown}], which include neither cloud-platform nor a "
        "Cloud Storage scope (devstorage.read_only or wider): the node's token for "
        f"{email} cannot pull from Artifact Registry whatever IAM grants"
    )


def scope_fix(email: str, node_pool: str | None) -> str:
    name = node_pool or "<pool>"
    return (
        "access scopes of existing nodes cannot be changed: create a node pool with a storage scope and move "
        f"the workloads from {_pool(node_pool)} — gcloud container node-pools create {name}-v2 --cluster=… "
        f"--service-account={email} --scopes=https://www.googleapis.com/auth/devstorage.read_only,… "
        "(or --scopes=cloud-platform and control access with IAM alone)"
    )


def iam_detail(email: str, node_pool: str | None, target: ArTarget, decision: IamDecision) -> str:
    held = (
        "; roles it holds there: " + ", ".join(f"{role} on {res}" for res, role in decision.held)
        if (decision.held)
        else ""
    )
    return (
        f"no IAM binding gives serviceAccount:{email} (the service account of {_pool(node_pool)}) "
        f"artifactregistry.repositories.downloadArtifacts on {target.display}, on project {target.project} "
        f"or its folders and organization{held}"
    )


def iam_fix(email: str, node_pool: str | None, target: ArTarget) -> str:
    return (
        f"grant {READER_ROLE} on {target.display} to the service account of {_pool(node_pool)}: "
        f"gcloud artifacts repositories add-iam-policy-binding {target.repository} "
        f"--project={target.project} --location={target.location} --member=serviceAccount:{email} "
        f"--role={READER_ROLE}"
    )


def unknown_detail(email: str, target: ArTarget, decision: IamDecision, unreadable: tuple[str, ...]) -> str:
    reasons = list(decision.unknowns) + list(unreadable)
    return (
        f"pullguard cannot decide whether serviceAccount:{email} may download from {target.display}: "
        + "; ".join(reasons)
    )


def impersonation_denied_detail(email: str, node_pool: str | None, target: ArTarget) -> str:
    return (
        f"testIamPermissions as serviceAccount:{email} (the service account of {_pool(node_pool)}, "
        f"impersonated) says it lacks artifactregistry.repositories.downloadArtifacts on {target.display} "
        "(allow and deny policies, conditions included)"
    )
