"""Benchmark: the latency of an admission, over real TLS, as the API server sees it (``make bench``).

Starts the real Debian ``docker-registry`` on 127.0.0.1, pushes multi-platform images, and runs
``pullguard serve`` as its own process (uvicorn, TLS 1.3 with a trustme certificate, the engine
and its caches, one JSON log line per admission — everything production pays). A client like the
API server's — one keep-alive HTTPS connection per worker, TCP_NODELAY, ``?timeout=10s`` — POSTs
AdmissionReviews and times each round trip (request written -> response read,
``time.perf_counter``), in this process, so client and server do not share an interpreter.

Scenarios:

* **cached**: a Pod CREATE whose image was checked a moment ago (a verdict-cache hit, no
  registry traffic) — the common case: a Deployment's ReplicaSet creates N identical Pods;
* **cached, 3 images**: a Deployment with three cached images;
* **cached, concurrent**: the cached Pod from ``--workers`` connections at once;
* **uncached**: a Pod whose tag was never seen (anonymous ping already done; one HEAD of the
  manifest and one GET of the index per review) — what a new rollout pays once;
* **in-process**: ``Reviewer.review`` called directly (no HTTP/TLS), the handler's own cost.

Usage: ``.venv/bin/python bench/run.py [--requests 2000] [--workers 8]``. Prints a Markdown table
for bench/README.md and writes bench/results/admission.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Served, percentiles, serve  # noqa: E402
from tests.infra.images import push_index  # noqa: E402
from tests.infra.registry import RegistryProcess  # noqa: E402
from tests.support.reviews import deployment, pod, review  # noqa: E402
from webhook.app import reviewer_for  # noqa: E402
from webhook.assembly import build  # noqa: E402
from webhook.settings import parse_config  # noqa: E402


def _timed(webhook: Served, bodies: list[bytes]) -> list[float]:
    samples: list[float] = []
    with webhook.client() as client:
        client.get("/healthz")  # connect + TLS handshake outside the measurement
        for body in bodies:
            started = time.perf_counter()
            resp = client.post("/validate?timeout=10s", content=body)
            samples.append(time.perf_counter() - started)
            if resp.status_code != 200 or resp.json()["response"]["allowed"] is not True:
                raise SystemExit(f"unexpected answer: {resp.status_code} {resp.text[:300]}")
    return samples


def _concurrent(webhook: Served, body: bytes, workers: int, per_worker: int) -> tuple[list[float], float]:
    results: list[list[float]] = [[] for _ in range(workers)]
    start = threading.Barrier(workers + 1)

    def work(i: int) -> None:
        with webhook.client() as client:
            client.get("/healthz")
            start.wait()
            for _ in range(per_worker):
                t0 = time.perf_counter()
                resp = client.post("/validate?timeout=10s", content=body)
                results[i].append(time.perf_counter() - t0)
                assert resp.status_code == 200

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    return [s for r in results for s in r], wall


def _in_process(config: dict[str, Any], body: bytes, n: int) -> list[float]:
    cfg = parse_config(config)
    assembly = build(cfg)
    reviewer = reviewer_for(cfg, assembly)

    async def run() -> list[float]:
        await reviewer.review(body, "10s")  # warm the caches
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            await reviewer.review(body, "10s")
            samples.append(time.perf_counter() - t0)
        await assembly.aclose()
        return samples

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed reviews per sequential scenario")
    parser.add_argument("--workers", type=int, default=8, help="connections in the concurrent scenario")
    parser.add_argument("--uncached", type=int, default=200, help="timed reviews of never-seen tags")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # in-process scenario: the handler alone, without its log line

    results: dict[str, Any] = {}
    with RegistryProcess("noauth") as registry, tempfile.TemporaryDirectory() as tmp:
        repo = "bench/app"
        digest = push_index(registry, repo, "1.0").digest
        for i in range(args.uncached + 1):
            push_index(registry, repo, f"u{i}", children=(("linux", "amd64", None),))
        config = {"network": {"allowLoopback": True, "plainHttp": [registry.host]}}
        image = f"{registry.host}/{repo}:1.0"
        pod_body = json.dumps(review(pod("web", "shop", [image]))).encode()
        images = [image, f"{registry.host}/{repo}:u0", f"{registry.host}/{repo}@{digest}"]
        deploy_body = json.dumps(review(deployment("web", "shop", images))).encode()
        with serve(config, Path(tmp)) as webhook:
            _timed(webhook, [pod_body, deploy_body])  # first checks fill the caches
            results["cached"] = percentiles(_timed(webhook, [pod_body] * args.requests))
            results["cached, 3 images"] = percentiles(_timed(webhook, [deploy_body] * args.requests))
            per_worker = max(1, args.requests // args.workers)
            samples, wall = _concurrent(webhook, pod_body, args.workers, per_worker)
            results[f"cached, {args.workers} concurrent connections"] = {
                **percentiles(samples),
                "throughput_per_s": len(samples) / wall,
            }
            uncached = [
                json.dumps(review(pod("web", "shop", [f"{registry.host}/{repo}:u{i}"]))).encode()
                for i in range(1, args.uncached + 1)
            ]
            before = webhook.registry_requests()
            cold = percentiles(_timed(webhook, uncached))
            per_review = (webhook.registry_requests() - before) / len(uncached)
            results[f"uncached: a new tag, {per_review:g} registry requests each"] = cold
        results["in-process Reviewer.review, cached"] = percentiles(
            _in_process(config, pod_body, args.requests)
        )

    machine = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": _cpu(),
        "requests": args.requests,
        "workers": args.workers,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "admission.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"Python {machine['python']}, {machine['cpus']} CPUs ({machine['cpu']}); one host\n")
    print("| scenario | n | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        extra = f" ({r['throughput_per_s']:.0f} reviews/s)" if "throughput_per_s" in r else ""
        print(
            f"| {name}{extra} | {r['n']} | {r['p50_ms']:.2f} ms | {r['p90_ms']:.2f} ms | "
            f"{r['p99_ms']:.2f} ms | {r['max_ms']:.2f} ms |"
        )


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
