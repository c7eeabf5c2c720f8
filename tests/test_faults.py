"""Each registry or token-server fault gives its DESIGN 1.1 outcome and a message saying what happened.

The real ``docker-registry`` (and, for Bearer auth, the real token flow of tests/infra/tokenserver.py)
answers every request; tests/infra/fault_proxy.py sits in front of it and breaks exactly one step.
The user's view is asserted: ``pullguard explain --output json`` — its ``outcome``, its message and
its exit code (DESIGN 1.1: 1 for a definite "will not pull", 3 for unknown) — and that it answered
within ``timeouts.deadlineSeconds`` (plus ``SLACK`` for the CLI's own start-up and rendering under
a loaded CI machine; no timing tighter than the deadline contract is asserted, STYLE rule on
benchmarks). The elapsed time of every case is recorded; with ``PULLGUARD_FAULT_TIMES=<file>`` the
worst time per fault is written there as JSON (bench/faults.py turns it into the README table).

Faults aimed at link-local or metadata addresses (a redirect to 169.254.169.254, a token realm there
or on loopback with ``allowLoopback`` off) run in a loopback-only network namespace:
tests/test_netns_faults.py.
"""

from __future__ import annotations

import json
import os
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.infra.fault_proxy import Fault, FaultProxy, Rule
from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.infra.tokenserver import TokenServer
from tests.support.cli import run, write_config

REQUEST_SECONDS = 1.0
DEADLINE_SECONDS = 3.0
SLACK = 1.5  # the CLI's own start-up, configuration and rendering, on a CI machine under load
MANIFEST = r"/v2/.+/manifests/"
MANIFEST_BY_TAG = r"/v2/.+/manifests/[^:/]+$"
TOKEN = r"^/token"

WORST: dict[str, float] = {}


@dataclass(frozen=True)
class Case:
    """One fault: where it is injected, what the user must see."""

    rules: tuple[Rule, ...]
    outcome: str
    says: tuple[str, ...]  # fragments of the message, in this order
    exit_code: int = 3  # DESIGN 1.1: unknown outcomes exit 3, definite failures 1
    token: bool = False  # through the Bearer token flow (the fault may sit on the token server)
    on_token_server: bool = False


def _rule(path: str, fault: Fault, method: str | None = None, times: int | None = None) -> Rule:
    return Rule(path, fault, method=method, times=times)


