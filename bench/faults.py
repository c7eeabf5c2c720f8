"""Fault table: each injected fault, its outcome, and the worst time pullguard took to say so.

Runs the fault tests (tests/test_faults.py through ``pullguard explain``, tests/webhook/
test_faults_served.py through the served webhook over TLS with ``?timeout=2s``, and
tests/test_netns_faults.py in a loopback-only network namespace) ``--rounds`` times with
``PULLGUARD_FAULT_TIMES`` set, so each test records its elapsed time, and prints the Markdown table
for the README from the worst time per fault. The tests assert outcomes, messages and "answered
before the deadline / ?timeout="; the figures are measurements, never assertions (STYLE: timings
live in bench/).

Usage: ``.venv/bin/python bench/faults.py [--rounds 3]``. Writes bench/results/faults.json.
Timings on a shared 2-core machine are noisy: re-run on a quiet one before quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import test_faults, test_netns_faults  # noqa: E402 - after the path is set
from tests.webhook import test_faults_served  # noqa: E402

TESTS = ["tests/test_faults.py", "tests/webhook/test_faults_served.py", "tests/test_netns_faults.py"]


#: the served-webhook case that injects the same fault as an explain case, where the names differ
SERVED_AS = {
    "registry-delay-beyond-timeout": "registry-never-answers",
    "registry-429-retry-after-seconds": "registry-429",
    "registry-wrong-digest-on-every-answer": "registry-wrong-digest",
    "token-delay-beyond-timeout": "token-never-answers",
}


def rows(times: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """(fault, outcome, worst via explain or the netns probe, worst via the served webhook)."""

    def fmt(key: str) -> str:
        return f"{times[key]:.2f} s" if key in times else "-"

    out: list[tuple[str, str, str, str]] = []
    for name, case in test_faults.CASES.items():
        served = SERVED_AS.get(name, name)
        out.append((name, case.outcome, fmt(name), fmt(f"served:{served}")))
    for timeout in test_faults_served.TIMEOUTS:
        key = f"served:never-answers-timeout-{timeout}"
        out.append(
            (f"registry never answers, ?timeout={timeout}", "timeout (allowed + warning)", "-", fmt(key))
        )
    kube = fmt("served:kubernetes-api-never-answers")
    out.append(("Kubernetes API holds every read, ?timeout=5s", "allowed + warning (safety net)", "-", kube))
    for name in test_netns_faults.REFUSED:
        out.append((f"netns: {name}", "refused-destination", fmt(f"netns:{name}"), "-"))
    for name in ("registry-octal-metadata", "redirect-to-octal-metadata"):  # httpx cannot parse them
        out.append((f"netns: {name}", "undetermined", fmt(f"netns:{name}"), "-"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "times.json"
        env = {**os.environ, "PULLGUARD_FAULT_TIMES": str(record)}
        for _ in range(args.rounds):
            command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS]
            done = subprocess.run(command, cwd=ROOT, env=env, check=False)
            if done.returncode != 0:
                print("the fault tests failed; no table", file=sys.stderr)
                return 1
        times = json.loads(record.read_text())
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "faults.json").write_text(json.dumps(times, indent=2, sort_keys=True))
    print(f"\n{args.rounds} rounds; worst time per fault (explain: requestSeconds 1, deadlineSeconds 3; ")
    print("served: default timeouts, ?timeout=2s)\n")
    print("| fault | outcome | worst, `pullguard explain` | worst, served webhook |")
    print("|---|---|---|---|")
    for fault, outcome, explain, served in rows(times):
        print(f"| {fault} | {outcome} | {explain} | {served} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
