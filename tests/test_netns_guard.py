"""Metadata addresses, inside a network namespace that has only loopback (DESIGN 6).

Each probe runs under ``unshare --net`` (root is available here and in CI), brings ``lo`` up and
puts 169.254.169.254 and fd00:ec2::254 on it, where fake metadata servers count connections. So
even a broken guard could reach nothing but those fakes: no packet leaves the machine. The
probes print JSON; these tests assert on it.

* tests/netns/metadata_probe.py: the guarded HTTP client with every spelling of the address
  (decimal, hex, short forms, IPv4-mapped, NAT64, 6to4, names), a redirect, and — as controls —
  the same servers reached with allowLinkLocal and with an unguarded client.
* tests/netns/registry_probe.py: pullguard's registry client and ``pullguard explain``: the
  image's registry host, redirects and token realms at the metadata service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SETUP = (
    "ip link set lo up && ip addr add 169.254.169.254/32 dev lo && "
    'ip -6 addr add fd00:ec2::254/128 dev lo && exec "$0" "$@"'
)


def _probe(script: str, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [
            "unshare",
            "--net",
            "--",
            "sh",
            "-c",
            SETUP,
            sys.executable,
            str(ROOT / "tests" / "netns" / script),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def metadata() -> dict[str, Any]:
    return _probe("metadata_probe.py")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _probe("registry_probe.py", str(tmp_path_factory.mktemp("netns")))


def test_probes_run_in_a_namespace_with_only_loopback(
    metadata: dict[str, Any], registry: dict[str, Any]
) -> None:
    assert metadata["interfaces"] == ["lo"] and registry["interfaces"] == ["lo"]


def test_guarded_client_refuses_every_spelling_and_the_servers_see_nothing(metadata: dict[str, Any]) -> None:
    report = metadata
    refused = dict(report["refused"])
    # A 302 the client does not follow is only a status; following it is refused (the "redirect" case).
    assert refused.pop("redirect-status-unfollowed")["status"] == 302
    assert {k: v.get("error") for k, v in refused.items()} == dict.fromkeys(
        refused, "DestinationRefusedError"
    )
    assert report["counts_after_refused"] == {
        "imds_v4": {"connections": 0, "requests": 0},
        "imds_v6": {"connections": 0, "requests": 0},
    }
    assert report["registry_requests"] == 2  # the redirector answered both redirect cases; the target never


def test_the_controls_show_the_guard_is_what_blocks(metadata: dict[str, Any]) -> None:
    report = metadata
    # allowLinkLocal reaches both fakes: the network would have delivered the refused requests
    assert report["allowed"]["v4"]["status"] == 200 and report["allowed"]["v6"]["status"] == 200
    # without the guard, these spellings really reach the metadata server
    reached = report["unguarded_reached"]
    assert reached["dotted"] and reached["decimal"] and reached["imds-v6"], reached


def test_pullguard_refuses_registry_hosts_redirects_and_realms_at_the_metadata_service(
    tmp_path: Path,
) -> None:
    report = _probe("registry_probe.py", str(tmp_path))
    cases = report["cases"]
    assert len(cases) == 12
    for name, case in cases.items():
        assert case["outcome"] == "refused-destination", (name, case)
        assert "cloud metadata address" in case["detail"] and "network.allowLinkLocal" in case["detail"], name
    assert report["imds_connections_after_client"] == 0
    assert report["registry_requests"] == 10  # the allowed registry answered every redirect/realm case


def test_explain_at_the_metadata_service_is_refused_and_says_how_to_allow_it(
    registry: dict[str, Any],
) -> None:
    cli = registry["cli"]
    assert cli["connections"] == 0
    assert cli["exit_code"] == 1
    assert cli["json"]["outcome"] == "refused-destination"
    assert "allowLinkLocal" in cli["json"]["fix"]