CASES = {
    # -- the registry ---------------------------------------------------------------------------
    "registry-delay-beyond-timeout": Case(
        (_rule(MANIFEST, Fault.delay(REQUEST_SECONDS * 4)),),
        "timeout",
        ("did not answer", "within 1s"),
    ),
    "registry-500": Case((_rule(MANIFEST, Fault.answer(500)),), "unreachable", ("answered 500",)),
    "registry-503": Case((_rule(MANIFEST, Fault.answer(503)),), "unreachable", ("answered 503",)),
    "registry-503-retry-after": Case(
        (_rule(MANIFEST, Fault.answer(503, {"Retry-After": "120"})),),
        "unreachable",
        ("answered 503", "retry after 120 s"),
    ),
    "registry-429-retry-after-seconds": Case(
        (_rule(MANIFEST, Fault.answer(429, {"Retry-After": "30"})),),
        "rate-limited",
        ("429", "retry after 30 s"),
    ),
    "registry-429-retry-after-date": Case(
        (_rule(MANIFEST, Fault.answer(429, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})),),
        "rate-limited",
        ("429", "retry after Wed, 21 Oct 2099 07:28:00 GMT"),
    ),
    "registry-429-retry-after-garbage": Case(
        (_rule(MANIFEST, Fault.answer(429, {"Retry-After": "soon<script>" + "x" * 300})),),
        "rate-limited",
        ("429", "unusable Retry-After"),
    ),
    "registry-connection-reset": Case(
        (_rule(MANIFEST, Fault.reset()),), "unreachable", ("connection to", "broke", "before it answered")
    ),
    "registry-truncated-body": Case(
        # HEAD is honest (it has no body); the GET of the manifest by digest is cut in half.
        (_rule(MANIFEST, Fault.truncate(), method="GET"),),
        "unreachable",
        ("connection to", "broke", "incomplete"),
    ),
    "registry-wrong-digest-on-the-tag": Case(
        (_rule(MANIFEST_BY_TAG, Fault.wrong_digest()),),
        "digest-mismatch",
        ("announced sha256:", "body is sha256:"),
        exit_code=1,
    ),
    "registry-wrong-digest-on-every-answer": Case(
        (_rule(MANIFEST, Fault.wrong_digest()),),
        "digest-mismatch",
        ("sha256:",),
        exit_code=1,
    ),
    "registry-malformed-digest": Case(
        (_rule(MANIFEST_BY_TAG, Fault.header("Docker-Content-Digest", "sha256:../../../../v2/?x=1")),),
        "digest-mismatch",
        ("malformed digest", "sha256:../../../../v2/?x=1"),
        exit_code=1,
    ),
    "registry-headers-larger-than-100-kib": Case(
        (_rule(MANIFEST, Fault.header("X-Padding", "a" * 200_000)),),
        "undetermined",
        ("sent response headers larger than pullguard reads",),
    ),
    "registry-10mb-manifest": Case(
        (_rule(MANIFEST, Fault.huge()),),
        "undetermined",
        ("manifest", "larger than", "containerd"),
    ),
    "registry-gzip-bomb": Case(
        (_rule(MANIFEST, Fault.gzip_bomb()),),
        "undetermined",
        ("manifest", "larger than", "containerd"),
    ),
    "registry-compresses-anyway-with-gzip": Case(
        (_rule(MANIFEST, Fault.encode("gzip"), method="GET"),),
        "pullable",
        ("pulls as anonymous",),
        exit_code=0,
    ),
    "registry-compresses-anyway-with-deflate": Case(
        (_rule(MANIFEST, Fault.encode("deflate"), method="GET"),),
        "pullable",
        ("pulls as anonymous",),
        exit_code=0,
    ),
    "registry-unknown-content-encoding": Case(
        (_rule(MANIFEST, Fault.encode("br"), method="GET"),),
        "undetermined",
        ("Content-Encoding br", "does not decode"),
    ),
    "registry-redirect-loop": Case(
        (_rule(MANIFEST, Fault.redirect_loop()),), "undetermined", ("more than 5 redirects",)
    ),
    "registry-redirect-to-an-unusable-url": Case(
        (_rule(MANIFEST, Fault.redirect("http://xn--/v2/")),),
        "undetermined",
        ("led to a URL pullguard cannot use",),
    ),
    "registry-slow-drip": Case(
        (_rule(MANIFEST, Fault.drip(0.05)),), "timeout", ("did not answer", "within 1s")
    ),
    # -- the token server, behind the real registry's challenge ---------------------------------
    "token-delay-beyond-timeout": Case(
        (_rule(TOKEN, Fault.delay(REQUEST_SECONDS * 4)),),
        "timeout",
        ("token server", "did not answer within 1s"),
        token=True,
        on_token_server=True,
    ),
    "token-500": Case(
        (_rule(TOKEN, Fault.answer(500)),),
        "unreachable",
        ("token server", "answered 500"),
        token=True,
        on_token_server=True,
    ),
    "token-503": Case(
        (_rule(TOKEN, Fault.answer(503)),),
        "unreachable",
        ("token server", "answered 503"),
        token=True,
        on_token_server=True,
    ),
    "token-429-retry-after": Case(
        (_rule(TOKEN, Fault.answer(429, {"Retry-After": "7"})),),
        "rate-limited",
        ("token server", "429", "retry after 7 s"),
        token=True,
        on_token_server=True,
    ),
    "token-connection-reset": Case(
        (_rule(TOKEN, Fault.reset()),),
        "unreachable",
        ("token server", "connection", "broke"),
        token=True,
        on_token_server=True,
    ),
    "token-truncated-body": Case(
        (_rule(TOKEN, Fault.truncate()),),
        "unreachable",
        ("token server", "connection", "broke"),
        token=True,
        on_token_server=True,
    ),
    "token-huge-body": Case(
        (_rule(TOKEN, Fault.huge(1024 * 1024)),),
        "undetermined",
        ("token server", "more than 262144 bytes"),
        token=True,
        on_token_server=True,
    ),
    "token-gzip-bomb": Case(
        (_rule(TOKEN, Fault.gzip_bomb()),),
        "undetermined",
        ("token server", "more than 262144 bytes"),
        token=True,
        on_token_server=True,
    ),
    "token-redirect-loop": Case(
        (_rule(TOKEN, Fault.redirect_loop()),),
        "undetermined",
        ("token server", "redirect"),
        token=True,
        on_token_server=True,
    ),
    "token-realm-an-unusable-url": Case(
        # glibc reads 127.000.000.001 as 127.0.0.1; httpx refuses to parse it: never a crash.
        (_rule(r"^/v2/", Fault.realm("http://127.000.000.001/token")),),
        "undetermined",
        ("unusable token realm",),
        token=True,
    ),
    "token-slow-drip": Case(
        (_rule(TOKEN, Fault.drip(0.05)),),
        "timeout",
        ("token server", "did not answer within 1s"),
        token=True,
        on_token_server=True,
    ),
}


@dataclass
class Rig:
    """The proxies in front of the session's real registries and token server."""

    noauth: FaultProxy
    token_registry: FaultProxy
    token_server: FaultProxy
    realm_rule: Rule


@pytest.fixture(scope="module")
def rig(
    registry_noauth: RegistryProcess, registry_token: RegistryProcess, token_server_session: TokenServer
) -> Iterator[Rig]:
    with (
        FaultProxy(registry_noauth.url) as noauth,
        FaultProxy(registry_token.url) as token_registry,
        FaultProxy(token_server_session.url) as token_proxy,
    ):
        # The real registry names the real token server as its realm; the proxy in front of the
        # registry names the proxy in front of the token server instead, so token faults apply.
        realm = f"{token_proxy.url}{urlsplit(token_server_session.realm).path}"
        realm_rule = Rule(r"^/v2/", Fault.realm(realm))
        push_image(registry_noauth, "team/faults", "v1")
        push_image(registry_token, "public/faults", "v1")
        yield Rig(noauth, token_registry, token_proxy, realm_rule)


