"""Faults and names aimed at the metadata service and loopback, with the real registry, in a netns.

tests/netns/fault_probe.py runs under ``unshare --net --mount`` with only ``lo`` (DESIGN 6): the real
registry and token server behind tests/infra/fault_proxy.py on 10.77.0.1, pullguard with the
default policy (``allowLoopback`` and ``allowLinkLocal`` off), a private /etc/hosts and a DNS
server whose answer changes after the first query. What is asserted is what ``pullguard explain``
prints: the outcome, the message naming the address and the key that would allow it, and that the
fake metadata servers on 169.254.169.254 and [fd00:ec2::254] accepted no connection at all.
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
    "ip link set lo up && ip addr add 169.254.169.254/32 dev lo && ip addr add 10.77.0.1/32 dev lo && "
    'ip -6 addr add fd00:ec2::254/128 dev lo && exec "$0" "$@"'
)
METADATA = ("cloud metadata address", "network.allowLinkLocal")
LOOPBACK = ("loopback address", "network.allowLoopback")

#: case -> (what the address is, fragments of the message in order)
REFUSED = {
    "realm-on-loopback": ("127.0.0.1 is a", *LOOPBACK),
    "realm-on-link-local-metadata": ("169.254.169.254 is a", *METADATA),
    "realm-on-imds-v6": ("fd00:ec2::254 is a", *METADATA),
    "realm-on-a-name-for-metadata": ("imds.test (169.254.169.254)", *METADATA),
    "redirect-to-metadata": ("169.254.169.254 is a", *METADATA),
    "redirect-to-decimal-metadata": ("2852039166 denotes 169.254.169.254", *METADATA),
    "redirect-to-mapped-metadata": ("::ffff:169.254.169.254 denotes 169.254.169.254", *METADATA),
    "redirect-to-a-name-for-metadata": ("imds.test (169.254.169.254)", *METADATA),
    "registry-decimal-metadata": ("2852039166 denotes 169.254.169.254", *METADATA),
    "registry-hex-metadata": ("0xa9fea9fe denotes 169.254.169.254", *METADATA),
    "registry-short-metadata": ("169.254.43518 denotes 169.254.169.254", *METADATA),
    "name-imds.test": ("imds.test (169.254.169.254)", *METADATA),
    "name-imds6.test": ("imds6.test (fd00:ec2::254)", *METADATA),
    "name-mapped.test": ("::ffff:169.254.169.254 denotes 169.254.169.254", *METADATA),
    "name-ll6.test": ("fe80::1 is a link-local address", "network.allowLinkLocal"),
    "name-loop.test": ("loop.test (127.0.0.1)", *LOOPBACK),
    "name-loop6.test": ("loop6.test (::1)", *LOOPBACK),
    "name-mapped-loop.test": ("::ffff:127.0.0.1 denotes 127.0.0.1", *LOOPBACK),
    "dns-rebinding": ("rebind.test (169.254.169.254)", *METADATA),
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["PYTHONPATH"] = str(ROOT)
    script = str(ROOT / "tests" / "netns" / "fault_probe.py")
    directory = str(tmp_path_factory.mktemp("netns-faults"))
    done = subprocess.run(
        ["unshare", "--net", "--mount", "--", "sh", "-c", SETUP, sys.executable, script, directory],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    _record_times(report)
    return report


def _record_times(report: dict[str, Any]) -> None:
    """With ``PULLGUARD_FAULT_TIMES``, keep each case's worst elapsed time (bench/faults.py reads it)."""
    target = os.environ.get("PULLGUARD_FAULT_TIMES")
    if not target:
        return
    path = Path(target)
    old = json.loads(path.read_text()) if path.exists() else {}
    for name, case in report["cases"].items():
        key = f"netns:{name}"
        old[key] = max(float(case["elapsed"]), old.get(key, 0.0))
    path.write_text(json.dumps(old, indent=2, sort_keys=True))


def _in_order(text: str, fragments: tuple[str, ...]) -> bool:
    at = 0
    for fragment in fragments:
        found = text.find(fragment, at)
        if found < 0:
            return False
        at = found + len(fragment)
    return True


def test_the_namespace_has_only_loopback_and_its_own_names(probe: dict[str, Any]) -> None:
    assert probe["interfaces"] == ["lo"]
    assert probe["resolved"]["imds.test"] == ["169.254.169.254"]
    assert probe["resolved"]["mapped.test"] == ["::ffff:169.254.169.254"]
    assert probe["resolved"]["loop6.test"] == ["::1"]


@pytest.mark.parametrize("name", ["control-address", "control-name-from-etc-hosts"])
def test_the_controls_pull_through_the_proxy_with_the_default_policy(
    probe: dict[str, Any], name: str
) -> None:
    case = probe["cases"][name]
    assert (case["outcome"], case["exit_code"]) == ("pullable", 0), case
    assert case["proxy_requests"] >= 2  # challenge, then the authorised HEAD (and the manifest)


@pytest.mark.parametrize("name", list(REFUSED))
def test_every_form_aimed_at_metadata_or_loopback_is_refused_naming_the_key(
    probe: dict[str, Any], name: str
) -> None:
    case = probe["cases"][name]
    assert (case["outcome"], case["exit_code"]) == ("refused-destination", 1), case
    assert _in_order(case["message"], REFUSED[name]), case["message"]


def test_the_metadata_servers_accepted_no_connection(probe: dict[str, Any]) -> None:
    assert probe["imds_connections"] == 0


def test_an_octal_metadata_address_httpx_cannot_parse_is_never_contacted_and_not_a_crash(
    probe: dict[str, Any],
) -> None:
    # glibc reads 0251.0376.0251.0376 as 169.254.169.254; httpx refuses to parse it. Never contacted.
    case = probe["cases"]["registry-octal-metadata"]
    assert (case["outcome"], case["exit_code"]) == ("undetermined", 3), case
    assert "0251.0376.0251.0376" in case["message"] and "169.254.169.254" in case["message"]
    assert case["proxy_requests"] == 0


def test_a_redirect_to_an_octal_metadata_address_is_never_followed_and_says_why(
    probe: dict[str, Any],
) -> None:
    case = probe["cases"]["redirect-to-octal-metadata"]
    assert (case["outcome"], case["exit_code"]) == ("undetermined", 3), case
    assert "redirected to a URL pullguard cannot use" in case["message"], case["message"]
    assert "0251.0376.0251.0376" in case["message"]


def test_dns_rebinding_gets_the_allowed_answer_first_and_never_connects_to_the_second(
    probe: dict[str, Any],
) -> None:
    dns = probe["dns"]
    assert dns["answered"][0] == ["rebind.test", "10.77.0.1"]
    assert ["rebind.test", "169.254.169.254"] in dns["answered"]
    # The first connection (to the checked 10.77.0.1) reached the registry; the second lookup's
    # answer was checked again and refused, and the metadata server saw nothing.
    case = probe["cases"]["dns-rebinding"]
    assert case["proxy_requests"] == 1
    assert probe["rebind_resolves_now_to"] == ["169.254.169.254"]
    assert probe["imds_connections"] == 0
