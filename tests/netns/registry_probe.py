"""Point pullguard itself (registry client and CLI) at the metadata service, in a loopback-only netns.

Run only by tests/test_netns_guard.py, as
``unshare --net -- sh -c 'ip link set lo up && ip addr add 169.254.169.254/32 dev lo &&
ip -6 addr add fd00:ec2::254/128 dev lo && exec python tests/netns/registry_probe.py'``.
It refuses to run unless ``lo`` is the only interface, so a broken guard reaches nothing but
the fake metadata servers started here (DESIGN 6).

Where metadata addresses come from in real life, and so in each case here: an image reference
whose registry host is the address; a registry (allowed: a scripted one on 127.0.0.1, since
``allowLoopback`` is on) that redirects there in any spelling; a registry whose Bearer challenge
names a token realm there. Prints one JSON object: each case's outcome and message, and the
connections the fake metadata servers accepted (the test asserts zero).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from click.testing import CliRunner

from tests.netns.servers import CountingServer
from tests.support.online import client, ref
from tests.support.scripted import Reply, ScriptedServer
from webhook.cli import cli

IMDS_V4 = "169.254.169.254"
IMDS_V6 = "fd00:ec2::254"
SPELLINGS = {
    "dotted": IMDS_V4,
    "decimal": "2852039166",
    "hex": "0xA9FEA9FE",
    "v4-mapped": "[::ffff:169.254.169.254]",
    "imds-v6": f"[{IMDS_V6}]",
}


def require_loopback_only_namespace() -> None:
    interfaces = [name for _index, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        sys.exit(f"refusing to run: this namespace has interfaces {interfaces}, not only lo")


async def main() -> dict[str, Any]:
    require_loopback_only_namespace()
    out: dict[str, Any] = {"interfaces": [n for _i, n in socket.if_nameindex()], "cases": {}}
    with (
        CountingServer(IMDS_V4, 80) as imds4,
        CountingServer(IMDS_V6, 80) as imds6,
        ScriptedServer("127.0.0.1") as registry,
    ):
        cases: list[tuple[str, str]] = []
        # 1. the image's registry host is the metadata service
        for label in ("dotted", "imds-v6"):
            host = SPELLINGS[label]
            cases.append((f"registry-host-{label}", f"{host}/latest/meta-data:v1"))
        # 2. an allowed registry redirects there; 3. an allowed registry names a realm there
        for label, host in SPELLINGS.items():
            repo = f"redirect-{label}"
            registry.route(
                "HEAD",
                f"/v2/{repo}/manifests/v1",
                Reply(302, {"Location": f"http://{host}/latest/meta-data/"}),
            )
            cases.append((f"redirect-{label}", f"{registry.netloc}/{repo}:v1"))
            repo = f"realm-{label}"
            challenge = f'Bearer realm="http://{host}/latest/api/token",service="imds"'
            registry.route("HEAD", f"/v2/{repo}/manifests/v1", Reply(401, {"WWW-Authenticate": challenge}))
            cases.append((f"realm-{label}", f"{registry.netloc}/{repo}:v1"))
        plain = [registry.netloc, IMDS_V4, f"[{IMDS_V6}]"]
        for name, image in cases:
            # A client per case: a client remembers each registry's challenge (and so its realm).
            c = client(plain_http=plain)
            try:
                o = await c.check(ref(image), None, want_manifest=False)
            finally:
                await c.aclose()
            out["cases"][name] = {"outcome": o.result, "detail": o.detail}
        out["imds_connections_after_client"] = imds4.connections + imds6.connections
        out["registry_requests"] = len(registry.requests())
    return out


def cli_case(tmp: str) -> dict[str, Any]:
    """``pullguard explain`` as a user would type it, with a config that allows only loopback."""
    config = f"{tmp}/pullguard.yaml"
    with open(config, "w") as fh:
        json.dump({"network": {"allowLoopback": True, "plainHttp": [IMDS_V4]}}, fh)
    with CountingServer(IMDS_V4, 80) as imds:
        result = CliRunner().invoke(
            cli, ["explain", "--config", config, "--output", "json", f"{IMDS_V4}/latest/meta-data:v1"]
        )
        return {
            "exit_code": result.exit_code,
            "json": json.loads(result.stdout),
            "connections": imds.connections,
        }


if __name__ == "__main__":
    report = asyncio.run(main())
    report["cli"] = cli_case(sys.argv[1] if len(sys.argv) > 1 else "/tmp")
    print(json.dumps(report, sort_keys=True))
