"""The plan kubelet follows: which credentials it tries for each image, in which order.

This is pullguard's reason to exist, so it follows kubelet line by line
(pkg/kubelet/images/image_manager.go ``makeLookupPullCredentialsFunc`` and
pkg/kubelet/kuberuntime/kuberuntime_image.go ``PullImage``; research/domain-facts.md §1–§2):

1. The pod's pull secrets, in ``imagePullSecrets`` order. A Pod that passed admission already
   carries its ServiceAccount's secrets (the ServiceAccount admission plugin copies them only when
   the pod lists none); a template, or a Pod read from a file, has not passed it, so the same
   rule is applied here. Missing secrets are skipped (a finding, as kubelet only logs it); one
   malformed secret makes ``MakeDockerKeyring`` fail, which aborts the credential lookup of
   **every** image of the pod.
2. The node's docker config (``/var/lib/kubelet/config.json``).
3. Credential-provider plugins whose ``matchImages`` cover the image (ECR as the node IAM role or
   the Fargate pod execution role, GKE as the node pool's service account, other plugins).

Each of the three is its own keyring with its own Docker Hub fallback (kubelet's
``UnionDockerKeyring`` looks each up separately). If any credential matched, kubelet tries each and
fails when all fail — **no anonymous retry**. Only when nothing matched does it pull anonymously.

The planner is pure: secrets, service accounts and node groups are looked up by the caller and
passed in as values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from webhook.core.dockercfg import AuthEntry, entries_from_secret
from webhook.core.errors import InvalidReferenceError, SecretMalformedError
from webhook.core.findings import Finding
from webhook.core.keyring import Keyring, urls_match
from webhook.core.nodes import NodeGroup, NodeIdentity, Placement, candidate_groups
from webhook.core.objects import SecretObject, ServiceAccountObject
from webhook.core.redact import Secret
from webhook.core.reference import ImageReference, parse_normalized_named
from webhook.core.registries import EKS_DEFAULT_MATCH_IMAGES, GKE_DEFAULT_MATCH_IMAGES
from webhook.core.workloads import ImageSite, PodTemplate, PullSecretRef


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A Secret or ServiceAccount that could not be read (no cluster access, no RBAC, ...)."""

    reason: str


SecretResult = SecretObject | Unavailable | None  # None: the object does not exist
AccountResult = ServiceAccountObject | Unavailable | None


@dataclass(frozen=True, slots=True)
class CredentialProvider:
    """A kubelet credential-provider plugin as configured on the nodes.

    kind: ``ecr`` (ecr-credential-provider), ``gcp`` (auth-provider-gcp) or ``generic``.
    """

    name: str
    kind: str
    match_images: tuple[str, ...]


DEFAULT_PROVIDERS = (
    CredentialProvider("ecr-credential-provider", "ecr", EKS_DEFAULT_MATCH_IMAGES),
    CredentialProvider("auth-provider-gcp", "gcp", GKE_DEFAULT_MATCH_IMAGES),
)


@dataclass(frozen=True, slots=True)
class NodeDockerConfig:
    """The node's docker config: what kubelet reads from /var/lib/kubelet/config.json."""

    path: str
    entries: tuple[AuthEntry, ...]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who pulls: the ``identity`` object of the JSON output (DESIGN 1.1)."""

    kind: str  # pull-secret | node-docker-config | node-role | fargate-role | node-service-account
    #            | credential-provider | anonymous
    name: str | None = None
    key: str | None = None
    username: str | None = None
    node_group: str | None = None

    def to_json(self) -> dict[str, object]:
        """Every key of DESIGN 1.1's ``identity``, null when it does not apply (scripts index them)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "key": self.key,
            "username": self.username,
            "nodeGroup": self.node_group,
        }

    @property
    def display(self) -> str:
        """How a sentence names this identity ("secret shop/regcred (user ci-bot)")."""
        user = f" (user {self.username})" if self.username else ""
        group = f" of node group {self.node_group}" if self.node_group else ""
        if self.kind == "pull-secret":
            return f"secret {self.name}{user}"
        if self.kind == "node-docker-config":
            return f"the node's docker config {self.name}{user}"
        if self.kind == "node-role":
            return f"node IAM role {self.name or '(unknown)'}{group}"
        if self.kind == "fargate-role":
            return f"Fargate pod execution role {self.name or '(unknown)'}{group}"
        if self.kind == "node-service-account":
            return f"node service account {self.name or '(unknown)'}{group}"
        if self.kind == "credential-provider":
            return f"credential provider {self.name}{group}"
        return f"anonymous{group}"

    @property
    def display_with_group(self) -> str:
        """``display``, and the node group for the kinds whose sentence leaves it out (a pull
        secret or the node docker config is tried once on each group the pod can land on)."""
        if self.node_group and self.kind in ("pull-secret", "node-docker-config"):
            return f"{self.display} on node group {self.node_group}"
        return self.display


