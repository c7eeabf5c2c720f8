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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
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
from tests.infra.containerd import Containerd  # noqa: E402
from tests.infra.images import push_index  # noqa: E402
from tests.infra.registry import AccessEntry, RegistryProcess  # noqa: E402
from tests.infra.skopeo import inspect as skopeo_inspect  # noqa: E402
from tests.infra.tokenserver import TokenServer  # noqa: E402
from tests.support.reviews import deployment, pod, review  # noqa: E402
from webhook.adapters.stream_objects import StreamObjects  # noqa: E402
from webhook.assembly import build  # noqa: E402
from webhook.core.objects import secret_from_dict  # noqa: E402
from webhook.settings import Config, parse_config  # noqa: E402

USER = ("bench", "bench-password")
NAMESPACE = "bench"
SECRET = "regcred"


# -- the registry under test --------------------------------------------------------------------


@dataclass
class Stage:
    """The real registry (token auth, TLS, access log) and its token server, seeded for a scenario."""

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

    def secret(self) -> dict[str, Any]:
        auth = base64.b64encode(f"{USER[0]}:{USER[1]}".encode()).decode()
        payload = json.dumps({"auths": {self.host: {"auth": auth}}}).encode()
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/dockerconfigjson",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "data": {".dockerconfigjson": base64.b64encode(payload).decode()},
        }

    def pod(self, images: Sequence[str], name: str = "app") -> dict[str, Any]:
        return pod(name, NAMESPACE, images, pull_secrets=[SECRET])

    def deployment(self, images: Sequence[str], name: str = "app") -> dict[str, Any]:
        return deployment(name, NAMESPACE, images, pull_secrets=[SECRET])


