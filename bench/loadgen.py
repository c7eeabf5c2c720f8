"""A cheap HTTPS load generator that plays the API server against ``pullguard serve`` (B1).

Run by ``bench/admission.py`` as its own process (``python bench/loadgen.py``, a JSON job on stdin,
a JSON result on stdout), so it never shares an interpreter — or a GIL — with the server.

Like the API server's webhook client (``k8s.io/apiserver/pkg/util/webhook``, Go ``net/http``):
HTTP/1.1 keep-alive connections opened once (handshakes outside the measurement), ``TCP_NODELAY``
(Go sets it on every TCP connection), TLS verified with the webhook's CA, ``POST
/validate?timeout=10s`` with ``Content-Type: application/json`` and a fresh ``request.uid`` per
review (the rest of the body is the same Deployment every time, so its verdict is cached).

Two modes:

* ``open`` — requests are *scheduled* at a fixed rate (request ``i`` at ``t0 + i / rate``),
  released into a queue when their time comes and taken by the first idle connection; latency
  counts from the release, not from when a connection got round to sending it, so a server that
  falls behind shows up as queueing delay instead of being hidden by a client that politely waits
  (coordinated omission, Gil Tene; the ``wrk2`` method). The release itself can be up to ~1 ms
  late (epoll's timeout is in whole milliseconds): that is the client's timer, not the server,
  so it is reported apart (``release_lateness_p99_ms``) rather than added to every latency.
* ``closed`` — every connection sends its next review as soon as the previous answer is read,
  for ``seconds``: the maximum admissions per second.

Why not ``wrk``: it cannot schedule at a fixed rate (``wrk2``, which can, is not in Debian), it
cannot vary the uid per request without Lua, and this client costs ~0.1 ms of CPU per review
(asyncio streams, hand-written HTTP/1.1, no HTTP library): it reports its own CPU time
(``os.times``) so the table can say how much of the machine it took.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

UID = b"00000000-0000-4000-8000-000000000000"
#: An open-loop run stops once this many seconds' worth of requests wait for a connection.
BEHIND_SECONDS = 0.5


@dataclass
class Job:
    url: str
    ca_file: str
    body: bytes  # contains UID exactly once; replaced per request
    mode: str  # "open" | "closed"
    connections: int
    seconds: float
    rate: float = 0.0  # open loop only
    warmup: float = 0.5  # seconds of traffic before the measured window (open loop: at the rate)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.head = head
        self.answered = 0  # reviews sent on this connection (answered unless an error was raised)

    async def post(self, body: bytes) -> None:
        self.answered += 1
        self.writer.write(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected status: {head[:60]!r}")
        lower = head.lower()
        at = lower.index(b"content-length:") + 15
        length = int(lower[at : lower.index(b"\r\n", at)])
        answer = await self.reader.readexactly(length)
        if b'"allowed":true' not in answer:
            raise RuntimeError(f"not allowed: {answer[:300]!r}")


async def _connect(job: Job) -> _Connection:
    parts = urlsplit(job.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 443
    ctx = ssl.create_default_context(cafile=job.ca_file)
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    head = (
        f"POST /validate?timeout=10s HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "User-Agent: kube-apiserver-admission\r\nAccept: application/json, */*\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    conn = _Connection(reader, writer, head)
    await conn.post(_body(job.body, 0))  # the first round trip outside the measurement
    return conn


def _body(template: bytes, i: int) -> bytes:
    return template.replace(UID, b"%08x-0000-4000-8000-%012x" % (i & 0xFFFFFFFF, i))


async def _open_loop(job: Job, conns: list[_Connection]) -> tuple[list[float], int, bool, float]:
    queue: asyncio.Queue[tuple[int, float, float] | None] = asyncio.Queue()
    latencies: list[float] = []
    lateness: list[float] = []
    measure_from = job.warmup
    errors = 0
    start = time.perf_counter() + 0.05
    total = int((job.warmup + job.seconds) * job.rate)

    async def worker(conn: _Connection) -> None:
        nonlocal errors
        while (item := await queue.get()) is not None:
            i, scheduled, released = item
            try:
                await conn.post(_body(job.body, i + 1))
            except (RuntimeError, OSError, asyncio.IncompleteReadError):
                errors += 1
                continue
            if scheduled - start >= measure_from:
                latencies.append(time.perf_counter() - released)
                lateness.append(released - scheduled)

    workers = [asyncio.ensure_future(worker(c)) for c in conns]
    interval = 1.0 / job.rate
    behind = max(1, int(job.rate * BEHIND_SECONDS))
    overloaded = False
    i = 0
    while i < total:
        if queue.qsize() > behind:  # the server cannot follow this rate: stop, and say so
            overloaded = True
            break
        now = time.perf_counter()
        # hand out every request whose time has come (sleep granularity is ~1 ms; never skip one)
        while i < total and start + i * interval <= now:
            queue.put_nowait((i, start + i * interval, now))
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    ordered = sorted(lateness) or [0.0]
    return latencies, errors, overloaded, ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def _closed_loop(job: Job, conns: list[_Connection]) -> tuple[list[float], int, bool, float]:
    latencies: list[float] = []
    errors = 0
    began = time.perf_counter()
    measure_from = began + job.warmup
    stop = measure_from + job.seconds
    counter = iter(range(1, 1 << 62))

    async def worker(conn: _Connection) -> None:
        nonlocal errors
        while (t0 := time.perf_counter()) < stop:
            try:
                await conn.post(_body(job.body, next(counter)))
            except (RuntimeError, OSError, asyncio.IncompleteReadError):
                errors += 1
                continue
            if t0 >= measure_from:
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(c) for c in conns))
    return latencies, errors, False, 0.0


async def run(job: Job) -> dict[str, Any]:
    conns = list(await asyncio.gather(*(_connect(job) for _ in range(job.connections))))
    cpu0, wall0 = os.times(), time.perf_counter()
    if job.mode == "open":
        latencies, errors, overloaded, late = await _open_loop(job, conns)
    else:
        latencies, errors, overloaded, late = await _closed_loop(job, conns)
    cpu1, wall = os.times(), time.perf_counter() - wall0
    for c in conns:
        c.writer.close()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "latencies": latencies,
        "sent": sum(c.answered for c in conns),  # every review, the unmeasured ones too
        "errors": errors,
        "overloaded": overloaded,
        "release_lateness_p99_ms": 1000 * late,
        "seconds": job.seconds,
        "wall": wall,
        "client_cpu_share": cpu / wall,  # cores the generator kept busy over its whole run
    }


def main() -> None:
    raw = json.loads(sys.stdin.read())
    raw["body"] = raw["body"].encode()
    result = asyncio.run(run(Job(**raw)))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
