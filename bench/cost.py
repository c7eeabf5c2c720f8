"""Benchmarks B2–B5: what a check costs in registry requests and wall time, against the peers.

* **B2 cold check** — one reference, nothing cached, against the real Debian ``docker-registry``
  behind the tests' token server (Bearer auth, TLS with a trustme CA, a private repository and a
  pull secret), side by side in one run with containerd resolving the same reference and
  ``skopeo inspect``. Requests are counted on the server side, identically for every client: the
  registry's own access log (one line per request it answered) and the token server's request
  record. For containerd we count ``ctr content fetch --metadata-only --platform linux/amd64``
  (resolve + the manifests and the config of that platform, no layers: what a node's pull does
  before the layer downloads) and also the manifest and config requests of a full
  ``ctr images pull`` (its layer GETs are left out of the count). pullguard is timed twice: the
  webhook's in-process check (a fresh engine and connection pool, the way a long-running server
  meets a never-seen image — no interpreter start) and the wall time of a ``pullguard check``
  process (interpreter start and imports included).
* **B3 fan-out** — one Deployment with 20 distinct, never-checked images vs one image, in-process,
  each run on a fresh engine: the ratio of wall times.
* **B4 stampede** — 200 concurrent AdmissionReviews over TLS to ``pullguard serve`` of one image
  nobody checked yet: the registry requests of the whole stampede (registry access log plus
  token server).
* **B5 CI** — ``pullguard check -`` on 2,000 generated workloads naming 200 distinct images in the
  real registry: total process wall time and registry requests.

``rows(quick=True)`` repeats less (for a smoke run); ``bench/run.py`` calls ``rows``. Run alone:
``.venv/bin/python bench/cost.py [--quick] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import trustme  # noqa: E402
import yaml  # noqa: E402

from bench.harness import PULLGUARD, Row, machine, render_table, serve  # noqa: E402
from tests.infra._process import clean_env  # noqa: E402
from tests.infra.containerd import Containerd  # noqa: E402
from tests.infra.images import push_index, registry_client  # noqa: E402
from tests.infra.registry import AccessEntry, RegistryProcess  # noqa: E402
from tests.infra.tokenserver import TokenServer  # noqa: E402
from tests.support.reviews import deployment, pod, review  # noqa: E402
from webhook.adapters.stream_objects import StreamObjects  # noqa: E402
from webhook.assembly import build  # noqa: E402
from webhook.settings import Config, parse_config  # noqa: E402

USER = ("bench", "bench-password")
_CPU: list[float] = []  # CPU seconds of the worker's check (all threads of its process)
CPU_SEEN: list[float] = []  # ... as reported to the parent, one per in_process() call
NAMESPACE = "bench"


# -- the registry under test --------------------------------------------------------------------


@dataclass
class Stage:
    """The real registry (token auth, TLS, access log) and its token server, seeded for a scenario.

    The nodes' docker config (``cluster.nodeDockerConfig``) holds the one credential, so the CLI and
    the webhook (which has no cluster here to read pull secrets from) use the same identity:
    kubelet's node docker config, then pullguard's anonymous "is it public?" probe.
    """

    tokens: TokenServer
    registry: RegistryProcess
    tmp: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.registry.host

    def counts(self) -> tuple[int, int]:
        """(registry requests, token requests) answered so far."""
        return len(self.registry.served()), len(self.tokens.requests)

    def since(self, mark: tuple[int, int]) -> tuple[list[AccessEntry], int]:
        served = self.registry.served()[mark[0] :]
        return served, len(self.tokens.requests) - mark[1]

    def push(self, repo: str, tag: str) -> str:
        return push_index(self.registry, repo, tag, credentials=self.registry.push_credentials).ref


@contextmanager
def stage(mode: str = "token") -> Iterator[Stage]:
    """``token``: Bearer tokens from the tests' token server; ``htpasswd``: Basic auth."""
    ca = trustme.CA()
    tokens = TokenServer({USER[0]: USER[1]})
    tokens.grant(USER[0], "bench/*", ("pull",))
    # http.server's backlog of 5 drops the SYNs of a burst of token requests (1 s retransmits): a
    # real token server listens with a deep queue, and the benchmark measures pullguard, not that.
    tokens.backlog = 1024
    if mode == "token":
        registry = RegistryProcess("token", token_server=tokens, tls_ca=ca, access_log=True)
    else:
        registry = RegistryProcess("htpasswd", users={USER[0]: USER[1]}, tls_ca=ca, access_log=True)
    with tokens, registry, tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
        assert registry.ca_file is not None
        auth = base64.b64encode(f"{USER[0]}:{USER[1]}".encode()).decode()
        docker_config = Path(tmp) / "node-config.json"
        docker_config.write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
        config = {
            "network": {"allowLoopback": True, "caFile": str(registry.ca_file)},
            "cluster": {"nodeDockerConfig": str(docker_config)},
            "onUnknown": "deny",
        }
        yield Stage(tokens, registry, Path(tmp), config)


