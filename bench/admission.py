"""B1 warm admission and B6 memory: ``pullguard serve`` under the API server's load, over TLS.

B1: a Deployment with three containers whose verdicts are cached (each image checked once before
the measurement; then no registry request is made) is POSTed as AdmissionReviews by
``bench/loadgen.py`` in its own process — keep-alive HTTPS connections, ``TCP_NODELAY``,
``?timeout=10s``, a fresh uid per review, as the API server sends them:

* **fixed rates** (open loop): p50/p99 latency at 250/500/1000/1500 reviews per second, counted
  from each request's *scheduled* send time, so queueing in front of a saturated server is
  measured rather than hidden (coordinated omission). A rate the server cannot follow is cut
  once it falls half a second behind and reported as such;
* **maximum** (closed loop): 16 connections, each sending its next review as soon as the answer
  arrived: admissions per second.

Both for ``--workers 1`` and for the recommended count (one per usable CPU,
``webhook.prefork.recommended_workers``).

B6: the resident memory of the serve process and all its workers, summed from ``/proc`` every
0.2 s while B1 runs (``VmRSS``; with workers also ``Pss`` from ``smaps_rollup``, which does not
count pages the workers share with their parent twice); peak and steady (the median of the
closed-loop phase) per worker count.

What it is not: a test (no timed asserts, standard 5); a measurement of cold checks (B2–B5,
``bench/cost.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import Row, machine, percentiles, render_table, serve  # noqa: E402
from bench.loadgen import UID  # noqa: E402
from tests.infra.images import push_index  # noqa: E402
from tests.infra.registry import RegistryProcess  # noqa: E402
from tests.support.reviews import deployment, review  # noqa: E402
from webhook.prefork import recommended_workers  # noqa: E402

RATES = (250, 500, 1000, 1500)
P99_GOAL_MS = 5.0
THROUGHPUT_GOAL = 1500
RSS_GOAL_MB = 150
CONNECTIONS = 16
LOADGEN = Path(__file__).resolve().parent / "loadgen.py"


@dataclass
class Memory:
    """RSS (and PSS) of a process tree, sampled in a thread."""

    pid: int
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (t, rss MB, pss MB)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            rss = pss = 0.0
            for pid in _tree(self.pid):
                rss += _status_kb(pid, "VmRSS") / 1024
                pss += _rollup_kb(pid, "Pss") / 1024
            self.samples.append((time.monotonic(), rss, pss))

    def between(self, t0: float, t1: float) -> list[tuple[float, float, float]]:
        return [s for s in self.samples if t0 <= s[0] <= t1]


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` (``proc(5)`` stat fields 14 and 15, clock ticks)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def _rollup_kb(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(key + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def load(job: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(LOADGEN)], input=json.dumps(job), capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"the load generator failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout))


def review_body(images: list[str]) -> str:
    doc = review(deployment("web", "shop", images), uid=UID.decode())
    return json.dumps(doc)


def measure(
    workers: int, quick: bool, tmp: Path, registry: RegistryProcess, images: list[str]
) -> dict[str, Any]:
    """B1 and B6 for one worker count."""
    config = {"network": {"allowLoopback": True, "plainHttp": [registry.host]}}
    seconds = 2.0 if quick else 6.0
    out: dict[str, Any] = {"workers": workers, "rates": {}}
    with serve(config, tmp, ["--workers", str(workers)]) as webhook:
        ca_file = tmp / "ca.pem"
        webhook.ca.cert_pem.write_to_path(str(ca_file))
        body = review_body(images)
        base = {"url": webhook.url, "ca_file": str(ca_file), "body": body, "connections": CONNECTIONS}
        # every worker checks the images once (the caches are per worker): enough reviews that
        # each worker answered some before anything is measured
        load({**base, "mode": "closed", "seconds": 1.0, "warmup": 0.0})
        memory = Memory(webhook.pid)
        memory.start()
        for rate in RATES:
            result = load({**base, "mode": "open", "rate": rate, "seconds": seconds, "warmup": 0.5})
            stats = percentiles(result["latencies"]) if result["latencies"] else {}
            out["rates"][rate] = {
                **stats,
                "errors": result["errors"],
                "overloaded": result["overloaded"],
                "release_lateness_p99_ms": result["release_lateness_p99_ms"],
                "client_cpu_share": result["client_cpu_share"],
            }
        t0 = time.monotonic()
        cpu0 = _cpu_seconds(_tree(webhook.pid))
        result = load({**base, "mode": "closed", "seconds": seconds, "warmup": 0.5})
        cpu = _cpu_seconds(_tree(webhook.pid)) - cpu0
        t1 = time.monotonic()
        memory.stop()
        out["max"] = {
            **percentiles(result["latencies"]),
            "per_second": len(result["latencies"]) / result["seconds"],
            # CPU the server spent per review: unlike latency, not inflated by a busy machine
            "server_cpu_ms": 1000 * cpu / max(1, result["sent"]),
            "errors": result["errors"],
            "client_cpu_share": result["client_cpu_share"],
        }
        steady = memory.between(t0, t1) or memory.samples
        out["memory"] = {
            "peak_rss_mb": max(s[1] for s in memory.samples),
            "steady_rss_mb": statistics.median(s[1] for s in steady),
            "peak_pss_mb": max(s[2] for s in memory.samples),
            "steady_pss_mb": statistics.median(s[2] for s in steady),
            "processes": len(_tree(webhook.pid)),
        }
    return out


def collect(quick: bool = False) -> list[dict[str, Any]]:
    counts = sorted({1, recommended_workers()})
    results = []
    with RegistryProcess("noauth") as registry, tempfile.TemporaryDirectory() as tmp:
        images = []
        for i, name in enumerate(("api", "sidecar", "metrics")):
            push_index(registry, f"bench/{name}", "1.0")
            images.append(f"{registry.host}/bench/{name}:1.0")
            del i
        for workers in counts:
            sub = Path(tmp) / f"w{workers}"
            sub.mkdir()
            results.append(measure(workers, quick, sub, registry, images))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "admission.json").write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return results


def to_rows(results: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for r in results:
        w = r["workers"]
        label = f"{w} worker{'s' if w > 1 else ''}"
        for rate, s in r["rates"].items():
            if not s.get("n"):
                rows.append(Row("B1", f"warm admission at {rate}/s, {label}", "", "no answer", False))
                continue
            figure = f"p50 {s['p50_ms']:.2f} ms, p99 {s['p99_ms']:.2f} ms"
            if s["overloaded"]:
                figure += " (overloaded: fell 0.5 s behind the schedule)"
            if s["release_lateness_p99_ms"] > 2.0:  # the load generator itself was short of CPU
                figure += f" (client released requests up to {s['release_lateness_p99_ms']:.0f} ms late, p99)"
            met = s["p99_ms"] <= P99_GOAL_MS and not s["overloaded"] and not s["errors"]
            rows.append(
                Row(
                    "B1",
                    f"warm admission at {rate}/s, {label}: p50, p99",
                    f"p99 ≤ {P99_GOAL_MS:g} ms",
                    figure,
                    met,
                )
            )
        m = r["max"]
        rows.append(
            Row(
                "B1",
                f"maximum warm admissions/s, {label} ({CONNECTIONS} connections; p99 {m['p99_ms']:.1f} ms; "
                f"server CPU {m['server_cpu_ms']:.2f} ms per admission; load generator "
                f"{m['client_cpu_share']:.2f} CPU)",
                f"≥ {THROUGHPUT_GOAL:,}/s",
                f"{m['per_second']:,.0f}/s",
                m["per_second"] >= THROUGHPUT_GOAL and not m["errors"],
            )
        )
        mem = r["memory"]
        pss = f" (PSS {mem['peak_pss_mb']:.0f} MB)" if w > 1 else ""
        rows.append(
            Row(
                "B6",
                f"RSS during B1, {label}, {mem['processes']} process{'es' if mem['processes'] > 1 else ''}: "
                "peak",
                f"≤ {RSS_GOAL_MB} MB",
                f"{mem['peak_rss_mb']:.0f} MB{pss}",
                mem["peak_rss_mb"] <= RSS_GOAL_MB,
            )
        )
        rows.append(
            Row(
                "B6",
                f"RSS during B1, {label}: steady (median under maximum load)",
                f"≤ {RSS_GOAL_MB} MB",
                f"{mem['steady_rss_mb']:.0f} MB",
                mem["steady_rss_mb"] <= RSS_GOAL_MB,
            )
        )
    return rows


def rows(quick: bool = False) -> list[Row]:
    """The B1 and B6 rows of ``make bench``."""
    return to_rows(collect(quick))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per rate instead of 6 s")
    args = parser.parse_args()
    print(json.dumps(machine()))
    print(render_table(rows(args.quick)))


if __name__ == "__main__":
    main()
