"""Benchmark: ``pullguard check`` of the demo file against local registries, cold and warm.

Starts the real Debian ``docker-registry`` twice on 127.0.0.1 (htpasswd, and token auth behind
the tests' token server), seeds the demo of tests/support/demo.py (12 workloads, 14 images, 8
distinct references), then measures:

* the CLI as CI runs it: ``pullguard check --output json`` in a fresh process (interpreter start,
  imports, config, every registry round trip) — the median of ``--runs`` runs;
* the engine in one process, as the webhook runs it: the first check (cold caches, new
  connections, no tokens) and the next ones (warm: verdict cache, tokens, manifests);
* registry requests per distinct image reference, and token-server requests, for a cold check.

Usage: ``.venv/bin/python bench/check_demo.py [--runs 5]``. Numbers go in bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.infra.fixtures import TOKEN_ACL, USERS  # noqa: E402
from tests.infra.registry import RegistryProcess  # noqa: E402
from tests.infra.tokenserver import TokenServer  # noqa: E402
from tests.support.demo import Demo, build_demo  # noqa: E402
from webhook.adapters.manifests import read_inputs  # noqa: E402
from webhook.adapters.stream_objects import StreamObjects  # noqa: E402
from webhook.assembly import build  # noqa: E402
from webhook.core.objects import secret_from_dict, service_account_from_dict  # noqa: E402
from webhook.settings import cluster_view, load_config  # noqa: E402


def cli_seconds(demo: Demo, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [
                str(ROOT / ".venv/bin/pullguard"),
                "check",
                "--config",
                str(demo.config),
                "--output",
                "json",
                str(demo.manifest),
            ],
            capture_output=True,
            check=False,
        )
        times.append(time.perf_counter() - started)
        if done.returncode != 1:
            raise SystemExit(f"unexpected exit code {done.returncode}: {done.stderr.decode()[-500:]}")
    return times


async def engine_runs(demo: Demo, token: TokenServer, warm_runs: int) -> dict[str, float]:
    config = load_config(str(demo.config))
    docs = read_inputs([str(demo.manifest)])
    store = StreamObjects()
    for d in docs:
        if d.obj.get("kind") == "Secret":
            store.add_secret(secret_from_dict(d.obj, "default", d.source))
        elif d.obj.get("kind") == "ServiceAccount":
            store.add_service_account(service_account_from_dict(d.obj, "default", d.source))
    objects = [(d.obj, d.source) for d in docs]
    view = cluster_view(config, pods_admitted=False)
    assembly = build(config)
    out: dict[str, float] = {}
    try:
        token.reset_stats()
        started = time.perf_counter()
        await assembly.engine.check_many(objects, view, store, default_namespace="default")
        out["cold_s"] = time.perf_counter() - started
        out["cold_registry_requests"] = sum(assembly.registry.requests.values())
        out["cold_token_requests"] = len(token.requests)
        warm = []
        for _ in range(warm_runs):
            before = sum(assembly.registry.requests.values())
            started = time.perf_counter()
            await assembly.engine.check_many(objects, view, store, default_namespace="default")
            warm.append(time.perf_counter() - started)
            out["warm_registry_requests"] = sum(assembly.registry.requests.values()) - before
        out["warm_s"] = statistics.median(warm)
    finally:
        await assembly.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    token = TokenServer(USERS)
    for principal, pattern in TOKEN_ACL:
        token.grant(principal, pattern, ("pull",))
    token.start()
    basic = RegistryProcess("htpasswd", users=USERS).start()
    tok = RegistryProcess("token", token_server=token).start()
    try:
        with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
            demo = build_demo(Path(tmp), basic, tok, "bench")
            cli = cli_seconds(demo, args.runs)
            eng = asyncio.run(engine_runs(demo, token, args.runs))
    finally:
        basic.stop()
        tok.stop()
        token.stop()
    per_image = eng["cold_registry_requests"] / demo.images
    print(f"demo: 12 workloads, 14 images, {demo.images} distinct references; {args.runs} runs each")
    print("| measurement | value |")
    print("|---|---|")
    print(f"| CLI `pullguard check --output json`, fresh process (median) | {statistics.median(cli):.2f} s |")
    print(f"| CLI, fastest / slowest run | {min(cli):.2f} s / {max(cli):.2f} s |")
    print(f"| engine, first check in a process (cold caches) | {eng['cold_s'] * 1000:.0f} ms |")
    print(f"| engine, next checks (warm caches, median) | {eng['warm_s'] * 1000:.1f} ms |")
    cold = f"{eng['cold_registry_requests']:.0f} ({per_image:.1f} per distinct image)"
    print(f"| registry requests, cold check | {cold} |")
    print(f"| token-server requests, cold check | {eng['cold_token_requests']:.0f} |")
    print(f"| registry requests, warm check | {eng['warm_registry_requests']:.0f} |")


if __name__ == "__main__":
    main()
