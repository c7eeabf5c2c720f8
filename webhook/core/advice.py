"""The words: one message and one fix for each verdict.

After a failed pull an engineer asks four questions — does the image exist, is it public or
private, which identity pulls it, may that identity pull it — and then "what do I change?". The
message answers the question that explains the failure; the fix names the object to change and
how. Wording follows what kubelet/containerd would eventually say (research/domain-facts.md §4.7)
but earlier and with the identity named, which neither of them does.

Pure text: no I/O, no credential values (identities are described by name and username only).
"""

from __future__ import annotations

from dataclasses import dataclass

from webhook.core.identity import Identity
from webhook.core.outcomes import describe_status
from webhook.core.reference import ImageReference


@dataclass(frozen=True, slots=True)
class Facts:
    outcome: str
    reference: ImageReference | None
    identity: Identity | None
    observation_status: int | None = None
    observation_code: str | None = None
    observation_detail: str | None = None
    observation_fix: str | None = None  # a checker's precise fix (IAM role, access scope): it wins
    exists: bool | None = None
    visibility: str = "unknown"
    required: tuple[str, ...] = ()
    available: tuple[str, ...] | None = None
    failing_groups: tuple[str, ...] = ()
    single_manifest: bool = False
    suggestions: tuple[str, ...] = ()
    repository_missing: bool = False
    matched_credentials: int = 0
    problem: str = ""
    secret: str | None = None  # secret-malformed: namespace/name of the secret kubelet cannot decode
    offline: bool = False


def _status(f: Facts) -> str:
    return describe_status(f.observation_status, f.observation_code)


def _repo(f: Facts) -> str:
    return f.reference.name if f.reference else "?"


def _what(f: Facts) -> str:
    ref = f.reference
    if ref is None:
        return "?"
    if ref.digest:
        return f"digest {ref.digest[:19]}… of {ref.name}"
    return f"tag {ref.tag or 'latest'} of {ref.name}"


def _secret_fix(identity: Identity, host: str) -> str:
    name = (identity.name or "").split("/")[-1] or "regcred"
    ns = (identity.name or "").split("/")[0] if identity.name and "/" in identity.name else "<namespace>"
    return (
        f"renew the credentials in secret {identity.name}: kubectl -n {ns} create secret docker-registry "
        f"{name} --docker-server={host} --docker-username=… --docker-password=… --dry-run=client -o yaml "
        "| kubectl apply -f -"
    )


def _groups(f: Facts) -> str:
    return f" on node group {', '.join(f.failing_groups)}" if f.failing_groups else ""


def advise(f: Facts) -> tuple[str, str | None]:
    """``(message, fix)`` for ``f``; the fix is None when there is nothing to change."""
    handler = _HANDLERS.get(f.outcome, _undetermined)
    message, fix = handler(f)
    if f.observation_fix and f.outcome != "pullable":
        fix = f.observation_fix
    return message, fix


def _pullable(f: Facts) -> tuple[str, str | None]:
    who = f.identity.display if f.identity else "anonymous"
    plat = f" for {', '.join(f.required)}" if f.required else ""
    return f"{_repo(f)} pulls as {who}{plat}", None


def _not_found(f: Facts) -> tuple[str, str | None]:
    ref = f.reference
    host = ref.domain if ref else "?"
    status = f" ({_status(f)})" if _status(f) else ""
    if f.repository_missing:
        msg = (
            f"repository {_repo(f)} does not exist{status}; the registry {host} let {_who(f)} look "
            "and has no repository of that name"
        )
        return msg, f"correct the repository name, or push {ref.pull_reference if ref else 'the image'}"
    msg = f"{_what(f)} does not exist{status}; the registry {host} let {_who(f)} look and found nothing"
    if f.observation_detail and f.identity is not None and f.identity.kind in _NODE_IDENTITY_KINDS:
        msg = f"{_what(f)} does not exist{status}: {f.observation_detail}"  # the checker says who looked
    if f.suggestions:
        msg += f" — did you mean {', '.join(f.suggestions)}?"
        fix = f"use an existing tag, e.g. {ref.name if ref else ''}:{f.suggestions[0]}"
    elif ref is not None and ref.digest:
        fix = "push the image with this digest, or reference a digest the repository holds"
    else:
        fix = f"push {ref.pull_reference if ref else 'the image'} or correct the tag"
    return msg, fix


#: Identities a credential-provider checker answers for: its detail explains the refusal.
_NODE_IDENTITY_KINDS = frozenset({"node-role", "fargate-role", "node-service-account"})


def _who(f: Facts) -> str:
    return f.identity.display if f.identity else "anonymous"


def _unauthorized(f: Facts) -> tuple[str, str | None]:
    ref = f.reference
    host = ref.domain if ref else "?"
    ident = f.identity
    status = _status(f) or "401"
    if ident is None or ident.kind == "anonymous":
        ambiguous = " does not exist or is private" if f.exists is None else " is private"
        msg = (
            f"{_repo(f)}{ambiguous}: the registry refused an anonymous pull ({status}), and no pull secret, "
            f"node docker config or credential provider of the node matches {_repo(f)}{_groups(f)}"
        )
        fix = (
            f"create a pull secret for {host} (kubectl create secret docker-registry regcred "
            f"--docker-server={host} …) and list it in spec.imagePullSecrets or in the ServiceAccount's "
            "imagePullSecrets — or make the repository public"
        )
        return msg, fix
    public = ""
    if f.visibility == "public":
        failed = (
            f" (all {f.matched_credentials} matching credentials failed)" if f.matched_credentials > 1 else ""
        )
        public = (
            f"; the image is public, but kubelet never retries anonymously once a credential matched{failed}"
        )
    if f.observation_detail and ident.kind in _NODE_IDENTITY_KINDS:
        # A cloud checker explains the refusal in a sentence of its own (the missing IAM action).
        msg = f"the registry rejected {ident.display}: {status}{public} — {f.observation_detail}"
    else:
        detail = f" ({f.observation_detail})" if f.observation_detail else ""
        msg = f"the registry rejected {ident.display}: {status}{detail}{public}"
    if ident.kind == "pull-secret":
        fix = _secret_fix(ident, host)
        if f.visibility == "public":
            fix += f" — or remove secret {ident.name} from the pod, since {_repo(f)} is public"
    elif ident.kind == "node-docker-config":
        fix = f"update the credentials for {host} in the node's docker config {ident.name} on every node"
    else:
        fix = f"check the credentials {ident.display} presents to {host}"
    return msg, fix


