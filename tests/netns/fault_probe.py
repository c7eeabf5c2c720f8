"""The real registry behind the fault proxy, aimed at metadata and loopback, in a loopback-only netns.

Run only by tests/test_netns_faults.py, as ``unshare --net --mount -- sh -c '<SETUP>' python
tests/netns/fault_probe.py DIR``: the namespace has only ``lo``, carrying 127.0.0.1, ::1,
169.254.169.254, fd00:ec2::254 and 10.77.0.1 (private space, which the default policy allows, so
pullguard runs with ``allowLoopback`` off as in production). The script refuses to run unless
``lo`` is the only interface, so a broken guard reaches nothing but the fake metadata servers here.

It gives the namespace its own name service: a private /etc/hosts (bind-mounted; the mount
namespace keeps it from the host) mapping test names to loopback, metadata, IPv6 and IPv4-mapped
addresses, and a private /etc/resolv.conf pointing at tests/netns/dns.py, whose answer for
``rebind.test`` changes after the first query (DNS rebinding). pullguard resolves with the C library
(``getaddrinfo``), so these are the answers a cluster's resolver could give it.

Then the real ``docker-registry`` (token auth, the real token server) runs on 127.0.0.1, and
tests/infra/fault_proxy.py serves it on 10.77.0.1. Each case is ``pullguard explain --output json``
through that proxy with one fault or one hostile name; the JSON printed on the last line of stdout
holds each case's outcome, message, exit code and elapsed time, what the fake metadata servers
accepted (the test asserts nothing), and what the DNS server answered.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from tests.infra.fault_proxy import Fault, FaultProxy, Rule
from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.infra.tokenserver import TokenServer
from tests.netns.dns import RebindingDNS
from tests.netns.servers import CountingServer
from webhook.cli import cli

IMDS_V4 = "169.254.169.254"
IMDS_V6 = "fd00:ec2::254"
PRIVATE = "10.77.0.1"
MANIFEST = r"/v2/.+/manifests/"
#: /etc/hosts in the namespace: name -> address (IPv6 and IPv4-mapped forms included)
HOSTS = {
    "registry.test": PRIVATE,
    "imds.test": IMDS_V4,
    "loop.test": "127.0.0.1",
    "loop6.test": "::1",
    "imds6.test": IMDS_V6,
    "mapped.test": "::ffff:169.254.169.254",
    "mapped-loop.test": "::ffff:127.0.0.1",
    "ll6.test": "fe80::1",
}
#: the rebinding name: the first A query gets the allowed address, every later one the metadata one
REBIND = {"rebind.test": [PRIVATE, IMDS_V4]}


def require_loopback_only_namespace() -> None:
    interfaces = [name for _index, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        sys.exit(f"refusing to run: this namespace has interfaces {interfaces}, not only lo")


def private_name_service(directory: Path) -> None:
    """Bind-mount our own /etc/hosts and /etc/resolv.conf (only this mount namespace sees them)."""
    hosts = directory / "hosts"
    hosts.write_text("".join(f"{address}\t{name}\n" for name, address in HOSTS.items()))
    resolv = directory / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    for source, target in ((hosts, "/etc/hosts"), (resolv, "/etc/resolv.conf")):
        subprocess.run(["mount", "--bind", str(source), target], check=True)


def resolved(name: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except OSError as exc:
        return [f"error: {exc}"]
    return sorted({str(info[4][0]) for info in infos})


def main(directory: Path) -> dict[str, Any]:
    require_loopback_only_namespace()
    private_name_service(directory)
    out: dict[str, Any] = {"interfaces": [n for _i, n in socket.if_nameindex()]}
    out["resolved"] = {name: resolved(name) for name in HOSTS}
    tokens = TokenServer({"alice": "s3cret-ALICE"})
    tokens.allow_anonymous("public/*")
    with (
        CountingServer(IMDS_V4, 80) as imds4,
        CountingServer(IMDS_V6, 80) as imds6,
        RebindingDNS(REBIND) as dns,
        tokens,
        RegistryProcess("token", token_server=tokens) as registry,
        FaultProxy(registry.url, host=PRIVATE) as proxy,
        FaultProxy(tokens.url, host=PRIVATE) as token_proxy,
    ):
        push_image(registry, "public/app", "v1")
        port = proxy.port
        to_token_proxy = Rule(r"^/v2/", Fault.realm(f"{token_proxy.url}/token"))

        def realm(url: str) -> list[Rule]:
            return [Rule(r"^/v2/", Fault.realm(url))]

        def redirect(url: str) -> list[Rule]:
            return [Rule(MANIFEST, Fault.redirect(url)), to_token_proxy]

        cases: dict[str, tuple[str, list[Rule]]] = {
            "control-address": (PRIVATE, [to_token_proxy]),
            "control-name-from-etc-hosts": ("registry.test", [to_token_proxy]),
            "realm-on-loopback": (PRIVATE, []),  # the real registry's own realm: 127.0.0.1
            "realm-on-link-local-metadata": (PRIVATE, realm(f"http://{IMDS_V4}/latest/api/token")),
            "realm-on-imds-v6": (PRIVATE, realm(f"http://[{IMDS_V6}]/latest/api/token")),
            "realm-on-a-name-for-metadata": (PRIVATE, realm("http://imds.test/latest/api/token")),
            "redirect-to-metadata": (PRIVATE, redirect(f"http://{IMDS_V4}/latest/meta-data/")),
            "redirect-to-decimal-metadata": (PRIVATE, redirect("http://2852039166/latest/meta-data/")),
            "redirect-to-mapped-metadata": (PRIVATE, redirect(f"http://[::ffff:{IMDS_V4}]/latest/")),
            "redirect-to-a-name-for-metadata": (PRIVATE, redirect("http://imds.test/latest/meta-data/")),
            "redirect-to-octal-metadata": (PRIVATE, redirect("http://0251.0376.0251.0376/latest/meta-data/")),
            "registry-decimal-metadata": ("2852039166", []),
            "registry-hex-metadata": ("0xA9FEA9FE", []),
            "registry-short-metadata": ("169.254.43518", []),
            "registry-octal-metadata": ("0251.0376.0251.0376", []),
            "dns-rebinding": ("rebind.test", [to_token_proxy]),
        }
        for name in HOSTS:
            if name != "registry.test":
                cases[f"name-{name}"] = (name, [])
        plain = sorted({f"{host}:{port}" for host, _rules in cases.values()})
        config = directory / "pullguard.json"
        config.write_text(
            json.dumps(
                {
                    "network": {"plainHttp": plain},
                    "timeouts": {"requestSeconds": 1, "deadlineSeconds": 3},
                }
            )
        )
        results: dict[str, Any] = {}
        for label, (host, rules) in cases.items():
            proxy.clear()
            token_proxy.clear()
            for rule in rules:
                proxy.add(Rule(rule.path, rule.fault, method=rule.method))
            started = time.monotonic()
            result = CliRunner().invoke(
                cli, ["explain", "--config", str(config), "--output", "json", f"{host}:{port}/public/app:v1"]
            )
            elapsed = time.monotonic() - started
            try:
                doc = json.loads(result.stdout)
            except ValueError:
                doc = {"outcome": "no-json", "message": (result.stdout + result.stderr)[-400:]}
            results[label] = {
                "outcome": doc.get("outcome"),
                "message": doc.get("message"),
                "exit_code": result.exit_code,
                "elapsed": round(elapsed, 3),
                "proxy_requests": len(proxy.requests()),
            }
        out["cases"] = results
        out["imds_connections"] = imds4.connections + imds6.connections
        out["dns"] = {"asked": dns.asked, "answered": dns.answered}
        out["rebind_resolves_now_to"] = resolved("rebind.test")
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1])), sort_keys=True))
