"""Can a GKE node pool's service account pull this Artifact Registry / gcr.io image?

The GKE credential provider (``auth-provider-gcp``) hands kubelet the node pool's service-account
token, limited by the node pool's OAuth access scopes; Workload Identity does not apply to pulls
(research/domain-facts.md §5.2). ``GcpChecker.check`` answers for one planned attempt, in this
order, each step naming what it found:

1. **Exists?** ``get_tag`` / ``get_docker_image`` with pullguard's own credentials
   (``artifacts.py``). A missing tag is ``not-found`` with the repository's tags attached (the
   engine turns them into "did you mean"). pullguard's own credentials refused → ``undetermined``
   ("its own cloud credentials refused", DESIGN 1.1).
2. **Scopes.** No ``cloud-platform`` and no ``devstorage.*`` scope → ``forbidden``: the token
   cannot pull whatever IAM says (``core.gcp_iam.has_pull_scope``).
3. **IAM.** ``gcp.permissionCheck: iam`` (default) reads the allow policies of the repository,
   project, folders and organization and evaluates them (``core.gcp_iam.evaluate``): conditions,
   groups and custom roles are ``undetermined``, named. ``impersonate`` instead asks IAM
   Credentials for a token of the node SA and calls ``testIamPermissions`` on the repository as
   that SA — IAM's own answer, deny policies and conditions included (needs
   ``roles/iam.serviceAccountTokenCreator`` on the node SA for pullguard).
4. **Platforms.** The Docker data plane (``RegistryClient``, user ``oauth2accesstoken`` and
   pullguard's token; ``gcp.registryEndpoints`` maps the host) gives the digest and manifest
   for the platform check. A refusal there is pullguard's own access, so ``undetermined``.

Hosts matched by GKE's ``matchImages`` that are not AR (``mirror.gcr.io``, ``k8s.gcr.io``,
``marketplace.gcr.io``, ``container.cloud.google.com``) cannot be asked through the AR API: an
anonymous data-plane probe decides when the image is public, else ``undetermined``.
"""

from __future__ import annotations

from webhook.adapters.gcp.apis import GoogleApis
from webhook.adapters.gcp.artifacts import ArtifactLookup, Found
from webhook.adapters.gcp.impersonation import ImpersonatedCheck
from webhook.adapters.gcp.policies import PolicyReader
from webhook.adapters.registry import RegistryClient
from webhook.core import gcp_advice
from webhook.core.assess import Observation
from webhook.core.errors import CloudError
from webhook.core.gcp_iam import IamDecision, evaluate, has_pull_scope
from webhook.core.gcp_names import ArTarget, ar_path_problem, ar_target
from webhook.core.identity import PlannedAttempt, StaticCredential
from webhook.core.reference import ImageReference

DATA_PLANE_USER = "oauth2accesstoken"
_OWN_ACCESS = {
    "forbidden": "pullguard's own credentials may not read it — grant pullguard's service account "
    "roles/artifactregistry.reader (and getIamPolicy: roles/iam.securityReviewer) to check it",
    "unauthorized": "pullguard's own Google credentials were refused or could not be obtained",
}
_UNKNOWN_OUTCOMES = {"timeout": "timeout", "unreachable": "unreachable", "rate-limited": "rate-limited"}


def _cloud_observation(exc: CloudError, what: str) -> Observation:
    outcome = _UNKNOWN_OUTCOMES.get(exc.code or "", "undetermined")
    why = _OWN_ACCESS.get(exc.code or "", "")
    detail = f"{what}: {exc.message}" + (f"; {why}" if why else "")
    return Observation(outcome, detail=detail)


