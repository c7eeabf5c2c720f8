"""Soak: ``pullguard serve`` at a fixed admission rate for minutes, with a flapping registry.

What it shows (issue 10): under a steady open-loop load that mixes cached and uncached images,
while the registry alternates between answering, refusing connections and hanging, the webhook
never answers HTTP 500, its latency stays bounded (below the API server's ``?timeout=``), and
its memory does not grow (RSS from the first minute to the last, under 10 %).

The parts, all real and on 127.0.0.1:

* the Debian ``docker-registry`` (no auth) holding one image under a set of "hot" tags;
* a **flapping forwarder** (this script's own, in a child process) between pullguard and the
  registry. It cycles every ``--flap-seconds``: *up* (forwards bytes), *refuse* (stops listening:
  connections are refused), *up*, *hang* (accepts, reads, never answers). On each change it drops
  every open connection, so keep-alive connections break as they do when a registry restarts;
* ``pullguard serve`` as its own process (``bench.harness.serve``: uvicorn, TLS, caches, logs);
* a **pusher** thread that keeps tagging the image under new, never-seen tags straight at the
  registry (not through the forwarder), as CI does during a rollout;
* an **open-loop** client (asyncio, a pool of keep-alive HTTPS connections like the API server's,
  HTTP/1.1 written by hand so the client costs less CPU than the server) sending ``--rate``
  reviews a second on a fixed schedule, whatever the answers take, over at most ``--connections``
  (default 1024). The API server's transport does not cap connections per host, and Little's law
  wants rate × the slowest answer (200/s × the 3 s deadline = 600) while the registry hangs: with
  a cap of 128 the requests queued in the client, and the latency measured was the client's queue
  (p99 15 s in a 10-minute run whose server answers all took ≤ 3 s). Every open TLS connection
  holds server buffers, so the RSS figures include the connections the load needs.
  Latency is measured from the *scheduled* send time, so a stall cannot hide (no coordinated
  omission).

The mix per review: 80 % a hot tag (cached verdicts; the tag TTL is short, so they are re-checked
through the flaps), 10 % a tag pushed moments ago (uncached, exists), 10 % a unique tag never
pushed (uncached, not found).

Usage: ``.venv/bin/python bench/soak.py --minutes 10 --rate 200``. Prints one Markdown row per
minute (requests, HTTP statuses, p50/p99/max latency, the server's RSS, outcomes, registry phases)
and a verdict line; writes bench/results/soak.json. Figures measured on a shared, loaded machine
say so (``--note``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import Served, machine, percentiles, serve  # noqa: E402
from tests.infra.images import push_image, put_manifest, registry_client  # noqa: E402
from tests.infra.registry import RegistryProcess  # noqa: E402
from tests.support.reviews import pod, review  # noqa: E402

REPO = "soak/app"
HOT_TAGS = 20
PHASES = ("up", "refuse", "up", "hang")
#: What the API server sends as ``?timeout=`` (its default webhook timeoutSeconds is 10).
API_TIMEOUT = 10.0
MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


# -- the flapping forwarder (a child process) -----------------------------------------------------


def _phase(started: float, flap: float) -> str:
    return PHASES[int((time.time() - started) / flap) % len(PHASES)]


async def _forwarder(port: int, target: int, started: float, flap: float) -> None:
    open_writers: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_writers.add(writer)
        try:
            if _phase(started, flap) == "hang":
                while await reader.read(65536):  # read, never answer
                    pass
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
            open_writers.add(up_writer)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            open_writers.discard(writer)

    server: asyncio.Server | None = None
    current = None
    while True:
        phase = _phase(started, flap)
        if phase != current:
            for w in list(open_writers):  # a registry restart breaks keep-alive connections too
                w.close()
            open_writers.clear()
            if phase == "refuse" and server is not None:
                server.close()
                await server.wait_closed()
                server = None
            elif phase != "refuse" and server is None:
                server = await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True)
            current = phase
        await asyncio.sleep(0.05)


def _run_forwarder(port: int, target: int, started: float, flap: float) -> None:
    asyncio.run(_forwarder(port, target, started, flap))


def _wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the flapping forwarder did not start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the pusher (a thread) ------------------------------------------------------------------------


class Pusher(threading.Thread):
    """Tags the image under new names at the registry itself; the client takes them, once each."""

    def __init__(self, registry: RegistryProcess, body: bytes, rate: float) -> None:
        super().__init__(daemon=True, name="soak-pusher")
        self.registry, self.body, self.rate = registry, body, rate
        self.fresh: collections.deque[str] = collections.deque(maxlen=10_000)
        self.pushed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        counter = itertools.count()
        with registry_client(self.registry) as client:
            next_at = time.monotonic()
            while not self.stop.is_set():
                tag = f"new-{next(counter)}"
                # A manifest of its own (an annotation differs; the blobs are shared): re-PUTting one
                # digest under many tags makes docker-registry 2.8 rewrite that revision's link file
                # in place, and concurrent reads of it then answer 500 — a registry artifact, not load.
                manifest = json.loads(self.body)
                manifest["annotations"] = {"org.opencontainers.image.ref.name": tag}
                try:
                    put_manifest(client, REPO, tag, json.dumps(manifest).encode(), MEDIA_TYPE)
                except (httpx.HTTPError, AssertionError):
                    continue
                self.fresh.append(tag)
                self.pushed += 1
                next_at += 1 / self.rate
                self.stop.wait(max(0.0, next_at - time.monotonic()))


# -- the open-loop client ---------------------------------------------------------------------------


@dataclass
class Minute:
    index: int
    latencies: list[float] = field(default_factory=list)
    round_trips: list[float] = field(default_factory=list)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    mix: collections.Counter[str] = field(default_factory=collections.Counter)
    phases: collections.Counter[str] = field(default_factory=collections.Counter)
    rss_mb: float = 0.0
    cpu_s: float = 0.0  # the server's CPU seconds (user + system) at the end of the minute


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _ClosedIdleError(ConnectionError):
    """The connection was closed before any byte of an answer arrived."""


class Connections:
    """Keep-alive HTTPS connections to the webhook, speaking plain HTTP/1.1 by hand.

    A full client (httpx) costs more CPU per request than the webhook itself does; on a two-core
    machine the load generator would then be what limits the rate. This one only writes a request
    and reads a ``Content-Length`` response (uvicorn always sends one).
    """

    def __init__(self, served: Served, size: int) -> None:
        self.served, self.size = served, size
        host_port = served.url.removeprefix("https://")
        self.host, port = host_port.rsplit(":", 1)
        self.port = int(port)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.ssl = served.ssl_context()
        #: At most ``size`` connections at once; a request waits for a free one (and the wait counts
        #: in its latency, measured from the scheduled send time).
        self.slots = asyncio.Semaphore(size)

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """One request. A reused connection the server closed while idle is retried once on a new
        one — only when no byte of an answer came back, as Go's transport (the API server's) does."""
        async with self.slots:
            return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                try:
                    return await self._exchange(reader, writer, path, body)
                except _ClosedIdleError:
                    break
            writer.close()
        return await self._exchange(*await self._open(), path, body)

    async def _exchange(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes
    ) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
        except (ConnectionError, OSError) as exc:
            writer.close()
            raise _ClosedIdleError from exc
        except BaseException:  # given up on (our own timeout): hang up, as the API server does
            writer.close()
            raise
        if not status_line:
            writer.close()
            raise _ClosedIdleError
        try:
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            payload = await reader.readexactly(length)
            status = int(status_line.split()[1])
        except BaseException:
            writer.close()
            raise
        if len(self.idle) < self.size:
            self.idle.append((reader, writer))
        else:
            writer.close()
        return status, payload

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


class Load:
    def __init__(
        self,
        served: Served,
        host: str,
        pusher: Pusher,
        rate: float,
        seconds: float,
        flap: float,
        connections: int = 1024,
    ) -> None:
        self.served, self.host, self.pusher = served, host, pusher
        self.rate, self.seconds, self.flap = rate, seconds, flap
        self.connections = connections
        self.minutes: list[Minute] = []
        self.unique = itertools.count()
        self.template = json.dumps(review(pod("NAME", "soak", ["IMAGE"]), uid="UID"))
        self.messages: collections.Counter[str] = collections.Counter()

    def body(self, i: int) -> tuple[str, bytes]:
        roll = i % 10
        if roll == 0 and self.pusher.fresh:
            kind, tag = "uncached, pushed", self.pusher.fresh.popleft()
        elif roll in (0, 5):
            kind, tag = "uncached, missing", f"missing-{next(self.unique)}"
        else:
            kind, tag = "cached", f"hot-{i % HOT_TAGS}"
        text = self.template.replace("UID", f"soak-{i:08d}").replace("NAME", f"soak-{i}")
        return kind, text.replace("IMAGE", f"{self.host}/{REPO}:{tag}").encode()

    def minute(self, at: float) -> Minute:
        index = int(at // 60)
        while len(self.minutes) <= index:
            self.minutes.append(Minute(len(self.minutes) + 1))
        return self.minutes[index]

    async def one(
        self, pool: Connections, scheduled: float, t0: float, kind: str, body: bytes, phase: str
    ) -> None:
        m = self.minute(scheduled - t0)
        m.mix[kind] += 1
        m.phases[phase] += 1
        sent = time.monotonic()
        try:
            status, payload = await asyncio.wait_for(
                pool.post(f"/validate?timeout={API_TIMEOUT:g}s", body), API_TIMEOUT + 5
            )
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            m.statuses[f"client {type(exc).__name__}"] += 1
            m.latencies.append(time.monotonic() - scheduled)
            return
        m.latencies.append(time.monotonic() - scheduled)
        m.round_trips.append(time.monotonic() - sent)
        m.statuses[str(status)] += 1
        if status == 200:
            answer = json.loads(payload)["response"]
            verdict = json.loads(answer.get("auditAnnotations", {}).get("verdict", "{}"))
            for image in verdict.get("images", []):
                m.outcomes[image["outcome"]] += 1
                if image["outcome"] in ("unreachable", "timeout", "undetermined"):
                    why = json.dumps(answer.get("warnings") or answer.get("status"))
                    self.messages[f"{phase}: {why[:160]}"] += 1

    async def run(self, started: float) -> None:
        pool = Connections(self.served, size=self.connections)
        t0 = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        total = int(self.rate * self.seconds)
        sampler = asyncio.create_task(self.sample_rss(t0))
        try:
            for i in range(total):
                scheduled = t0 + i / self.rate
                delay = scheduled - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                kind, body = self.body(i)
                phase = "steady" if self.flap <= 0 else _phase(started, self.flap)
                task = asyncio.create_task(self.one(pool, scheduled, t0, kind, body, phase))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)
        finally:
            sampler.cancel()
            pool.close()
        for m in self.minutes:
            if not m.rss_mb:
                m.rss_mb, m.cpu_s = rss_mb(self.served.pid), cpu_seconds(self.served.pid)
        self.client_cpu = time.process_time()

    async def sample_rss(self, t0: float) -> None:
        """The server's RSS at the end of each minute."""
        while True:
            await asyncio.sleep(60 - ((time.monotonic() - t0) % 60) - 0.5)
            m = self.minute(time.monotonic() - t0)
            m.rss_mb, m.cpu_s = rss_mb(self.served.pid), cpu_seconds(self.served.pid)
            await asyncio.sleep(1.0)