def _describe(entries: Sequence[AccessEntry], tokens: int) -> str:
    kinds: Counter[str] = Counter()
    for e in entries:
        what = "ping" if e.path.rstrip("/") == "/v2" else e.path.split("/")[-2]
        kinds[f"{e.method} {what} {e.status}"] += 1
    parts = [f"{n}× {k}" if n > 1 else k for k, n in kinds.items()]
    return ", ".join(parts) + f" + {tokens} token"


# -- pullguard, in-process and as a process -----------------------------------------------------


async def _check_in_process(cfg: Config, objects: Sequence[Mapping[str, Any]]) -> tuple[float, bool]:
    """One cold check the way ``pullguard check`` runs it, timed without interpreter start."""
    store = StreamObjects()
    docs: list[tuple[Mapping[str, Any], str]] = [(obj, f"bench#{i}") for i, obj in enumerate(objects)]
    assembly = build(cfg)
    profile_to = os.environ.get("PULLGUARD_BENCH_CPROFILE")  # a file: cProfile of the check alone
    profiler = cProfile.Profile() if profile_to else None
    try:
        started = time.perf_counter()
        cpu = time.process_time()
        if profiler is not None:
            profiler.enable()
        view = await assembly.views.view(pods_admitted=False)
        verdicts = await assembly.engine.check_many(docs, view, store, default_namespace=NAMESPACE)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - started
        _CPU.append(time.process_time() - cpu)
    finally:
        await assembly.close_clients()
    if profiler is not None and profile_to:
        with open(profile_to, "w") as out:
            pstats.Stats(profiler, stream=out).sort_stats(
                os.environ.get("PULLGUARD_BENCH_SORT", "tottime")
            ).print_stats(60)
    for v in verdicts:
        if not v.allowed:
            print(json.dumps([[i.outcome, i.message] for i in v.images])[:3000], file=sys.stderr)
    return elapsed, all(v.allowed for v in verdicts)