class GcpChecker:
    """The ``NodeIdentityChecker`` for ``provider.kind == "gcp"``."""

    def __init__(self, apis: GoogleApis, registry: RegistryClient) -> None:
        self._apis = apis
        self._registry = registry
        self._artifacts = ArtifactLookup(apis)
        self._policies = PolicyReader(apis)
        self._impersonation = ImpersonatedCheck(apis)

    async def check(self, ref: ImageReference, attempt: PlannedAttempt) -> Observation:
        identity = attempt.node_identity
        pool = attempt.identity.node_group
        if identity is None or identity.kind != "node-service-account" or not identity.principal:
            return Observation(
                "undetermined",
                detail="the node pool's service account is not known: set cluster.nodeGroups[].identity."
                "gcpServiceAccount (and scopes), or gcp.cluster for discovery through the GKE API",
            )
        target = ar_target(ref)
        if target is None:
            problem = ar_path_problem(ref)
            if problem is not None:
                return Observation(
                    "not-found",
                    404,
                    "NAME_UNKNOWN",
                    detail=problem,
                    fix=f"{problem}; correct it",
                    exists=False,
                )
            return await self._not_artifact_registry(ref)
        email = identity.principal
        try:
            found = await self._artifacts.find(target, ref)
        except CloudError as exc:
            return _cloud_observation(exc, f"looking up {ref.pull_reference} in Artifact Registry")
        if not isinstance(found, Found):
            return Observation(
                "not-found",
                404,
                "NOT_FOUND",
                detail=found.detail,
                fix=found.fix,
                exists=False,
                tags=found.tags,
            )
        if not has_pull_scope(identity.scopes):
            return Observation(
                "forbidden",
                403,
                "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                detail=gcp_advice.scope_detail(email, pool, identity.scopes),
                fix=gcp_advice.scope_fix(email, pool),
                exists=True,
            )
        refusal = await self._permission(email, pool, target)
        if refusal is not None:
            return refusal
        return await self._data_plane(ref, found)

    async def _permission(self, email: str, pool: str | None, target: ArTarget) -> Observation | None:
        """None when the SA may download; else the forbidden/undetermined observation."""
        if self._apis.options.permission_check == "impersonate":
            try:
                allowed = await self._impersonation.may_download(email, target)
            except CloudError as exc:
                return _cloud_observation(
                    exc,
                    f"impersonating {email} to test its access (pullguard needs "
                    "roles/iam.serviceAccountTokenCreator on that service account)",
                )
            if allowed:
                return None
            return Observation(
                "forbidden",
                403,
                "DENIED",
                detail=gcp_advice.impersonation_denied_detail(email, pool, target),
                fix=gcp_advice.iam_fix(email, pool, target),
                exists=True,
            )
        read = await self._policies.read(target)
        number = (
            email.split("-compute@", 1)[0]
            if email.endswith("-compute@developer.gserviceaccount.com")
            else None
        )
        decision = evaluate(email, read.policies, number)
        if decision.result == "granted":
            return None
        if decision.result == "unknown" or read.unreadable:
            shown = decision if decision.result == "unknown" else IamDecision("unknown")
            return Observation(
                "undetermined",
                detail=gcp_advice.unknown_detail(email, target, shown, read.unreadable),
                exists=True,
            )
        return Observation(
            "forbidden",
            403,
            "DENIED",
            detail=gcp_advice.iam_detail(email, pool, target, decision),
            fix=gcp_advice.iam_fix(email, pool, target),
            exists=True,
        )

    async def _data_plane(self, ref: ImageReference, found: Found) -> Observation:
        try:
            token = await self._apis.call(self._apis.access_token)
        except CloudError as exc:
            return _cloud_observation(exc, "getting pullguard's token for the Docker data plane")
        obs = await self._registry.check(ref, StaticCredential(DATA_PLANE_USER, token), want_manifest=True)
        if obs.result in ("unauthorized", "forbidden"):
            return Observation(
                "undetermined",
                obs.status,
                obs.code,
                detail="the node service account may pull, but the Docker data plane refused pullguard's "
                f"own token ({obs.status} {obs.code or ''}) so the platforms are unknown",
                exists=True,
            )
        if obs.result == "pullable" and found.digest and obs.digest and obs.digest != found.digest:
            return Observation(
                "undetermined",
                detail=f"Artifact Registry says {ref.manifest_reference} is {found.digest} but the data "
                f"plane served {obs.digest}",
                exists=True,
            )
        return obs

    async def _not_artifact_registry(self, ref: ImageReference) -> Observation:
        obs = await self._registry.check(ref, None, want_manifest=True)
        if obs.result == "pullable":
            return obs
        if obs.result in ("not-found", "digest-mismatch", "timeout", "unreachable", "refused-destination"):
            return obs
        return Observation(
            "undetermined",
            detail=f"{ref.domain} is not an Artifact Registry host: pullguard cannot act as the node service "
            "account there, and an anonymous pull is refused",
        )