@pytest.fixture(scope="module")
def config_path(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> str:
    config = {
        "network": {
            "allowLoopback": True,
            "plainHttp": [rig.noauth.netloc, rig.token_registry.netloc],
        },
        "timeouts": {"requestSeconds": REQUEST_SECONDS, "deadlineSeconds": DEADLINE_SECONDS},
        "cache": {"negativeTTLSeconds": 0},
    }
    return write_config(tmp_path_factory.mktemp("faults"), config)


@pytest.fixture(scope="module", autouse=True)
def record_worst_times() -> Iterator[None]:
    yield
    target = os.environ.get("PULLGUARD_FAULT_TIMES")
    if target:
        old = json.loads(Path(target).read_text()) if Path(target).exists() else {}
        merged = {k: max(v, old.get(k, 0.0)) for k, v in WORST.items()} | {
            k: v for k, v in old.items() if k not in WORST
        }
        Path(target).write_text(json.dumps(merged, indent=2, sort_keys=True))


def _arm(rig: Rig, case: Case) -> tuple[FaultProxy, str]:
    for proxy in (rig.noauth, rig.token_registry, rig.token_server):
        proxy.clear()
    if case.token:
        target = rig.token_server if case.on_token_server else rig.token_registry
        for rule in case.rules:
            target.add(Rule(rule.path, rule.fault, method=rule.method, times=rule.times))
        rig.token_registry.add(Rule(rig.realm_rule.path, rig.realm_rule.fault))
        return target, f"{rig.token_registry.netloc}/public/faults:v1"
    for rule in case.rules:
        rig.noauth.add(Rule(rule.path, rule.fault, method=rule.method, times=rule.times))
    return rig.noauth, f"{rig.noauth.netloc}/team/faults:v1"


def explain(config: str, image: str) -> tuple[dict[str, Any], int, float]:
    started = time.monotonic()
    result = run(["explain", "--config", config, "--output", "json", image])
    elapsed = time.monotonic() - started
    return json.loads(result.stdout), result.exit_code, elapsed


def _in_order(text: str, fragments: tuple[str, ...]) -> bool:
    at = 0
    for fragment in fragments:
        found = text.find(fragment, at)
        if found < 0:
            return False
        at = found + len(fragment)
    return True


def test_without_a_fault_both_images_pull_through_the_proxies(rig: Rig, config_path: str) -> None:
    for case in (Case((), "pullable", ()), Case((), "pullable", (), token=True)):
        proxy, image = _arm(rig, case)
        doc, code, _elapsed = explain(config_path, image)
        assert (doc["outcome"], code) == ("pullable", 0), doc
        assert proxy.requests() and all(s.fault in (None, "realm") for s in proxy.requests())
    assert rig.token_server.requests(), "the token flow went through the token server's proxy"


@pytest.mark.parametrize("name", list(CASES))
def test_each_fault_gives_its_outcome_and_says_why_within_the_deadline(
    rig: Rig, config_path: str, name: str
) -> None:
    case = CASES[name]
    proxy, image = _arm(rig, case)

    doc, code, elapsed = explain(config_path, image)

    WORST[name] = max(WORST.get(name, 0.0), elapsed)
    message = doc["message"]
    assert (doc["outcome"], code) == (case.outcome, case.exit_code), message
    assert _in_order(message, case.says), message
    assert proxy.requests(case.rules[0].fault.kind), "the fault was injected"
    assert elapsed < DEADLINE_SECONDS + SLACK, f"{name} took {elapsed:.2f}s"


@pytest.mark.parametrize("name", ["registry-gzip-bomb", "token-gzip-bomb"])
def test_a_compressed_answer_is_never_inflated_past_the_cap(rig: Rig, config_path: str, name: str) -> None:
    """64 MiB of gzip in ~64 KiB: decoded with a bounded inflater, peak memory stays near the cap.

    (httpx's own decoder inflates each network chunk whole: ~64 MiB at once for this body.)
    """
    case = CASES[name]
    proxy, image = _arm(rig, case)
    tracemalloc.start()
    try:
        doc, _code, _elapsed = explain(config_path, image)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert doc["outcome"] == "undetermined", doc
    assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while reading a 64 MiB gzip bomb"
    assert all(s.headers.get("accept-encoding") == "identity" for s in proxy.requests()), proxy.requests()


def test_a_malformed_announced_digest_never_becomes_a_url(rig: Rig, config_path: str) -> None:
    """A digest from a header goes into the next request's path: junk must stop at the first answer."""
    proxy, image = _arm(rig, CASES["registry-malformed-digest"])
    doc, _code, _elapsed = explain(config_path, image)
    assert doc["outcome"] == "digest-mismatch"
    assert [(s.method, s.fault) for s in proxy.requests()] == [("GET", "header")]