def _forbidden(f: Facts) -> tuple[str, str | None]:
    ident = f.identity
    who = ident.display if ident else "anonymous"
    status = _status(f) or "403"
    ambiguous = (
        "" if f.exists is not None else " (or the repository does not exist: the registry does not say which)"
    )
    msg = f"{who} authenticated but may not pull {_repo(f)}{_groups(f)}: {status}{ambiguous}"
    if f.observation_detail:
        msg += f" — {f.observation_detail}"
    if ident is not None and ident.kind == "pull-secret":
        user = f"user {ident.username}" if ident.username else f"the account in secret {ident.name}"
        fix = (
            f"grant {user} pull (read) access to {_repo(f)} in the registry, "
            "or use a secret whose account has it"
        )
    else:
        fix = f"grant {who} pull access to {_repo(f)}"
    return msg, fix


def _platform(f: Facts) -> tuple[str, str | None]:
    need = ", ".join(f.required) or "?"
    have = ", ".join(f.available) if f.available else "unknown"
    where = _groups(f) or " on the nodes it can land on"
    if f.single_manifest:
        msg = (
            f"{_repo(f)} is a single-platform image for {have}; containerd pulls it{where} ({need}) "
            "but the container will not start (exec format error)"
        )
    else:
        msg = f"the image index of {_repo(f)} has no image for {need}{where} (available: {have})"
    fix = (
        f"publish {_repo(f)} for {need} (a multi-platform index), or keep the pod off those nodes "
        "(nodeSelector kubernetes.io/arch / node affinity)"
    )
    return msg, fix


def _secret_malformed(f: Facts) -> tuple[str, str | None]:
    msg = f"{f.problem}; kubelet aborts the credential lookup for every image of this pod, even public ones"
    secret = f.secret or ""
    name = secret.split("/")[-1] if secret else "<secret>"
    fix = (
        f"recreate secret {secret or name}: kubectl create secret docker-registry {name} --docker-server=… "
        "--docker-username=… --docker-password=… (it writes a valid .dockerconfigjson)"
    )
    return msg, fix


def _invalid_reference(f: Facts) -> tuple[str, str | None]:
    return (
        f"invalid image reference: {f.problem}",
        "correct the image reference (kubelet reports InvalidImageName)",
    )


def _skipped(f: Facts) -> tuple[str, str | None]:
    return f.problem or "exempted by configuration", None


def _unknown(f: Facts) -> tuple[str, str | None]:
    ref = f.reference
    host = ref.domain if ref else "?"
    detail = f": {f.observation_detail}" if f.observation_detail else ""
    texts = {
        "rate-limited": (
            f"{host} rate-limited the check ({_status(f) or '429'}){detail}; pullability is unknown",
            "retry later; nodes pulling anonymously share the same limit — a pull secret raises it",
        ),
        "unreachable": (
            f"could not reach {host}{detail}; pullability is unknown",
            f"check that {host} resolves and accepts connections from the cluster",
        ),
        "timeout": (
            f"{host} did not answer in time{detail}; pullability is unknown",
            "retry; if the registry is slow, raise timeouts.requestSeconds",
        ),
    }
    return texts[f.outcome]


def _refused(f: Facts) -> tuple[str, str | None]:
    detail = f.observation_detail or "the address is not allowed"
    return (
        f"pullguard refused to contact the registry of {_repo(f)}: {detail}",
        "if this registry is intended, allow its address class in network (allowLoopback, allowLinkLocal, "
        "allowPrivate)",
    )


def _digest_mismatch(f: Facts) -> tuple[str, str | None]:
    detail = f" ({f.observation_detail})" if f.observation_detail else ""
    return (
        f"the registry served content for {_repo(f)} whose digest is not the one asked for{detail}; "
        "containerd refuses it",
        "investigate the registry or proxy in front of it; "
        "pin the image by a digest the registry serves intact",
    )


def _undetermined(f: Facts) -> tuple[str, str | None]:
    if f.offline:
        who = f" — last identity kubelet would try: {f.identity.display}" if f.identity else ""
        return f"not checked (--offline): no registry was contacted{who}", None
    detail = f.observation_detail or "pullguard could not decide"
    return f"{detail}", None


_HANDLERS = {
    "pullable": _pullable,
    "not-found": _not_found,
    "unauthorized": _unauthorized,
    "forbidden": _forbidden,
    "platform-mismatch": _platform,
    "secret-malformed": _secret_malformed,
    "invalid-reference": _invalid_reference,
    "skipped": _skipped,
    "rate-limited": _unknown,
    "unreachable": _unknown,
    "timeout": _unknown,
    "refused-destination": _refused,
    "digest-mismatch": _digest_mismatch,
    "undetermined": _undetermined,
}
