"""What every benchmark in ``bench/`` shares: the served webhook, the result table, the machine.

``make bench`` (``bench/run.py``) runs the scenarios B1–B6 of the benchmark issue and prints one
Markdown table: each scenario's goal, the measured figure beside it, and whether it was met. Each
scenario module returns :class:`Row` values; this module renders them and records the machine, so
a figure is never quoted without the host and date it was measured on.

``serve`` runs ``pullguard serve`` as its own process — uvicorn, TLS 1.3 with a trustme
certificate, the engine and its caches, one JSON log line per admission — exactly as in a
cluster, minus the cluster; the benchmark's client lives in another process, as the API server
does.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import ssl
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trustme
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.webhook import NODELAY, write_cert  # noqa: E402

PULLGUARD = Path(sys.executable).parent / "pullguard"


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table: a scenario, its goal, what was measured, and the verdict."""

    scenario: str  # "B1", "B2", ...
    what: str  # what was measured, in words
    goal: str  # e.g. "p99 ≤ 5 ms"
    measured: str  # e.g. "2.83 ms"
    met: bool | None  # None: informative, no goal


def render_table(rows: Sequence[Row]) -> str:
    """The Markdown table README.md carries."""
    lines = ["| | what | goal | measured | |", "|---|---|---|---|---|"]
    for r in rows:
        mark = "" if r.met is None else ("met" if r.met else "**missed**")
        lines.append(f"| {r.scenario} | {r.what} | {r.goal} | {r.measured} | {mark} |")
    return "\n".join(lines)


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean in milliseconds of samples in seconds (nearest-rank)."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": pick(0.50),
        "p90_ms": pick(0.90),
        "p99_ms": pick(0.99),
        "max_ms": ordered[-1] * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000,
    }


def machine() -> dict[str, Any]:
    """The host a figure was measured on."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
    }


class Served:
    """``pullguard serve`` in a child process, and clients for it."""

    def __init__(self, url: str, ca: trustme.CA, proc: subprocess.Popen[str]) -> None:
        self.url = url
        self.ca = ca
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def client(self) -> httpx.Client:
        transport = httpx.HTTPTransport(verify=self.ssl_context(), socket_options=NODELAY)
        return httpx.Client(base_url=self.url, transport=transport, timeout=30)

    def registry_requests(self) -> float:
        """Requests pullguard sent to registries so far (its own ``/metrics``)."""
        with self.client() as client:
            text = client.get("/metrics").text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("pullguard_registry_request_duration_seconds_count")
        )


@contextmanager
def serve(config: dict[str, Any], tmp: Path, extra_args: Sequence[str] = ()) -> Iterator[Served]:
    """Run ``pullguard serve`` with ``config`` on a free port until the block ends."""
    ca = trustme.CA()
    cert, key = write_cert(ca, tmp / "certs")
    config_file = tmp / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    command = [str(PULLGUARD), "serve", "--config", str(config_file), "--port", "0", *extra_args]
    proc = subprocess.Popen(
        [*command, "--tls-cert", str(cert), "--tls-key", str(key)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=tmp,
    )
    assert proc.stderr is not None
    url = None
    for line in proc.stderr:
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("msg") == "listening":
            url = doc["url"]
            break
    if url is None:
        raise SystemExit("pullguard serve did not start")
    stream = proc.stderr
    threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()  # keep draining the log
    try:
        yield Served(url, ca, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
