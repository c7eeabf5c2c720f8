"""The check engine: plan each workload, ask the registry as each identity, assess.

For every image it runs the pure planner's attempts in kubelet order — stopping at the first that
pulls, never retrying anonymously after a matched credential failed — then, only when the image
fails, an anonymous probe (is it public?) and a tag listing (did you mean…?). Answers are cached
per (registry, repository, reference, credential fingerprint) with the configured TTLs and
single-flighted, so 200 concurrent admissions of one new image cost one registry round trip.
Images are checked in parallel; the whole check is bounded by a deadline and whatever has not
answered by then is a ``timeout`` verdict, never a hang. The engine only talks to ports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from webhook.core.assess import NOT_TRIED, Observation, assess, outcome, planned_only
from webhook.core.errors import InputError
from webhook.core.findings import Finding
from webhook.core.identity import (
    AccountResult,
    ClusterView,
    Identity,
    ImagePlan,
    PlannedAttempt,
    PodPlan,
    SecretResult,
    needs_service_account,
    plan_pod,
)
from webhook.core.objects import ObjectRef, ServiceAccountObject
from webhook.core.reference import ImageReference
from webhook.core.suggest import nearest_tags
from webhook.core.verdict import DEFINITE_FAILURES, UNKNOWN, ImageVerdict, ObjectVerdict, is_allowed
from webhook.core.workloads import PodTemplate, extract, object_ref
from webhook.memo import Memo
from webhook.ports import NodeIdentityChecker, RegistryProbe, SecretSource

logger = logging.getLogger(__name__)
ANONYMOUS = PlannedAttempt(Identity("anonymous"))
#: Results that say nothing lasting about the registry: never cached.
_UNCACHED = UNKNOWN | {"refused-destination"}


@dataclass(frozen=True, slots=True)
class EngineOptions:
    on_unknown: str = "warn"
    exempt_namespaces: tuple[str, ...] = ("kube-system",)
    deadline_seconds: float = 8.0
    request_seconds: float = 2.0
    exact_platforms: bool = False
    tag_ttl: float = 300.0
    digest_ttl: float = 3600.0
    negative_ttl: float = 30.0
    cache_entries: int = 20000


class Engine:
    """Checks objects; one instance serves many checks (it owns the caches)."""

    def __init__(
        self,
        options: EngineOptions,
        registry: RegistryProbe | None = None,
        checkers: Mapping[str, NodeIdentityChecker] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.registry = registry
        self.checkers = dict(checkers or {})
        self._clock = clock
        self.stats: Counter[str] = Counter()
        size = options.cache_entries
        #: (registry, repository, reference, credential fingerprint) -> what the registry said
        self._observations: Memo[Observation] = Memo(0, clock=clock, max_entries=size, stats=self.stats)
        #: (registry, repository) -> an anonymous refusal (one per repository, see _probe)
        self._private: Memo[Observation] = Memo(options.negative_ttl, clock=clock, max_entries=size)
        #: (registry, repository) -> the anonymous probe in flight for it (one per repository at once)
        self._probing: dict[tuple[str, str], asyncio.Future[Observation]] = {}
        #: (registry, repository, fingerprint) -> the tags that identity may list
        self._listings: Memo[tuple[list[str], bool] | None] = Memo(
            options.negative_ttl, clock=clock, max_entries=size
        )

    # -- objects ---------------------------------------------------------------------------------

    async def gather(
        self, template: PodTemplate, secrets: SecretSource, admitted: bool
    ) -> tuple[dict[str, SecretResult], AccountResult]:
        """Read the pull secrets and (when its rule applies) the ServiceAccount the plan needs."""
        namespace = template.object.namespace or "default"
        account: AccountResult = None
        names = [r.name for r in template.pull_secrets if r.name]
        if needs_service_account(template, admitted):
            account = await secrets.get_service_account(namespace, template.service_account)
            if isinstance(account, ServiceAccountObject):
                names = [n for n in account.image_pull_secrets if n]
        unique = list(dict.fromkeys(names))
        results = await asyncio.gather(*(secrets.get_secret(namespace, n) for n in unique))
        return dict(zip(unique, results, strict=True)), account

    async def plan(self, template: PodTemplate, cluster: ClusterView, secrets: SecretSource) -> PodPlan:
        found, account = await self.gather(template, secrets, cluster.pods_admitted)
        return plan_pod(template, cluster, found, account)

    async def check_template(
        self,
        template: PodTemplate,
        cluster: ClusterView,
        secrets: SecretSource,
        *,
        deadline: float | None = None,
    ) -> ObjectVerdict:
        """The verdict of one pod template; without a registry (``--offline``), the plan only."""
        namespace = template.object.namespace
        if namespace in self.options.exempt_namespaces:
            return ObjectVerdict(template.object, True, (), (), exempt=f"namespace {namespace} is exempt")
        plan = await self.plan(template, cluster, secrets)
        if self.registry is None:
            images = [planned_only(p) for p in plan.images]
        else:
            images = await self.check_images(plan.images, deadline)
        allowed = is_allowed(images, plan.findings, self.options.on_unknown)
        return ObjectVerdict(template.object, allowed, plan.findings, tuple(images))

    async def check_object(
        self,
        obj: Mapping[str, Any],
        cluster: ClusterView,
        secrets: SecretSource,
        *,
        default_namespace: str,
        source: str = "",
        deadline: float | None = None,
    ) -> ObjectVerdict | None:
        """Check one manifest; None when it is not a workload. A malformed object is a verdict."""
        try:
            template = extract(obj, default_namespace, source)
        except InputError as exc:
            ref: ObjectRef = object_ref(obj, default_namespace, source)
            return ObjectVerdict(
                ref, False, (Finding("invalid-object", exc.field, exc.message, "error"),), ()
            )
        if template is None:
            return None
        return await self.check_template(template, cluster, secrets, deadline=deadline)

    async def check_many(
        self,
        objects: Sequence[tuple[Mapping[str, Any], str]],
        cluster: ClusterView,
        secrets: SecretSource,
        *,
        default_namespace: str,
    ) -> list[ObjectVerdict]:
        """Check every object concurrently (the caches make repeated images nearly free)."""
        # One deadline for the whole check, as for one admission request: every object starts
        # now and shares the caches, so repeated images cost nothing and the budget is not per object.
        deadline = self._clock() + self.options.deadline_seconds
        results = await asyncio.gather(
            *(
                self.check_object(
                    obj,
                    cluster,
                    secrets,
                    default_namespace=default_namespace,
                    source=src,
                    deadline=deadline,
                )
                for obj, src in objects
            )
        )
        return [r for r in results if r is not None]

    # -- images ----------------------------------------------------------------------------------

    async def check_images(
        self, plans: Sequence[ImagePlan], deadline: float | None = None
    ) -> list[ImageVerdict]:
        """Verdicts for ``plans`` in parallel, bounded by ``deadline`` (monotonic seconds)."""
        if deadline is None:
            deadline = self._clock() + self.options.deadline_seconds
        tasks = [asyncio.ensure_future(self._check_image(p)) for p in plans]
        if not tasks:
            return []
        remaining = max(0.0, deadline - self._clock())
        done, pending = await asyncio.wait(tasks, timeout=remaining)
        for task in pending:
            task.cancel()
        out: list[ImageVerdict] = []
        for plan, task in zip(plans, tasks, strict=True):
            if task not in done or task.cancelled():
                self.stats["deadline_exceeded"] += 1
                # The budget actually left: the API server's ?timeout= may cut it below deadlineSeconds.
                detail = f"no answer within the {remaining:.1f}s left of the check's deadline"
                out.append(self._unanswered(plan, "timeout", detail))
            elif (error := task.exception()) is not None:
                # A bug must not pass for a slow registry: say what broke (never a credential: the
                # adapters' errors carry none) and leave the decision to onUnknown.
                self.stats["internal_error"] += 1
                logger.error("checking %s failed", plan.site.image, exc_info=error)
                detail = f"pullguard failed while checking this image ({type(error).__name__}: {error})"
                out.append(self._unanswered(plan, "undetermined", detail[:300]))
            else:
                out.append(task.result())
        return out

    def _unanswered(self, plan: ImagePlan, outcome: str, detail: str) -> ImageVerdict:
        if plan.certain is not None or plan.reference is None:
            return assess(plan, [])
        obs = [
            [Observation(outcome, detail=detail)] + [NOT_TRIED] * (len(g.attempts) - 1) for g in plan.groups
        ]
        return assess(plan, obs, exact_platforms=self.options.exact_platforms)

    async def _check_image(self, plan: ImagePlan) -> ImageVerdict:
        ref = plan.reference
        if plan.certain is not None or ref is None:
            return assess(plan, [])
        observations: list[list[Observation]] = []
        # A pull secret is the same question on every node group: ask it once per check, even
        # when its answer (a timeout, a 429) is one the cache may not keep.
        asked: dict[str, Observation] = {}
        for group in plan.groups:
            obs: list[Observation] = []
            succeeded = False
            for attempt in group.attempts:
                if succeeded:
                    obs.append(NOT_TRIED)
                    continue
                o = asked.get(attempt.fingerprint)
                if o is None:
                    o = asked[attempt.fingerprint] = await self.observe(ref, attempt)
                obs.append(o)
                succeeded = o.result == "pullable"
            observations.append(obs)
        final = outcome(plan, observations, exact_platforms=self.options.exact_platforms)
        if final not in DEFINITE_FAILURES | {"pullable"}:
            return assess(plan, observations, exact_platforms=self.options.exact_platforms)
        # "Is it public?" is one of the four answers: ask anonymously unless the plan already did.
        anonymous = None
        if not any(a.identity.kind == "anonymous" for g in plan.groups for a in g.attempts):
            anonymous = await self._probe(ref)
        suggestions: list[str] = []
        repository_missing = False
        listed_by_checker = next((o.tags for obs in observations for o in obs if o.tags is not None), None)
        if final == "not-found" and listed_by_checker is not None:
            # A cloud checker (Artifact Registry) already listed the tags as the node identity.
            if ref.tag and not ref.digest:
                suggestions = nearest_tags(ref.tag, listed_by_checker)
        elif final == "not-found":
            seer = self._seer(plan, observations, anonymous)
            if seer is not None and self.registry is not None:
                listed = await self._list_tags(ref, seer)
                if listed is not None:
                    tags, repository_missing = listed
                    if ref.tag and not ref.digest:
                        suggestions = nearest_tags(ref.tag, tags)
        return assess(
            plan,
            observations,
            anonymous,
            exact_platforms=self.options.exact_platforms,
            suggestions=suggestions,
            repository_missing=repository_missing,
        )

    async def _list_tags(self, ref: ImageReference, seer: PlannedAttempt) -> tuple[list[str], bool] | None:
        """The repository's tags as ``seer`` sees them, cached like a negative answer.

        Single-flighted per (registry, repository, identity): a listing of a large repository takes
        several pages and holds a registry slot, so concurrent missing tags of one repository must
        share one (``bench/soak.py`` found one listing per missing tag piling up until they held
        every slot of the registry and every other check timed out).
        """
        registry = self.registry
        assert registry is not None
        key = (ref.domain, ref.path, seer.fingerprint)
        if self._listings.peek(key) is not None:
            self.stats["tags_cached"] += 1
        return await self._listings.get(
            key,
            lambda: registry.list_tags(ref, seer.credential),
            lambda listed: self.options.negative_ttl if listed is not None else 0.0,
        )

    async def _probe(self, ref: ImageReference) -> Observation:
        """The anonymous visibility probe; a refusal is remembered for the whole repository.

        A registry that refuses anonymous access to one reference refuses it to every reference
        of the repository (401 before it looks), so one probe per repository is enough; an
        anonymous success or 404 depends on the reference and is cached per reference.
        """
        key = (ref.domain, ref.path)
        hit = self._private.peek(key)
        if hit is not None:
            self.stats["probe_cached"] += 1
            return hit
        running = self._probing.get(key)
        if running is not None:
            # Another tag of this repository is being probed right now: a refusal answers for both.
            first = await asyncio.shield(running)
            if first.result in ("unauthorized", "forbidden"):
                self.stats["probe_cached"] += 1
                return first
        task = asyncio.ensure_future(self.observe(ref, ANONYMOUS))
        if running is None:
            self._probing[key] = task
            task.add_done_callback(lambda _: self._probing.pop(key, None))
        observation = await asyncio.shield(task)
        if observation.result in ("unauthorized", "forbidden"):
            self._private.put(key, observation, self.options.negative_ttl)
        return observation

    @staticmethod
    def _seer(
        plan: ImagePlan, observations: Sequence[Sequence[Observation]], anonymous: Observation | None
    ) -> PlannedAttempt | None:
        """An identity the registry let look (it answered 404): it may list the tags."""
        for group, obs in zip(plan.groups, observations, strict=True):
            for attempt, o in zip(group.attempts, obs, strict=True):
                if o.result == "not-found" and attempt.provider is None:
                    return attempt
        if anonymous is not None and anonymous.result == "not-found":
            return ANONYMOUS
        return None

    # -- one question to the registry, cached and single-flighted ---------------------------------

    async def observe(self, ref: ImageReference, attempt: PlannedAttempt) -> Observation:
        if attempt.provider is not None:
            checker = self.checkers.get(attempt.provider.kind)
            if checker is None:
                return Observation(
                    "undetermined",
                    detail=f"pullguard cannot act as {attempt.identity.display} (the {attempt.provider.name} "
                    "credential provider); configure its integration or check this image by hand",
                )
        key = (ref.domain, ref.path, ref.manifest_reference, attempt.fingerprint)
        return await self._observations.get(key, lambda: self._ask(ref, attempt), lambda o: self._ttl(ref, o))

    async def _ask(self, ref: ImageReference, attempt: PlannedAttempt) -> Observation:
        if attempt.provider is not None:
            return await self.checkers[attempt.provider.kind].check(ref, attempt)
        assert self.registry is not None
        return await self.registry.check(ref, attempt.credential, want_manifest=True)

    def _ttl(self, ref: ImageReference, observation: Observation) -> float:
        """How long an answer stays true: never for unknowns; by digest longer than by tag."""
        if observation.result in _UNCACHED:
            return 0.0
        if observation.result == "pullable":
            return self.options.digest_ttl if ref.digest else self.options.tag_ttl
        return self.options.negative_ttl