def in_process(st: Stage, objects: Sequence[Mapping[str, Any]]) -> float:
    """One cold check in its own interpreter (started and imported before the clock starts).

    Its own process, as a webhook is: the token server runs in this one, and sharing a GIL with
    it would charge pullguard for the JWT signing.
    """
    job = st.tmp / "job.json"
    job.write_text(json.dumps({"config": st.config, "objects": list(objects)}))
    r = subprocess.run(
        [sys.executable, str(Path(__file__)), "--worker", str(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(f"in-process worker failed: {r.stderr[-800:]}")
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    if not answer["allowed"]:
        raise SystemExit(f"pullguard denied an image the benchmark expects to pull: {r.stderr[-3000:]}")
    CPU_SEEN.append(float(answer["cpu_seconds"]))
    return float(answer["seconds"])


def _worker(job: Path) -> None:
    doc = json.loads(job.read_text())
    elapsed, ok = asyncio.run(_check_in_process(parse_config(doc["config"]), doc["objects"]))
    print(json.dumps({"seconds": elapsed, "cpu_seconds": _CPU[-1], "allowed": ok}))


def cli_check(st: Stage, objects: Sequence[Mapping[str, Any]], *, stdin: bool = False) -> float:
    """Wall time of one ``pullguard check`` process (exit 0 required)."""
    elapsed, code, output = cli_run(st, objects, stdin=stdin)
    if code != 0:
        raise SystemExit(f"pullguard check exited {code}: {output[-800:]}")
    return elapsed


def cli_run(
    st: Stage, objects: Sequence[Mapping[str, Any]], *, stdin: bool = False
) -> tuple[float, int, str]:
    """Wall time, exit code and the last lines of one ``pullguard check`` process."""
    config_file = st.tmp / "config.yaml"
    config_file.write_text(yaml.safe_dump(st.config))
    text = yaml.safe_dump_all(objects)
    manifest = st.tmp / "input.yaml"
    manifest.write_text(text)
    args = [str(PULLGUARD), "check", "--config", str(config_file)]
    args += ["-"] if stdin else [str(manifest)]
    started = time.perf_counter()
    r = subprocess.run(args, input=text if stdin else None, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    return elapsed, r.returncode, r.stderr[-500:] + r.stdout[-300:]


# -- B2 -----------------------------------------------------------------------------------------


@dataclass
class Cold:
    """One image pushed for one cold run, and the blobs a node needs before its layers."""

    ref: str
    config_digest: str  # of the linux/amd64 child


@dataclass
class Tool:
    name: str
    run: Callable[[Cold], float]  # -> seconds
    #: which of the registry's answers count (default: all of them)
    count: Callable[[Cold, list[AccessEntry]], list[AccessEntry]] = lambda cold, entries: entries


@dataclass
class Measured:
    registry: int
    token: int
    requests: str
    median_s: float
    times: list[float]


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _push_cold(st: Stage, repo: str) -> Cold:
    pushed = push_index(st.registry, repo, "1.0", credentials=st.registry.push_credentials)
    amd64 = next(c for c in pushed.children if c.platform and c.platform.architecture == "amd64")
    with registry_client(st.registry) as client:
        doc = client.get(f"/v2/{repo}/manifests/{amd64.digest}", headers={"Accept": amd64.media_type}).json()
    return Cold(pushed.ref, str(doc["config"]["digest"]))


def _metadata_only(cold: Cold, entries: list[AccessEntry]) -> list[AccessEntry]:
    """A pull's requests before the layers: everything but blob GETs other than the config."""
    return [e for e in entries if "/blobs/" not in e.path or e.path.endswith(cold.config_digest)]


def _clear_content(ctd: Containerd) -> None:
    """Images and blobs gone, so containerd asks the registry for everything again."""
    ctd.remove_all_images()
    r = ctd._ctr("content", "ls", "-q")
    digests = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    if digests:
        ctd._ctr("content", "rm", *digests)


def _ctr(ctd: Containerd, hosts: Path, args: Sequence[str]) -> Callable[[Cold], float]:
    def go(cold: Cold) -> float:
        _clear_content(ctd)
        user = f"{USER[0]}:{USER[1]}"
        started = time.perf_counter()
        r = ctd._ctr(*args, "--hosts-dir", str(hosts), "--user", user, cold.ref, timeout=60)
        elapsed = time.perf_counter() - started
        if r.returncode != 0:
            raise SystemExit(f"ctr {' '.join(args)} failed: {r.stderr}")
        return elapsed

    return go


def _skopeo(st: Stage, extra: Sequence[str]) -> Callable[[Cold], float]:
    """``skopeo inspect`` with the credential, verifying TLS with the registry's CA."""

    def go(cold: Cold) -> float:
        with tempfile.TemporaryDirectory(prefix="pg-skopeo-") as tmp:
            authfile = Path(tmp) / "auth.json"
            authfile.write_text('{"auths": {}}')
            args = ["skopeo", "inspect", "--authfile", str(authfile), "--retry-times", "0"]
            args += ["--cert-dir", str(st.registry.cert_dir), "--tls-verify=true"]
            args += ["--creds", f"{USER[0]}:{USER[1]}", *extra, f"docker://{cold.ref}"]
            started = time.perf_counter()
            r = subprocess.run(args, capture_output=True, text=True, env=clean_env(), check=False)
            elapsed = time.perf_counter() - started
        if r.returncode != 0:
            raise SystemExit(f"skopeo inspect failed: {r.stderr}")
        return elapsed

    return go


PG_WEBHOOK = "pullguard, in-process check (webhook)"
PG_CLI = "pullguard check (a process)"
CTR_META = "ctr content fetch --metadata-only --platform linux/amd64"
CTR_PULL = "ctr images pull --platform linux/amd64 (manifests + config counted)"
SKOPEO = "skopeo inspect"
SKOPEO_NO_TAGS = "skopeo inspect --no-tags"


def b2(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    """Each tool checks its own never-seen reference ``reps`` times (the first run only warms up)."""
    reps = 3 if quick else 11
    with stage() as st, Containerd() as ctd:
        assert st.registry.ca_file is not None
        hosts = ctd.make_hosts_dir(st.host, st.registry.ca_file)
        snapshotter = ctd.snapshotter or "native"
        tools = [
            Tool(PG_WEBHOOK, lambda c: in_process(st, [pod("app", NAMESPACE, [c.ref])])),
            Tool(PG_CLI, lambda c: cli_check(st, [pod("app", NAMESPACE, [c.ref])])),
            Tool(
                CTR_META,
                _ctr(ctd, hosts, ["content", "fetch", "--metadata-only", "--platform", "linux/amd64"]),
            ),
            Tool(
                CTR_PULL,
                _ctr(
                    ctd, hosts, ["images", "pull", "--platform", "linux/amd64", "--snapshotter", snapshotter]
                ),
                _metadata_only,
            ),
            Tool(SKOPEO, _skopeo(st, [])),
            Tool(SKOPEO_NO_TAGS, _skopeo(st, ["--no-tags"])),
        ]
        colds = {
            t.name: [_push_cold(st, f"bench/cold-{i}-{n}") for n in range(reps + 1)]
            for i, t in enumerate(tools)
        }
        results: dict[str, Measured] = {}
        # Interleaved rounds, so a burst of load from elsewhere hits every tool alike.
        times: dict[str, list[float]] = {t.name: [] for t in tools}
        last: dict[str, tuple[list[AccessEntry], int]] = {}
        for n in range(reps + 1):
            for tool in tools:
                cold = colds[tool.name][n]
                mark = st.counts()
                took = tool.run(cold)
                entries, tok = st.since(mark)
                if n == 0:
                    continue  # warms the page cache and the binaries
                times[tool.name].append(took)
                last[tool.name] = (tool.count(cold, entries), tok)
        for tool in tools:
            entries, tok = last[tool.name]
            results[tool.name] = Measured(
                len(entries), tok, _describe(entries, tok), _median(times[tool.name]), times[tool.name]
            )
    pg, cli, meta, pull = results[PG_WEBHOOK], results[PG_CLI], results[CTR_META], results[CTR_PULL]
    req_ratio = pg.registry / pull.registry
    time_ratio = pg.median_s / meta.median_s
    rows = [
        Row(
            "B2",
            "cold check, registry requests: pullguard vs containerd's pull before its layers "
            f"({pull.requests})",
            "≤ containerd (≤ 1.0×)",
            f"{pg.registry} vs {pull.registry} = {req_ratio:.2f}× ({pg.requests}); "
            f"tokens {pg.token} vs {pull.token}",
            pg.registry <= pull.registry,
        ),
        Row(
            "B2",
            f"cold check, wall time: pullguard in-process (webhook) vs `{CTR_META}` (median of {reps})",
            "≤ 1.2×",
            f"{pg.median_s * 1000:.0f} ms vs {meta.median_s * 1000:.0f} ms = {time_ratio:.2f}×",
            time_ratio <= 1.2,
        ),
        Row(
            "B2",
            "cold check, wall time: the `pullguard check` process (interpreter start and imports included)",
            "(informative)",
            f"{cli.median_s * 1000:.0f} ms = {cli.median_s / meta.median_s:.1f}× ctr",
            None,
        ),
    ]
    for name in (CTR_META, SKOPEO, SKOPEO_NO_TAGS):
        r = results[name]
        rows.append(
            Row(
                "B2",
                f"peer: `{name}`",
                "(informative)",
                f"{r.registry} registry + {r.token} token requests ({r.requests}); "
                f"{r.median_s * 1000:.0f} ms",
                None,
            )
        )
    return rows, {k: vars(v) for k, v in results.items()}


# -- B3 -----------------------------------------------------------------------------------------


def b3(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    """A Deployment of 20 distinct never-checked images vs one, each run on a fresh engine."""
    reps = 3 if quick else 9
    width = 20
    with stage() as st:
        repos = [[st.push(f"bench/fan{r}-{i}", "1.0") for i in range(width)] for r in range(reps + 1)]
        singles = [st.push(f"bench/one{r}", "1.0") for r in range(reps + 1)]
        one, many = [], []
        cpu_one: list[float] = []
        cpu_many: list[float] = []
        counts: dict[str, Any] = {}
        for r in range(reps + 1):
            mark = st.counts()
            t1 = in_process(st, [deployment("one", NAMESPACE, [singles[r]])])
            e1, k1 = st.since(mark)
            mark = st.counts()
            t20 = in_process(st, [deployment("many", NAMESPACE, repos[r])])
            e20, k20 = st.since(mark)
            if r == 0:
                continue
            one.append(t1)
            many.append(t20)
            cpu_one.append(CPU_SEEN[-2])
            cpu_many.append(CPU_SEEN[-1])
            counts = {"one": (len(e1), k1, _describe(e1, k1)), "twenty": (len(e20), k20, _describe(e20, k20))}
    ratio = _median(many) / _median(one)
    res = {
        "one_s": _median(one),
        "twenty_s": _median(many),
        "ratio": ratio,
        "cpu_one_s": _median(cpu_one),
        "cpu_twenty_s": _median(cpu_many),
        "requests": counts,
    }
    row = Row(
        "B3",
        f"fan-out: a Deployment of {width} distinct cold images vs 1 (in-process, median of {reps})",
        "≤ 1.5×",
        f"{ratio:.2f}× ({_median(many) * 1000:.0f} ms vs {_median(one) * 1000:.0f} ms; pullguard's CPU "
        f"{_median(cpu_many) * 1000:.0f} vs {_median(cpu_one) * 1000:.0f} ms; "
        f"{counts['twenty'][0]} registry + {counts['twenty'][1]} token requests)",
        ratio <= 1.5,
    )
    return [row], res


# -- B4 -----------------------------------------------------------------------------------------


async def _stampede(url: str, ctx: Any, body: bytes, n: int) -> list[bool]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=url, verify=ctx, limits=limits, timeout=60) as client:
        # every connection open and TLS done first, so the stampede is admissions, not handshakes
        await asyncio.gather(*(client.get("/healthz") for _ in range(n)))
        replies = await asyncio.gather(
            *(client.post("/validate?timeout=10s", content=body) for _ in range(n))
        )
    return [r.status_code == 200 and r.json()["response"]["allowed"] is True for r in replies]


def b4(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    n = 200
    rows: list[Row] = []
    res: dict[str, Any] = {}
    for mode in ("token", "htpasswd"):
        with stage(mode) as st:
            image = st.push("bench/stampede", "1.0")
            body = json.dumps(review(pod("app", NAMESPACE, [image]))).encode()
            with serve(st.config, st.tmp) as webhook:
                mark = st.counts()
                ok = asyncio.run(_stampede(webhook.url, webhook.ssl_context(), body, n))
                entries, tok = st.since(mark)
        if not all(ok):
            raise SystemExit(f"{ok.count(False)} of {n} stampede admissions were not allowed")
        what = _describe(entries, tok)
        res[mode] = {"registry": len(entries), "token": tok, "requests": what}
        auth = "Bearer token auth" if mode == "token" else "Basic auth (htpasswd)"
        rows.append(
            Row(
                "B4",
                f"stampede: {n} concurrent admissions (TLS, `pullguard serve`) of one never-checked image, "
                f"{auth}",
                "≤ 3 registry requests",
                f"{len(entries)} registry + {tok} token requests ({what})",
                len(entries) <= 3,
            )
        )
    return rows, res


# -- B5 -----------------------------------------------------------------------------------------


def workloads(images: Sequence[str], count: int) -> list[dict[str, Any]]:
    """``count`` Deployments, two containers each, cycling through ``images``."""
    out = []
    for i in range(count):
        pair = [images[(2 * i) % len(images)], images[(2 * i + 1) % len(images)]]
        out.append(deployment(f"app-{i}", NAMESPACE, pair))
    return out


def b5(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    n_images = 40 if quick else 200
    n_workloads = 400 if quick else 2000
    repos = n_images // 2  # two tags per repository: tokens are per repository, as in real charts
    with stage() as st:
        images = [st.push(f"bench/ci{r}", tag) for r in range(repos) for tag in ("1.0", "2.0")]
        objects = workloads(images, n_workloads)
        mark = st.counts()
        wall, code, output = cli_run(st, objects, stdin=True)
        entries, tok = st.since(mark)
    summary = next((ln for ln in output.splitlines() if " objects, " in ln), f"exit code {code}")
    res = {
        "wall_s": wall,
        "exit_code": code,
        "summary": summary,
        "registry": len(entries),
        "token": tok,
        "requests": _describe(entries, tok),
    }
    row = Row(
        "B5",
        f"CI: `pullguard check -` on {n_workloads} workloads, {n_images} distinct images (process wall time)",
        "≤ 5 s",
        f"{wall:.2f} s; {len(entries)} registry + {tok} token requests"
        + ("" if code == 0 else f"; exit {code}: {summary}"),
        wall <= 5.0 and code == 0,
    )
    return [row], res


SCENARIOS: dict[str, Callable[[bool], tuple[list[Row], dict[str, Any]]]] = {
    "B2": b2,
    "B3": b3,
    "B4": b4,
    "B5": b5,
}


def rows(quick: bool = False) -> list[Row]:
    """The B2–B5 rows of the benchmark table (``bench/run.py`` calls this)."""
    out: list[Row] = []
    for run in SCENARIOS.values():
        out.extend(run(quick)[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and images")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="run only these")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker)
        return
    table: list[Row] = []
    raw: dict[str, Any] = {"machine": machine()}
    for name, run in SCENARIOS.items():
        if args.only and name not in args.only:
            continue
        got, figures = run(args.quick)
        table.extend(got)
        raw[name] = figures
    print(render_table(table))
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))


if __name__ == "__main__":
    main()