@dataclass(frozen=True, slots=True)
class StaticCredential:
    """A username and password from a secret or docker config (never printed)."""

    username: str
    password: Secret

    def fingerprint(self) -> str:
        return f"{self.username}:{self.password.fingerprint()}"


@dataclass(frozen=True, slots=True)
class PlannedAttempt:
    """One credential kubelet will try: who, and what the engine needs to act as them."""

    identity: Identity
    credential: StaticCredential | None = None  # None: anonymous, or resolved through a provider
    provider: CredentialProvider | None = None
    node_identity: NodeIdentity | None = None

    @property
    def fingerprint(self) -> str:
        """What distinguishes two attempts for caching (never the secret itself)."""
        if self.credential is not None:
            return "static:" + self.credential.fingerprint()
        if self.provider is not None:
            principal = self.node_identity.principal if self.node_identity else ""
            scopes = ",".join(self.node_identity.scopes) if self.node_identity else ""
            # The node group too: a checker's answer names the group it judged ("node role X of
            # node group ng-a"), so groups sharing a role must not share a cached sentence.
            group = self.identity.node_group or ""
            return f"provider:{self.provider.kind}:{principal}:{scopes}:{group}"
        return "anonymous"


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """The attempts for one image on one node group, in kubelet order."""

    group: NodeGroup
    attempts: tuple[PlannedAttempt, ...]


@dataclass(frozen=True, slots=True)
class ImagePlan:
    """Everything decided about one image before any registry is contacted."""

    site: ImageSite
    reference: ImageReference | None
    groups: tuple[GroupPlan, ...]
    certain: str | None = None  # invalid-reference | secret-malformed | skipped: no registry needed
    problem: str | None = None  # the message for a certain outcome
    secret: str | None = None  # secret-malformed: the secret kubelet cannot decode (namespace/name)
    #: Why kubelet's credentials are not all known (a pull secret or the ServiceAccount could not be
    #: read): a refusal of the identities pullguard knows is then not a certain answer.
    credentials_unknown: str | None = None


