"""From the plan and what the registry said to the four answers (pure).

The engine asks the registry as each planned identity (I/O); this module decides what those
answers mean, the way kubelet and containerd would act on them:

* kubelet stops at the first credential that pulls; later ones are ``not-tried``
  (kuberuntime_image.go ``PullImage``);
* a success is then checked against each node group's platform with containerd's selection rule
  (an index must have a child for the platform; a single manifest "pulls" anywhere but its config
  must match to run — DESIGN 3.8);
* without a success, a 404 seen by an identity the registry let in means the reference does not
  exist (definite), whereas an unknown answer (timeout, 429, unreachable) means the failing
  credential might have worked (unknown); otherwise the most telling refusal decides;
* several node groups: the image pulls only if it pulls on every one (DESIGN 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from webhook.core.advice import Facts, advise
from webhook.core.identity import GroupPlan, Identity, ImagePlan
from webhook.core.platforms import Platform, matches, select_child
from webhook.core.verdict import UNKNOWN, AttemptResult, ImageVerdict, PlatformCheck, worst


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """What the platform check needs from a manifest."""

    media_type: str
    is_index: bool
    children: tuple[Platform | None, ...] = ()  # index children, in manifest order
    config_platform: Platform | None = None  # single manifest: from its config blob


@dataclass(frozen=True, slots=True)
class Observation:
    """What the registry answered when asked as one identity."""

    result: str  # pullable or a failure outcome
    status: int | None = None
    code: str | None = None
    detail: str | None = None
    digest: str | None = None
    manifest: ManifestInfo | None = None
    #: Set by checkers that know more than a status code (cloud IAM): the exact fix to apply, whether
    #: the image exists (seen with pullguard's own access), and the tags of a repository whose
    #: requested tag is missing (for "did you mean"). Registry probes leave them unset.
    fix: str | None = None
    exists: bool | None = None
    tags: tuple[str, ...] | None = None


NOT_TRIED = Observation("not-tried")


@dataclass(frozen=True, slots=True)
class _GroupOutcome:
    outcome: str
    deciding: int | None  # index of the deciding attempt
    platform_ok: bool | None
    single_manifest: bool


def _platform_ok(info: ManifestInfo | None, platform: Platform, exact: bool) -> bool | None:
    if info is None:
        return None
    if info.is_index:
        return select_child(platform, info.children, exact=exact) is not None
    if info.config_platform is None:
        return None
    return matches(platform, info.config_platform, exact=exact)


def _group_outcome(group: GroupPlan, obs: Sequence[Observation], exact: bool) -> _GroupOutcome:
    for i, o in enumerate(obs):
        if o.result == "pullable":
            ok = _platform_ok(o.manifest, group.group.platform, exact)
            single = o.manifest is not None and not o.manifest.is_index
            return _GroupOutcome("platform-mismatch" if ok is False else "pullable", i, ok, single)
    tried = [(i, o) for i, o in enumerate(obs) if o.result != "not-tried"]
    if not tried:
        return _GroupOutcome("undetermined", None, None, False)
    for i, o in tried:
        if o.result == "not-found":
            return _GroupOutcome("not-found", i, None, False)
    unknown = [(i, o) for i, o in tried if o.result in UNKNOWN]
    if unknown:
        i, o = unknown[-1]
        return _GroupOutcome(o.result, i, None, False)
    decided = worst(o.result for _, o in tried)
    last = max(i for i, o in tried if o.result == decided)
    return _GroupOutcome(decided, last, None, False)


def _available(
    observations: Sequence[Sequence[Observation]], anonymous: Observation | None = None
) -> tuple[str, ...] | None:
    """The platforms the image offers, from any answer that carried its manifest.

    The anonymous probe counts too: a public image refused to a stale secret still has platforms.
    """
    for obs in [*observations, [anonymous] if anonymous is not None else []]:
        for o in obs:
            if o.result == "pullable" and o.manifest is not None:
                if o.manifest.is_index:
                    return tuple(str(p) if p else "(no platform)" for p in o.manifest.children)
                if o.manifest.config_platform is not None:
                    return (str(o.manifest.config_platform),)
    return None


def _exists(observations: Sequence[Sequence[Observation]], anonymous: Observation | None) -> bool | None:
    every = [o for obs in observations for o in obs] + ([anonymous] if anonymous else [])
    if any(o.result == "pullable" or o.exists is True for o in every):
        return True
    if any(o.result == "not-found" or o.exists is False for o in every):
        return False
    return None


def _visibility(
    plan: ImagePlan, observations: Sequence[Sequence[Observation]], anonymous: Observation | None
) -> str:
    probes = [anonymous] if anonymous else []
    for group, obs in zip(plan.groups, observations, strict=True):
        probes += [o for a, o in zip(group.attempts, obs, strict=True) if a.identity.kind == "anonymous"]
    for o in probes:
        if o.result == "pullable":
            return "public"
    for o in probes:
        if o.result in ("unauthorized", "forbidden"):
            return "private"
    return "unknown"


def outcome(
    plan: ImagePlan, observations: Sequence[Sequence[Observation]], *, exact_platforms: bool = False
) -> str:
    """The outcome ``assess`` gives these observations, without building the verdict.

    The engine decides from it whether to probe anonymously and list tags, then assesses once
    (assessing twice per image was a tenth of a cached admission's CPU, ``bench/README.md``).
    The anonymous probe, suggestions and a missing repository never change the outcome.
    """
    if plan.certain is not None or plan.reference is None:
        return _certain(plan).outcome
    groups = zip(plan.groups, observations, strict=True)
    return _credentials_unknown(plan, worst(_group_outcome(g, o, exact_platforms).outcome for g, o in groups))


def _credentials_unknown(plan: ImagePlan, final: str) -> str:
    """A refusal is not certain while kubelet would also try credentials pullguard could not read."""
    return "undetermined" if final in ("unauthorized", "forbidden") and plan.credentials_unknown else final


def assess(
    plan: ImagePlan,
    observations: Sequence[Sequence[Observation]],
    anonymous: Observation | None = None,
    *,
    exact_platforms: bool = False,
    suggestions: Sequence[str] = (),
    repository_missing: bool = False,
) -> ImageVerdict:
    """The verdict for one planned image; ``observations[g][a]`` answers attempt a of group g.

    ``repository_missing``: a tag listing answered NAME_UNKNOWN, so the repository itself, not
    only the reference, does not exist.
    """
    site = plan.site
    if plan.certain is not None or plan.reference is None:
        return _certain(plan)
    outcomes = [_group_outcome(g, o, exact_platforms) for g, o in zip(plan.groups, observations, strict=True)]
    attempts: list[AttemptResult] = []
    for group, obs in zip(plan.groups, observations, strict=True):
        for planned, o in zip(group.attempts, obs, strict=True):
            attempts.append(AttemptResult(planned.identity, o.result, o.status, o.code, o.detail))
    final = worst(g.outcome for g in outcomes)
    pick = next(i for i, g in enumerate(outcomes) if g.outcome == final)
    deciding = outcomes[pick]
    identity: Identity | None = None
    deciding_obs: Observation | None = None
    if deciding.deciding is not None:
        identity = plan.groups[pick].attempts[deciding.deciding].identity
        deciding_obs = observations[pick][deciding.deciding]
    elif plan.groups[pick].attempts:
        identity = plan.groups[pick].attempts[-1].identity
    digest = next(
        (o.digest for obs in observations for o in obs if o.result == "pullable" and o.digest), None
    )
    required = tuple(dict.fromkeys(str(g.group.platform) for g in plan.groups))
    available = _available(observations, anonymous)
    platform_known = [g.platform_ok for g in outcomes if g.platform_ok is not None]
    platform_ok = (
        all(platform_known)
        if platform_known and len(platform_known) == len(outcomes)
        else (False if any(ok is False for ok in platform_known) else None)
    )
    # Node groups are named only when configuration names them or the pod can land on several:
    # the default group of ``cluster.platforms`` is not a group a user would recognise.
    named = len(plan.groups) > 1 or any(g.group.name for g in plan.groups)
    failing = tuple(
        g.group.display for g, o in zip(plan.groups, outcomes, strict=True) if o.outcome != "pullable"
    )
    failing = failing if named else ()
    exists = _exists(observations, anonymous)
    visibility = _visibility(plan, observations, anonymous)
    facts = Facts(
        outcome=final,
        reference=plan.reference,
        identity=identity,
        observation_status=deciding_obs.status if deciding_obs else None,
        observation_code=deciding_obs.code if deciding_obs else None,
        observation_detail=deciding_obs.detail if deciding_obs else None,
        observation_fix=deciding_obs.fix if deciding_obs else None,
        exists=exists,
        visibility=visibility,
        required=required,
        available=available,
        failing_groups=failing,
        single_manifest=deciding.single_manifest,
        suggestions=tuple(suggestions),
        repository_missing=repository_missing and final == "not-found",
        matched_credentials=sum(1 for a in plan.groups[pick].attempts if a.identity.kind != "anonymous"),
    )
    message, fix = advise(facts)
    if _credentials_unknown(plan, final) != final:
        # kubelet would also try credentials pullguard could not read; one of them might pull.
        final = "undetermined"
        message = (
            f"{message} — but not certain: {plan.credentials_unknown}, and kubelet would try "
            "those credentials too"
        )
        fix = (
            "let pullguard read the pod's Secrets and ServiceAccount (RBAC get on secrets and "
            f"serviceaccounts; pullguard check --kubeconfig) to decide; meanwhile: {fix}"
        )
    return ImageVerdict(
        field=site.field,
        container=site.container,
        image=site.image,
        reference=plan.reference.pull_reference,
        outcome=final,
        exists=exists,
        visibility=visibility,
        identity=identity,
        attempts=tuple(attempts),
        platforms=PlatformCheck(required, available, platform_ok),
        digest=digest,
        message=message,
        fix=fix,
        suggestions=tuple(suggestions) if final == "not-found" else (),
        failing_groups=failing if final != "pullable" else (),
    )


def _certain(plan: ImagePlan) -> ImageVerdict:
    """Verdicts known without a registry: invalid reference, malformed secret, exemption."""
    site = plan.site
    outcome = plan.certain or "invalid-reference"
    ref = plan.reference
    facts = Facts(
        outcome=outcome, reference=ref, identity=None, problem=plan.problem or "", secret=plan.secret
    )
    message, fix = advise(facts)
    return ImageVerdict(
        field=site.field,
        container=site.container,
        image=site.image,
        reference=ref.pull_reference if ref else None,
        outcome=outcome,
        exists=None,
        visibility="unknown",
        identity=None,
        attempts=(),
        platforms=PlatformCheck(tuple(dict.fromkeys(str(g.group.platform) for g in plan.groups))),
        digest=None,
        message=message,
        fix=fix,
    )


def planned_only(plan: ImagePlan) -> ImageVerdict:
    """The verdict of ``--offline``: the plan, every attempt ``not-tried``, nothing decided."""
    if plan.certain is not None or plan.reference is None:
        return _certain(plan)
    attempts = tuple(AttemptResult(a.identity, "not-tried") for g in plan.groups for a in g.attempts)
    required = tuple(dict.fromkeys(str(g.group.platform) for g in plan.groups))
    last = plan.groups[-1].attempts[-1].identity if plan.groups and plan.groups[-1].attempts else None
    facts = Facts(outcome="undetermined", reference=plan.reference, identity=last, offline=True)
    message, fix = advise(facts)
    return ImageVerdict(
        field=plan.site.field,
        container=plan.site.container,
        image=plan.site.image,
        reference=plan.reference.pull_reference,
        outcome="undetermined",
        exists=None,
        visibility="unknown",
        identity=last,
        attempts=attempts,
        platforms=PlatformCheck(required),
        digest=None,
        message=message,
        fix=fix,
        checked=False,
    )
