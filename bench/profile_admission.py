"""Where a warm admission's CPU goes: py-spy on ``pullguard serve`` under the B1 load.

Starts the registry and ``pullguard serve --workers 1`` as ``bench/admission.py`` does, drives it
with ``bench/loadgen.py`` (closed loop, 16 connections) and, meanwhile, samples the server with
``py-spy record --format raw`` (collapsed stacks; ``pip install py-spy``). Prints the server's CPU
time per admission (``/proc/<pid>/stat`` utime + stime over the reviews answered — unlike
latency, not inflated by other processes on the machine) and the functions holding the most
samples, inclusive and self. ``--svg`` writes a flame graph instead of the raw stacks.

Usage: ``.venv/bin/python bench/profile_admission.py [--seconds 8] [--svg profile.svg]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.admission import CONNECTIONS, load, review_body  # noqa: E402
from bench.harness import serve  # noqa: E402
from tests.infra.images import push_index  # noqa: E402
from tests.infra.registry import RegistryProcess  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (``proc(5)``: fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def top(raw: str, n: int = 60) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += k
        own[frames[-1]] += k
    return inclusive.most_common(n), own.most_common(n), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--svg", help="write a flame graph here instead of printing stacks")
    parser.add_argument("--raw", help="also keep the collapsed stacks in this file")
    args = parser.parse_args()
    with RegistryProcess("noauth") as registry, tempfile.TemporaryDirectory() as tmp:
        images = []
        for name in ("api", "sidecar", "metrics"):
            push_index(registry, f"bench/{name}", "1.0")
            images.append(f"{registry.host}/bench/{name}:1.0")
        config = {"network": {"allowLoopback": True, "plainHttp": [registry.host]}}
        with serve(config, Path(tmp), ["--workers", "1"]) as webhook:
            ca_file = Path(tmp) / "ca.pem"
            webhook.ca.cert_pem.write_to_path(str(ca_file))
            base = {"url": webhook.url, "ca_file": str(ca_file), "body": review_body(images)}
            base["connections"] = CONNECTIONS
            load({**base, "mode": "closed", "seconds": 1.0, "warmup": 0.0})
            before = cpu_seconds(webhook.pid)
            out = Path(tmp) / ("profile.svg" if args.svg else "profile.txt")
            fmt = "flamegraph" if args.svg else "raw"
            seconds = str(int(args.seconds))
            spy = [str(PY_SPY), "record", "-r", "250", "-d", seconds, "-f", fmt, "-o", str(out)]
            result: dict[str, object] = {}

            def drive() -> None:
                result.update(load({**base, "mode": "closed", "seconds": args.seconds, "warmup": 0.3}))

            driver = threading.Thread(target=drive)
            driver.start()
            subprocess.run([*spy, "--pid", str(webhook.pid)], check=True, capture_output=True)
            driver.join()
            used = cpu_seconds(webhook.pid) - before
            answered = int(result["sent"])  # type: ignore[call-overload]
            print(json.dumps({"answered": answered, "server_cpu_ms_per_admission": 1000 * used / answered}))
            if args.svg:
                Path(args.svg).write_bytes(out.read_bytes())
                return
            if args.raw:
                Path(args.raw).write_text(out.read_text())
            inclusive, own, total = top(out.read_text())
            print(f"\n{total} samples; inclusive:")
            for frame, k in inclusive:
                print(f"{100 * k / total:5.1f}%  {frame}")
            print("\nself:")
            for frame, k in own:
                print(f"{100 * k / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