# -- the report -----------------------------------------------------------------------------------


def _fmt(counter: collections.Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common())


def table(minutes: list[Minute]) -> str:
    lines = [
        "| min | requests | HTTP statuses | p50 ms | p99 ms | max ms | RSS MB | outcomes | registry phases |",
        "|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for m in minutes:
        p = percentiles(m.latencies) if m.latencies else {"p50_ms": 0, "p99_ms": 0, "max_ms": 0}
        lines.append(
            f"| {m.index} | {len(m.latencies)} | {_fmt(m.statuses)} | {p['p50_ms']:.1f} | "
            f"{p['p99_ms']:.1f} | {p['max_ms']:.0f} | {m.rss_mb:.1f} | {_fmt(m.outcomes)} | "
            f"{_fmt(m.phases)} |"
        )
    return "\n".join(lines)


def verdict(minutes: list[Minute], deadline: float) -> tuple[dict[str, Any], bool]:
    statuses = sum((m.statuses for m in minutes), collections.Counter[str]())
    worst = max((max(m.latencies) for m in minutes if m.latencies), default=0.0)
    first, last = minutes[0].rss_mb, minutes[-1].rss_mb
    growth = (last - first) / first * 100 if first else 0.0
    five_hundreds = sum(v for k, v in statuses.items() if k.startswith("5"))
    client_errors = sum(v for k, v in statuses.items() if k.startswith("client"))
    summary = {
        "requests": sum(statuses.values()),
        "http_5xx": five_hundreds,
        "client_errors": client_errors,
        "max_latency_s": round(worst, 3),
        "bound_s": API_TIMEOUT,
        "deadline_s": deadline,
        "rss_first_mb": round(first, 1),
        "rss_last_mb": round(last, 1),
        "rss_growth_pct": round(growth, 1),
    }
    ok = five_hundreds == 0 and client_errors == 0 and worst < API_TIMEOUT and growth < 10
    return summary, ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=200, help="admissions per second (open loop)")
    parser.add_argument("--flap-seconds", type=float, default=15, help="length of each registry phase")
    parser.add_argument("--deadline", type=float, default=3.0, help="timeouts.deadlineSeconds")
    parser.add_argument("--note", default="", help="e.g. 'measured under load'")
    parser.add_argument(
        "--connections",
        type=int,
        default=1024,
        help="the client's connection cap (the API server's transport has none; requests beyond it queue)",
    )
    parser.add_argument(
        "--steady", action="store_true", help="no forwarder: pullguard talks to the registry directly"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pullguard-soak-") as tmp, RegistryProcess("noauth") as registry:
        pushed = push_image(registry, REPO, "hot-0")
        with registry_client(registry) as client:
            body = client.get(f"/v2/{REPO}/manifests/hot-0", headers={"Accept": MEDIA_TYPE}).content
            for i in range(1, HOT_TAGS):
                put_manifest(client, REPO, f"hot-{i}", body, MEDIA_TYPE)
        port, started = _free_port(), time.time()
        forwarder = multiprocessing.get_context("spawn").Process(
            target=_run_forwarder, args=(port, registry.port, started, args.flap_seconds), daemon=True
        )
        forwarder.start()
        _wait_listening(port)
        host = registry.host if args.steady else f"127.0.0.1:{port}"
        config = {
            "mode": "enforce",
            "onUnknown": "warn",
            "timeouts": {"deadlineSeconds": args.deadline, "requestSeconds": 1.0},
            "network": {"allowLoopback": True, "plainHttp": [host]},
            "cache": {"tagTTLSeconds": 20, "negativeTTLSeconds": 10},
        }
        pusher = Pusher(registry, body, rate=args.rate * 0.1)
        try:
            with serve(config, Path(tmp)) as served:
                pusher.start()
                flap = 0.0 if args.steady else args.flap_seconds
                load = Load(served, host, pusher, args.rate, args.minutes * 60, flap, args.connections)
                asyncio.run(load.run(started))
        finally:
            pusher.stop.set()
            forwarder.terminate()
            forwarder.join(timeout=10)
    summary, ok = verdict(load.minutes, args.deadline)
    summary.update(
        rate=args.rate,
        minutes=args.minutes,
        flap_seconds=args.flap_seconds,
        tags_pushed=pusher.pushed,
        digest=pushed.digest,
        machine=machine(),
        note=args.note,
    )
    print(table(load.minutes))
    print()
    cpu = load.minutes[-1].cpu_s
    summary["server_cpu_ms_per_admission"] = round(cpu / max(1, summary["requests"]) * 1000, 2)
    summary["client_cpu_s"] = round(load.client_cpu, 1)
    for message, count in load.messages.most_common(8):
        print(f"  {count:6d} x {message}", file=sys.stderr)
    print(
        f"{summary['requests']} admissions at {args.rate:g}/s for {args.minutes:g} min: HTTP 5xx "
        f"{summary['http_5xx']}, client errors {summary['client_errors']}, max latency "
        f"{summary['max_latency_s'] * 1000:.0f} ms (bound {API_TIMEOUT:g} s), "
        f"RSS {summary['rss_first_mb']} -> {summary['rss_last_mb']} MB "
        f"({summary['rss_growth_pct']:+.1f} %), {pusher.pushed} tags pushed, server CPU "
        f"{summary['server_cpu_ms_per_admission']} ms/admission: "
        f"{'PASS' if ok else 'FAIL'}{' (' + args.note + ')' if args.note else ''}"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "soak.json").write_text(
        json.dumps({"summary": summary, "minutes": [m.__dict__ for m in load.minutes]}, indent=2, default=str)
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