@contextmanager
def stage() -> Iterator[Stage]:
    ca = trustme.CA()
    tokens = TokenServer({USER[0]: USER[1]})
    tokens.grant(USER[0], "bench/*", ("pull",))
    with tokens, RegistryProcess("token", token_server=tokens, tls_ca=ca, access_log=True) as registry:
        with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
            assert registry.ca_file is not None
            config = {
                "network": {"allowLoopback": True, "caFile": str(registry.ca_file)},
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
    docs: list[tuple[Mapping[str, Any], str]] = []
    for i, obj in enumerate(objects):
        if obj.get("kind") == "Secret":
            store.add_secret(secret_from_dict(obj, NAMESPACE, f"bench#{i}"))
        docs.append((obj, f"bench#{i}"))
    assembly = build(cfg)
    try:
        started = time.perf_counter()
        view = await assembly.views.view(pods_admitted=False)
        verdicts = await assembly.engine.check_many(docs, view, store, default_namespace=NAMESPACE)
        elapsed = time.perf_counter() - started
    finally:
        await assembly.close_clients()
    return elapsed, all(v.allowed for v in verdicts)


def in_process(st: Stage, objects: Sequence[Mapping[str, Any]]) -> float:
    elapsed, ok = asyncio.run(_check_in_process(parse_config(st.config), objects))
    if not ok:
        raise SystemExit("pullguard denied an image the benchmark expects to pull")
    return elapsed


def cli_check(st: Stage, objects: Sequence[Mapping[str, Any]], *, stdin: bool = False) -> float:
    """Wall time of one ``pullguard check`` process (exit 0 required)."""
    config_file = st.tmp / "config.yaml"
    config_file.write_text(yaml.safe_dump(st.config))
    text = yaml.safe_dump_all(objects)
    manifest = st.tmp / "input.yaml"
    manifest.write_text(text)
    args = [str(PULLGUARD), "check", "--config", str(config_file), "--output", "json"]
    args += ["-"] if stdin else [str(manifest)]
    started = time.perf_counter()
    r = subprocess.run(args, input=text if stdin else None, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if r.returncode != 0:
        raise SystemExit(f"pullguard check exited {r.returncode}: {r.stderr[-500:]} {r.stdout[-800:]}")
    return elapsed


# -- B2 -----------------------------------------------------------------------------------------


@dataclass
class Tool:
    name: str
    run: Callable[[str], float]  # reference -> seconds
    count: Callable[[list[AccessEntry]], list[AccessEntry]] = lambda entries: entries


def _median(values: Sequence[float]) -> float:
    return statistics.median(values)


def b2(quick: bool) -> tuple[list[Row], dict[str, Any]]:
    reps = 3 if quick else 15
    with stage() as st, Containerd() as ctd:
        assert st.registry.ca_file is not None and st.registry.cert_dir is not None
        hosts = ctd.make_hosts_dir(st.host, st.registry.ca_file)
        refs = []
        for i in range(reps + 1):
            refs.append(push_index(st.registry, f"bench/cold{i}", "1.0", credentials=st.registry.push_credentials).ref)

        def ctr(args: Sequence[str]) -> Callable[[str], float]:
            def go(ref: str) -> float:
                ctd.remove_all_images()
                _clear_content(ctd)
                started = time.perf_counter()
                r = ctd._ctr(*args, "--hosts-dir", str(hosts), "--user", f"{USER[0]}:{USER[1]}", ref, timeout=60)
                elapsed = time.perf_counter() - started
                if r.returncode != 0:
                    raise SystemExit(f"ctr {args} failed: {r.stderr}")
                return elapsed

            return go

        def skopeo(no_tags: bool) -> Callable[[str], float]:
            def go(ref: str) -> float:
                started = time.perf_counter()
                extra = ["--no-tags"] if no_tags else []
                ok, out = _skopeo(ref, st, extra)
                elapsed = time.perf_counter() - started
                if not ok:
                    raise SystemExit(f"skopeo failed: {out}")
                return elapsed

            return go

        tools = [
            Tool("pullguard (in-process, webhook)", lambda r: in_process(st, [st.secret(), st.pod([r])])),
            Tool("pullguard check (process)", lambda r: cli_check(st, [st.secret(), st.pod([r])])),
            Tool(
                "ctr content fetch --metadata-only",
                ctr(["content", "fetch", "--metadata-only", "--platform", "linux/amd64"]),
            ),
            Tool(
                "ctr images pull (manifests+config only counted)",
                ctr(["images", "pull", "--platform", "linux/amd64", "--snapshotter", ctd.snapshotter or "native"]),
                lambda entries: [e for e in entries if "/blobs/" not in e.path or e is _config_of(entries, e)],
            ),
            Tool("skopeo inspect", skopeo(False)),
            Tool("skopeo inspect --no-tags", skopeo(True)),
        ]
        results: dict[str, Any] = {}
        for tool in tools:
            times = []
            seen = None
            for i, ref in enumerate(refs):
                mark = st.counts()
                t = tool.run(ref)
                entries, tok = st.since(mark)
                if i == 0:
                    continue  # warm the page cache / binaries
                times.append(t)
                counted = tool.count(entries)
                seen = (len(counted), tok, _describe(counted, tok))
            assert seen is not None
            results[tool.name] = {"registry": seen[0], "token": seen[1], "requests": seen[2], "median_s": _median(times), "times": times}
            print(tool.name, results[tool.name]["median_s"], seen, file=sys.stderr)
    return [], results


def _config_of(entries: list[AccessEntry], e: AccessEntry) -> AccessEntry | None:
    blobs = [x for x in entries if "/blobs/" in x.path and x.method == "GET"]
    return blobs[0] if blobs else None


def _clear_content(ctd: Containerd) -> None:
    r = ctd._ctr("content", "ls", "-q")
    digests = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
    if digests:
        ctd._ctr("content", "rm", *digests)


def _skopeo(ref: str, st: Stage, extra: Sequence[str]) -> tuple[bool, str]:
    from tests.infra._process import clean_env

    with tempfile.TemporaryDirectory(prefix="pg-skopeo-") as tmp:
        authfile = Path(tmp) / "auth.json"
        authfile.write_text('{"auths": {}}')
        args = ["skopeo", "inspect", "--authfile", str(authfile), "--retry-times", "0",
                "--cert-dir", str(st.registry.cert_dir), "--tls-verify=true",
                "--creds", f"{USER[0]}:{USER[1]}", *extra, f"docker://{ref}"]
        r = subprocess.run(args, capture_output=True, text=True, env=clean_env(), check=False)
    return r.returncode == 0, r.stdout if r.returncode == 0 else r.stderr


def rows(quick: bool = False) -> list[Row]:
    out, _ = b2(quick)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    r, res = b2(args.quick)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