@dataclass(frozen=True, slots=True)
class PodPlan:
    template: PodTemplate
    images: tuple[ImagePlan, ...]
    findings: tuple[Finding, ...]
    placement: Placement


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the planner knows about the nodes (from configuration or discovery)."""

    groups: tuple[NodeGroup, ...]
    node_docker_config: NodeDockerConfig | None = None
    providers: tuple[CredentialProvider, ...] = DEFAULT_PROVIDERS
    exempt_images: tuple[str, ...] = ()
    #: True when Pods arrive through the API server (SA pull secrets already merged).
    pods_admitted: bool = False
    extra_findings: tuple[Finding, ...] = field(default_factory=tuple)


def image_is_exempt(patterns: Sequence[str], ref: ImageReference) -> str | None:
    """The first ``exemptImages`` pattern that covers ``ref``, or None.

    Patterns are kubelet-style: the host part is matched label by label as ``matchImages`` is
    (``*.example.com``), and a path part, when given, is a glob on the repository path where ``*``
    may cross ``/`` (``registry.k8s.io/*`` covers every repository on that host).
    """
    from fnmatch import fnmatchcase

    for pattern in patterns:
        host, _, path = pattern.partition("/")
        if not urls_match(host, ref.domain):
            continue
        if not path or fnmatchcase(ref.path, path) or fnmatchcase(f"{ref.path}:{ref.tag or ''}", path):
            return pattern
    return None


def needs_service_account(template: PodTemplate, admitted: bool) -> bool:
    """Whether the ServiceAccount's ``imagePullSecrets`` decide the pod's pull secrets.

    The ServiceAccount admission plugin copies them only into a Pod that lists none, and a Pod
    that passed admission already carries them; a template, or a Pod read from a file, has not
    passed it (plugin/pkg/admission/serviceaccount/admission.go).
    """
    return not template.pull_secrets and not (template.is_pod and admitted)


def _pull_secret_names(
    template: PodTemplate, account: AccountResult, admitted: bool
) -> tuple[list[PullSecretRef], list[Finding]]:
    """The pull secrets kubelet will read, applying the ServiceAccount admission rule if needed."""
    refs = list(template.pull_secrets)
    findings: list[Finding] = []
    if not needs_service_account(template, admitted):
        return refs, findings
    sa_where = f"ServiceAccount {template.object.namespace}/{template.service_account}"
    if isinstance(account, ServiceAccountObject):
        refs = [
            PullSecretRef(name, f"{sa_where} imagePullSecrets[{i}]")
            for i, name in enumerate(account.image_pull_secrets)
        ]
    elif isinstance(account, Unavailable):
        findings.append(
            Finding(
                "serviceaccount-unreadable",
                template.service_account_field,
                f"{sa_where} could not be read ({account.reason}); its imagePullSecrets, which the "
                "API server copies into pods that list none, are not known",
            )
        )
    return refs, findings


def _secret_keyring(
    refs: Sequence[PullSecretRef], secrets: Mapping[str, SecretResult], namespace: str
) -> tuple[Keyring[PlannedAttempt], list[Finding], SecretMalformedError | None]:
    keyring: Keyring[PlannedAttempt] = Keyring()
    findings: list[Finding] = []
    for ref in refs:
        if not ref.name:
            findings.append(
                Finding(
                    "secret-missing", ref.field, "an imagePullSecrets entry has no name; kubelet skips it"
                )
            )
            continue
        result = secrets.get(ref.name)
        qualified = f"{namespace}/{ref.name}"
        if result is None:
            findings.append(
                Finding("secret-missing", ref.field, f"secret {qualified} does not exist; kubelet skips it")
            )
            continue
        if isinstance(result, Unavailable):
            findings.append(
                Finding(
                    "secret-unreadable",
                    ref.field,
                    f"secret {qualified} could not be read ({result.reason}); "
                    "planned as if kubelet skipped it",
                )
            )
            continue
        try:
            entries = entries_from_secret(result.namespace, result.name, result.type, result.data)
        except SecretMalformedError as exc:
            # Named where the pod lists it too: every image's verdict names the field inside the Secret.
            findings.append(
                Finding(
                    "secret-malformed",
                    ref.field,
                    f"{exc.message}; kubelet cannot decode it and aborts every image's credential lookup",
                )
            )
            return keyring, findings, exc
        if entries is None:
            findings.append(
                Finding(
                    "secret-ignored",
                    ref.field,
                    f"secret {qualified} has type {result.type or '(none)'} without a matching "
                    ".dockerconfigjson/.dockercfg key; kubelet ignores it",
                )
            )
            continue
        for entry in entries:
            cred = StaticCredential(entry.username, entry.password)
            ident = Identity("pull-secret", qualified, username=entry.username or None)
            keyring.add(entry.key, PlannedAttempt(ident, cred))
    return keyring, findings, None


def _node_keyring(config: NodeDockerConfig | None) -> Keyring[PlannedAttempt]:
    keyring: Keyring[PlannedAttempt] = Keyring()
    if config is not None:
        for entry in config.entries:
            ident = Identity("node-docker-config", config.path, username=entry.username or None)
            keyring.add(entry.key, PlannedAttempt(ident, StaticCredential(entry.username, entry.password)))
    return keyring


def _provider_applies(provider: CredentialProvider, identity: NodeIdentity | None) -> bool:
    """Cloud plugins run only on their cloud: ECR on AWS nodes, GCP on GKE nodes (or unknown nodes)."""
    if identity is None or provider.kind == "generic":
        return True
    if provider.kind == "ecr":
        return identity.kind in ("node-role", "fargate-role")
    if provider.kind == "gcp":
        return identity.kind == "node-service-account"
    return True


def _provider_attempts(
    providers: Sequence[CredentialProvider], group: NodeGroup, repo: str, many_groups: bool
) -> list[PlannedAttempt]:
    out: list[PlannedAttempt] = []
    group_name = group.display if (group.name or many_groups) else None
    for provider in providers:
        if not _provider_applies(provider, group.identity):
            continue
        pattern = next((p for p in provider.match_images if urls_match(p, repo)), None)
        if pattern is None:
            continue
        ident_kind = {"ecr": "node-role", "gcp": "node-service-account"}.get(
            provider.kind, "credential-provider"
        )
        principal: str | None = provider.name if ident_kind == "credential-provider" else None
        if group.identity is not None and ident_kind != "credential-provider":
            ident_kind = group.identity.kind if provider.kind == "ecr" else ident_kind
            principal = group.identity.principal
        ident = Identity(ident_kind, principal, key=pattern, node_group=group_name)
        out.append(PlannedAttempt(ident, provider=provider, node_identity=group.identity))
    return out


def _with_group(attempt: PlannedAttempt, group_name: str | None) -> PlannedAttempt:
    if group_name is None or attempt.identity.node_group == group_name:
        return attempt
    ident = attempt.identity
    return PlannedAttempt(
        Identity(ident.kind, ident.name, ident.key, ident.username, group_name),
        attempt.credential,
        attempt.provider,
        attempt.node_identity,
    )


def plan_pod(
    template: PodTemplate,
    cluster: ClusterView,
    secrets: Mapping[str, SecretResult],
    account: AccountResult = None,
) -> PodPlan:
    """Plan every image of ``template``: the attempts kubelet makes on each candidate node group."""
    namespace = template.object.namespace or "default"
    findings: list[Finding] = list(template.findings) + list(cluster.extra_findings)
    refs, sa_findings = _pull_secret_names(template, account, cluster.pods_admitted)
    findings.extend(sa_findings)
    secret_ring, secret_findings, malformed = _secret_keyring(refs, secrets, namespace)
    findings.extend(secret_findings)
    node_ring = _node_keyring(cluster.node_docker_config)

    placement = candidate_groups(
        cluster.groups,
        template.object.namespace,
        template.node_selector,
        template.affinity,
        template.tolerations,
        template.pod_labels,
    )
    if placement.note:
        findings.append(Finding("no-node-group", f"{template.spec_path}.nodeSelector", placement.note))
    many = len(placement.groups) > 1

    unreadable = "; ".join(
        f.message for f in findings if f.code in ("secret-unreadable", "serviceaccount-unreadable")
    )
    images: list[ImagePlan] = []
    for site in template.images:
        image = _plan_image(site, cluster, placement, secret_ring, node_ring, malformed, many)
        images.append(replace(image, credentials_unknown=unreadable) if unreadable else image)
    return PodPlan(template, tuple(images), tuple(findings), placement)


def _plan_image(
    site: ImageSite,
    cluster: ClusterView,
    placement: Placement,
    secret_ring: Keyring[PlannedAttempt],
    node_ring: Keyring[PlannedAttempt],
    malformed: SecretMalformedError | None,
    many: bool,
) -> ImagePlan:
    # Certain outcomes need no attempts, but still say which platforms the pod needs.
    bare = tuple(GroupPlan(g, ()) for g in placement.groups)
    try:
        ref = parse_normalized_named(site.image)
    except InvalidReferenceError as exc:
        return ImagePlan(site, None, bare, "invalid-reference", exc.reason)
    if not ref.domain:
        # distribution/reference accepts "foo_bar.com/x" with no domain (the host is not a valid
        # DNS name); containerd would still try to reach "foo_bar.com", which cannot resolve.
        host = ref.path.split("/", 1)[0]
        reason = (
            f"the registry host {host!r} is not a valid host name ('_' is not allowed); no node can reach it"
        )
        return ImagePlan(site, ref, bare, "invalid-reference", reason)
    exempt = image_is_exempt(cluster.exempt_images, ref)
    if exempt is not None:
        return ImagePlan(site, ref, bare, "skipped", f"exempted by exemptImages pattern {exempt!r}")
    if malformed is not None:
        return ImagePlan(site, ref, bare, "secret-malformed", malformed.message, secret=malformed.secret)

    repo = ref.name
    from_secrets = [_key_from(m.value, m.key) for m in secret_ring.lookup(repo)]
    from_node = [_key_from(m.value, m.key) for m in node_ring.lookup(repo)]
    groups: list[GroupPlan] = []
    for group in placement.groups:
        name = group.display if (group.name or many) else None
        attempts = [_with_group(a, name if many else None) for a in (*from_secrets, *from_node)]
        attempts.extend(_provider_attempts(cluster.providers, group, repo, many))
        if not attempts:
            attempts = [PlannedAttempt(Identity("anonymous", node_group=name))]
        groups.append(GroupPlan(group, tuple(attempts)))
    return ImagePlan(site, ref, tuple(groups))


def _key_from(attempt: PlannedAttempt, key: str) -> PlannedAttempt:
    ident = attempt.identity
    return PlannedAttempt(
        Identity(ident.kind, ident.name, key, ident.username, ident.node_group),
        attempt.credential,
        attempt.provider,
        attempt.node_identity,
    )
