"""``make bench``: every benchmark of the benchmark issue, one Markdown table, one summary file.

Runs ``bench.admission.rows()`` (B1 warm admission at fixed rates and at its maximum, B6 memory:
``pullguard serve`` over TLS under a load generator in its own process) and, when it is present,
``bench.cost.rows()`` (B2–B5: registry requests and wall time of cold checks, fan-out, stampede
and CI). Prints the machine (``harness.machine()``) and one table (``harness.render_table``) —
each scenario's goal, the measured figure beside it, met or missed — and writes it all to
``bench/results/summary.json``. The figures of each module are in ``bench/results/*.json``.

The latency scenarios this script used to run (one connection, sequential; uncached tags;
``Reviewer.review`` in-process) are gone: B1's lowest fixed rate is the sequential case under
a realistic arrival pattern, and B2 measures the cold check against containerd and skopeo.

Usage: ``.venv/bin/python bench/run.py [--quick]`` (``--quick``: short phases, for a smoke run).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import admission  # noqa: E402
from bench.harness import Row, machine, render_table  # noqa: E402


def collect(quick: bool) -> list[Row]:
    rows = list(admission.rows(quick))
    if (ROOT / "bench" / "cost.py").exists():
        cost = importlib.import_module("bench.cost")
        rows.extend(cost.rows(quick))
    return sorted(rows, key=lambda r: r.scenario)  # B1 … B6, each module's order kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short phases: a smoke run, not figures")
    args = parser.parse_args()
    began = time.monotonic()
    rows = collect(args.quick)
    host = machine()
    print(f"machine: {json.dumps(host)} (client, webhook and registries on this one host)\n")
    print(render_table(rows))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "machine": host,
        "quick": args.quick,
        "seconds": round(time.monotonic() - began, 1),
        "rows": [dataclasses.asdict(r) for r in rows],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
