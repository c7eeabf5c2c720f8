"""Point pullguard's guarded client at a fake metadata service, inside a loopback-only namespace.

Run only by tests/test_http_guard.py, as
``unshare --net -- sh -c 'ip link set lo up && ip addr add 169.254.169.254/32 dev lo &&
ip -6 addr add fd00:ec2::254/128 dev lo && exec python tests/netns/metadata_probe.py'``.
The namespace has no interface but ``lo`` (checked first, or the script refuses to run), so
nothing can leave the machine even if the guard were broken (DESIGN 6).

Three phases, printed as one JSON object on the last line of stdout:

1. ``refused``: the default policy, with every spelling of the metadata address and names the
   injected resolver maps there, plus a redirect from an allowed registry. Each attempt must
   raise ``DestinationRefusedError``, and ``counts_after_refused`` must be all zero.
2. ``allowed``: ``allowLinkLocal: true`` reaches both servers (one request each). This shows that
   the guard, not the network, is what blocked phase 1.
3. ``unguarded``: a plain httpx client in the same namespace. It shows which spellings really
   reach the metadata server when nothing checks them, so phase 1 is not passing merely because
   a spelling was unroutable.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import Sequence
from typing import Any

import httpx

from tests.netns.servers import CountingServer
from webhook.adapters.http import make_client
from webhook.core.destinations import DestinationPolicy
from webhook.core.errors import DestinationRefusedError

IMDS_V4 = "169.254.169.254"
IMDS_V6 = "fd00:ec2::254"
TIMEOUT = 3.0

# (label, URL); ports are added when the registry needs one
SPELLINGS = [
    ("dotted", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
    ("decimal", "http://2852039166/latest/meta-data/"),
    ("hex", "http://0xA9FEA9FE/latest/meta-data/"),
    ("short", "http://169.254.43518/latest/meta-data/"),
    ("two-part", "http://169.16689662/latest/meta-data/"),
    ("v4-mapped", "http://[::ffff:169.254.169.254]/latest/meta-data/"),
    ("v4-mapped-hex", "http://[::ffff:a9fe:a9fe]/latest/meta-data/"),
    ("nat64", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/"),
    ("6to4", "http://[2002:a9fe:a9fe::1]/latest/meta-data/"),
    ("imds-v6", "http://[fd00:ec2::254]/latest/meta-data/"),
    ("https", "https://169.254.169.254/latest/meta-data/"),
    ("metadata-name", "http://metadata.google.internal/computeMetadata/v1/"),
    ("name-to-v4", "http://imds.test/latest/meta-data/"),
    ("name-to-v6", "http://imds6.test/latest/meta-data/"),
    ("name-to-both", "http://imds-both.test/latest/meta-data/"),
]
NAMES = {
    "metadata.google.internal": [IMDS_V4],
    "imds.test": [IMDS_V4],
    "imds6.test": [IMDS_V6],
    "imds-both.test": [IMDS_V6, IMDS_V4],
    "registry.test": ["127.0.0.1"],
}


class Resolver:
    """The injected resolver: fixed answers, and a record of every name asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in NAMES:
            raise socket.gaierror(socket.EAI_NONAME, "not in the probe's table")
        return NAMES[host]


def require_loopback_only_namespace() -> None:
    interfaces = [name for _index, name in socket.if_nameindex()]
    if interfaces != ["lo"]:
        sys.exit(f"refusing to run: this namespace has interfaces {interfaces}, not only lo")


async def attempt(client: httpx.AsyncClient, url: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = await client.get(url, **kwargs)
    except DestinationRefusedError as exc:
        return {"error": type(exc).__name__, "host": exc.host, "address": exc.address, "reason": exc.reason}
    except Exception as exc:  # reported, not raised: the test asserts on the whole picture
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"status": response.status_code, "body": response.text}


async def main() -> dict[str, Any]:
    require_loopback_only_namespace()
    result: dict[str, Any] = {"interfaces": [name for _i, name in socket.if_nameindex()]}
    with (
        CountingServer(IMDS_V4, 80) as imds4,
        CountingServer(IMDS_V6, 80) as imds6,
        CountingServer("127.0.0.1") as registry,
    ):
        servers = {"imds_v4": imds4, "imds_v6": imds6}

        def counts() -> dict[str, dict[str, int]]:
            return {k: {"connections": s.connections, "requests": s.requests} for k, s in servers.items()}

        # 1. default policy (loopback allowed only so the redirecting "registry" is reachable)
        resolver = Resolver()
        refused: dict[str, Any] = {}
        async with make_client(policy=DestinationPolicy(), timeout=TIMEOUT, resolver=resolver) as client:
            for label, url in SPELLINGS:
                refused[label] = await attempt(client, url)
        result["names_resolved_by_default_policy"] = resolver.asked
        policy = DestinationPolicy(allow_loopback=True)
        async with make_client(policy=policy, timeout=TIMEOUT, resolver=Resolver()) as client:
            hop = registry.url(f"/redirect?to=http://{IMDS_V4}/latest/meta-data/", host="registry.test")
            refused["redirect"] = await attempt(client, hop, follow_redirects=True)
            refused["redirect-status-unfollowed"] = await attempt(client, hop)
        result["refused"] = refused
        result["registry_requests"] = registry.requests
        result["counts_after_refused"] = counts()

        # 2. allowLinkLocal: the same servers are reachable through the guard
        allowed = DestinationPolicy(allow_link_local=True)
        async with make_client(policy=allowed, timeout=TIMEOUT, resolver=Resolver()) as client:
            result["allowed"] = {
                "v4": await attempt(client, f"http://{IMDS_V4}/latest/meta-data/"),
                "v6": await attempt(client, f"http://[{IMDS_V6}]/latest/meta-data/"),
            }
        result["counts_after_allowed"] = counts()

        # 3. no guard at all: which spellings would have reached the metadata server?
        unguarded: dict[str, bool] = {}
        async with httpx.AsyncClient(trust_env=False, timeout=TIMEOUT) as plain:
            for label, url in SPELLINGS:
                if label.startswith(("name-", "metadata-name", "https")):
                    continue  # names need the injected resolver; https has no server
                before = imds4.requests + imds6.requests
                outcome = await attempt(plain, url)
                unguarded[label] = "status" in outcome and imds4.requests + imds6.requests > before
        result["unguarded_reached"] = unguarded
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), sort_keys=True))
