"""Prometheus metrics for the webhook (``GET /metrics``), with bounded, credential-free labels.

Label values come only from closed sets — verdicts, the DESIGN 1.2 kinds (anything else is
``other``), modes, operations, the DESIGN 1.1 outcomes, HTTP methods and status classes — plus
registry *hosts*, capped at ``MAX_REGISTRY_HOSTS`` distinct values (the rest are ``other``) so a
stream of reviews naming random registries cannot blow up the series count. An image name, a
repository, a tag, a user name or any credential is never a label (DESIGN 5): what failed is in
the log line and the audit annotation, not in the metrics.

Cache hits are read at scrape time from the ``stats`` counters the engine and the Kubernetes
adapter keep anyway, so the hot path does not pay for them twice.

With ``pullguard serve --workers N`` (N > 1) every worker keeps its own ``Metrics`` — its own
counters, histograms and caches — and ``GET /metrics`` is answered by whichever worker accepted
the scrape's connection: a scrape shows *one* worker's figures, not the pod's sum, and two
scrapes may come from different workers (Prometheus then sees a counter go down and counts a
reset). Per-pod totals are exact only with ``--workers 1`` (the default, and the chart's), which
is why more pods rather than more workers is the default way to scale; prometheus_client's
multiprocess mode (shared mmap files summed at scrape time) would make them exact for N > 1, at
the price of those files on a volume and cache statistics that cannot be summed that way.
"""

from __future__ import annotations

import re
from collections import Counter as StatsCounter
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from webhook.core.admission import DECISIONS
from webhook.core.admission import MODES as ADMISSION_MODES
from webhook.core.admission import OPERATIONS as ADMISSION_OPERATIONS
from webhook.core.verdict import OUTCOMES
from webhook.core.workloads import SPEC_PATHS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = frozenset(SPEC_PATHS)  # the kinds that carry a pod template (core/workloads.py)
VERDICTS = frozenset(DECISIONS)
MODES = frozenset(ADMISSION_MODES)
OPERATIONS = frozenset(ADMISSION_OPERATIONS)
_OUTCOMES = frozenset(OUTCOMES)
METHODS = frozenset({"GET", "HEAD", "POST"})
KUBE_RESOURCES = frozenset({"secrets", "serviceaccounts", "namespaces", "nodes"})
KUBE_RESULTS = frozenset({"ok", "not-found", "forbidden", "unauthorized", "unreachable", "error"})
#: Distinct registry hosts that get their own label value; later ones are counted as "other".
MAX_REGISTRY_HOSTS = 50
_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?(?::\d{1,5})?$"
)
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\](?::\d{1,5})?$")
#: engine/adapter stats key -> event label
_CACHE_EVENTS = {"cache_hit": "hit", "cache_miss": "miss", "single_flight": "single-flight"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _one_of(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else "other"


def _status_class(status: int | None) -> str:
    if status is None:
        return "error"
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


class _StatsCollector(Collector):
    """``pullguard_cache_events_total{cache, event}`` from live ``Counter`` objects."""

    def __init__(self, sources: Mapping[str, Callable[[], StatsCounter[str]]]) -> None:
        self._sources = sources

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "pullguard_cache_events",
            "Cache lookups by cache (registry answers, Kubernetes objects) and event",
            labels=["cache", "event"],
        )
        for cache, source in self._sources.items():
            stats = source()
            for key, event in _CACHE_EVENTS.items():
                family.add_metric([cache, event], float(stats.get(key, 0)))
        yield family


class Metrics:
    """Every pullguard metric, on its own registry (tests and benchmarks run several apps)."""

    def __init__(self) -> None:
        # *_created series double every counter's series count and say nothing a scrape needs.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.admissions = Counter(
            "pullguard_admissions",
            "AdmissionReviews answered, by verdict, kind, mode and operation",
            ["verdict", "kind", "mode", "operation"],
            registry=r,
        )
        self.duration = Histogram(
            "pullguard_admission_duration_seconds",
            "Time from reading a review to its answer",
            ["verdict"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.images = Counter(
            "pullguard_image_outcomes",
            "Images checked, by outcome (DESIGN 1.1) and mode",
            ["outcome", "mode"],
            registry=r,
        )
        self.registry_requests = Histogram(
            "pullguard_registry_request_duration_seconds",
            f"Requests to registries and their token servers, by host (first {MAX_REGISTRY_HOSTS} hosts; "
            "then 'other'), method and status class",
            ["registry", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.kube_requests = Histogram(
            "pullguard_kube_request_duration_seconds",
            "Reads from the Kubernetes API, by resource and result",
            ["resource", "result"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.certificate_reloads = Counter(
            "pullguard_certificate_reloads",
            "Serving certificate reloads after its files changed, by result",
            ["result"],
            registry=r,
        )
        self.info = Gauge("pullguard_build_info", "pullguard version", ["version"], registry=r)
        self.info.labels(_version()).set(1)
        self._hosts: set[str] = set()
        self._stats: dict[str, Callable[[], StatsCounter[str]]] = {}
        r.register(_StatsCollector(self._stats))

    # -- hooks ----------------------------------------------------------------------------------

    def watch_stats(self, cache: str, source: Callable[[], StatsCounter[str]]) -> None:
        """Expose ``source()``'s cache_hit / cache_miss / single_flight as ``cache=<cache>``."""
        self._stats[cache] = source

    def registry_host(self, netloc: str) -> str:
        """A bounded, credential-free label for a registry host."""
        host = netloc.rpartition("@")[2].lower()
        if not (_HOST.match(host) or _IPV6.match(host)):
            return "invalid"
        if host in self._hosts:
            return host
        if len(self._hosts) >= MAX_REGISTRY_HOSTS:
            return "other"
        self._hosts.add(host)
        return host

    def registry_request(self, host: str, method: str, status: int | None, seconds: float) -> None:
        """``RegistryClient(on_request=...)``: one request to a registry or token server."""
        self.registry_requests.labels(
            self.registry_host(host), _one_of(method.upper(), METHODS), _status_class(status)
        ).observe(max(0.0, seconds))

    def kube_request(self, resource: str, result: str, seconds: float) -> None:
        """``KubeCluster(on_request=...)``: one read from the API server."""
        self.kube_requests.labels(_one_of(resource, KUBE_RESOURCES), _one_of(result, KUBE_RESULTS)).observe(
            max(0.0, seconds)
        )

    def admission(
        self, verdict: str, kind: str, mode: str, operation: str, seconds: float, outcomes: Iterable[str]
    ) -> None:
        verdict = _one_of(verdict, VERDICTS)
        mode = _one_of(mode, MODES)
        self.admissions.labels(verdict, _one_of(kind, KINDS), mode, _one_of(operation, OPERATIONS)).inc()
        self.duration.labels(verdict).observe(max(0.0, seconds))
        for outcome in outcomes:
            self.images.labels(_one_of(outcome, _OUTCOMES), mode).inc()

    def certificate_reload(self, ok: bool) -> None:
        self.certificate_reloads.labels("ok" if ok else "failed").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _version() -> str:
    try:
        return version("pullguard")
    except PackageNotFoundError:  # running from a source tree without installing
        return "unknown"
