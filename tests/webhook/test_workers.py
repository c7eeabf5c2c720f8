"""``pullguard serve --workers N`` as a user runs it: a child process over real TLS sockets.

Several workers answer on the one port; a rotated certificate reaches every worker; a killed
worker is replaced; SIGTERM stops them all with exit 0; workers that cannot start (the
certificate files are gone) end in exit 1 rather than a silent restart loop (webhook/prefork.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import trustme
import yaml

from tests.infra.images import push_image
from tests.infra.registry import RegistryProcess
from tests.support.reviews import pod, review
from tests.support.webhook import write_cert

PULLGUARD = Path(sys.executable).parent / "pullguard"


class Served:
    """``pullguard serve --workers N`` in a child process; its JSON log lines from stderr."""

    def __init__(self, tmp: Path, config: dict[str, Any], ca: trustme.CA, workers: int) -> None:
        self.ca = ca
        self.cert, self.key = write_cert(ca, tmp / "certs")
        (tmp / "config.yaml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [
                *(str(PULLGUARD), "serve", "--config", str(tmp / "config.yaml"), "--port", "0"),
                *("--tls-cert", str(self.cert), "--tls-key", str(self.key), "--workers", str(workers)),
            ],
            cwd=tmp,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        assert self.proc.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True)
        self._reader.start()
        self.url = self.wait_for(lambda d: d.get("msg") == "listening")["url"]
        self.port = int(self.url.rsplit(":", 1)[1])
        for _ in range(workers - 1):
            self.wait_for(lambda d: d.get("msg") == "listening")

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"msg": line.rstrip()})

    def wait_for(self, match: Callable[[dict[str, Any]], bool], seconds: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                doc = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(doc)
            if match(doc):
                return doc
        raise AssertionError(f"no such log line within {seconds}s; seen: {self.seen[-20:]}")

    def drain(self) -> None:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return

    def workers(self) -> dict[int, int]:
        """worker slot -> pid of the workers started so far (from the supervisor's log)."""
        self.drain()
        return {d["worker"]: d["pid"] for d in self.seen if d.get("msg") == "worker started"}

    def post(self, body: bytes) -> tuple[dict[str, Any], str]:
        """One review on a new TLS connection: the answer and the certificate's sha256."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        with (
            socket.create_connection(("127.0.0.1", self.port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            tls.sendall(
                b"POST /validate?timeout=10s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        head, _, payload = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        return json.loads(payload), hashlib.sha256(der).hexdigest()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=40)
        self._reader.join(timeout=10)  # every line the workers wrote before they exited
        self.drain()
        return code


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def image(registry_noauth: RegistryProcess) -> str:
    push_image(registry_noauth, "workers/app", "1.0")
    return f"{registry_noauth.host}/workers/app:1.0"


@pytest.fixture
def config(registry_noauth: RegistryProcess) -> dict[str, Any]:
    return {"network": {"allowLoopback": True, "plainHttp": [registry_noauth.host]}}


@pytest.fixture
def served(tmp_path: Path, config: dict[str, Any], test_ca: trustme.CA) -> Iterator[Served]:
    server = Served(tmp_path, config, test_ca, workers=2)
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL if server.proc.poll() is None else 0)


def _body(image: str) -> bytes:
    return json.dumps(review(pod("web", "shop", [image]))).encode()


def test_several_workers_answer_on_one_port_and_sigterm_stops_them_all(served: Served, image: str) -> None:
    answered_by: set[int] = set()
    for _ in range(60):
        answer, _ = served.post(_body(image))
        assert answer["response"]["allowed"] is True
        line = served.wait_for(lambda d, uid=answer["response"]["uid"]: d.get("uid") == uid)
        answered_by.add(line["worker"])
        if len(answered_by) == 2:
            break
    pids = served.workers()

    code = served.stop()

    assert answered_by == {0, 1}
    assert code == 0
    assert not any(_alive(pid) for pid in pids.values())
    stopped = [d for d in served.seen if d.get("msg") == "worker stopped"]
    assert sorted(d["worker"] for d in stopped) == [0, 1]
    assert all(d["exitCode"] == 0 for d in stopped)


def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(served: Served, image: str) -> None:
    victim = served.workers()[0]

    os.kill(victim, signal.SIGKILL)
    replaced = served.wait_for(lambda d: d.get("msg") == "worker exited unexpectedly; starting a new one")
    fresh = served.wait_for(lambda d: d.get("msg") == "worker started")
    answers = [served.post(_body(image))[0]["response"]["allowed"] for _ in range(5)]

    assert (replaced["worker"], replaced["pid"], replaced["exitCode"]) == (0, victim, -signal.SIGKILL)
    assert fresh["worker"] == 0 and fresh["pid"] != victim
    assert answers == [True] * 5
    assert served.stop() == 0


def test_a_rotated_certificate_reaches_every_worker(served: Served, image: str, test_ca: trustme.CA) -> None:
    _, before = served.post(_body(image))
    write_cert(test_ca, served.cert.parent)  # a new key pair in the same files, as a Secret update

    reloaded = {
        served.wait_for(lambda d: d.get("msg") == "serving certificate reloaded")["worker"] for _ in "ab"
    }
    fingerprints = {served.post(_body(image))[1] for _ in range(10)}

    assert reloaded == {0, 1}
    assert before not in fingerprints and len(fingerprints) == 1


def test_workers_that_cannot_start_end_serve_with_exit_1(served: Served) -> None:
    served.cert.unlink()  # a replacement worker cannot load its certificate any more
    victim = served.workers()[1]

    os.kill(victim, signal.SIGKILL)
    code = served.proc.wait(timeout=60)

    served.wait_for(lambda d: str(d.get("msg")).startswith("workers keep dying"))

    assert code == 1
