"""The README quick start, as a user runs it: ``pullguard serve --config examples/config.yaml`` (what
``make run`` runs), no cluster, a development certificate made under ``.pullguard/``, then the
``examples/`` reviews posted over TLS; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PULLGUARD = Path(sys.executable).parent / "pullguard"


class _Serve:
    """``pullguard serve`` in a child process; its JSON log lines collected from stderr."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                str(PULLGUARD),
                "serve",
                "--config",
                str(REPO / "examples" / "config.yaml"),
                "--port",
                "0",
                *args,
            ],
            cwd=cwd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        assert self.proc.stderr is not None
        threading.Thread(target=self._read, args=(self.proc.stderr,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"msg": line.rstrip()})

    def wait_for(self, msg: str, seconds: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if line.get("msg") == msg:
                return line
        raise AssertionError(f"no {msg!r} log line; saw {self.seen}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)


@pytest.fixture
def served(tmp_path: Path) -> Any:
    servers: list[_Serve] = []

    def start(*args: str) -> _Serve:
        server = _Serve(tmp_path, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def _post(url: str, ca: Path, example: str) -> httpx.Response:
    return httpx.post(
        url + "/validate",
        content=(REPO / "examples" / example).read_bytes(),
        headers={"Content-Type": "application/json"},
        verify=ssl.create_default_context(cafile=str(ca)),
        timeout=30,
    )


def test_the_quick_start_serves_the_examples_without_a_cluster(served: Any, tmp_path: Path) -> None:
    server = served()
    dev = server.wait_for(
        "DEVELOPMENT ONLY: serving a self-signed certificate; use --tls-cert/--tls-key in a cluster"
    )
    assert dev["created"] is True and dev["ca"] == ".pullguard/ca.crt"
    url = server.wait_for("listening")["url"]
    ca = tmp_path / ".pullguard" / "ca.crt"

    invalid = _post(url, ca, "review-pod-invalid-image.json").json()["response"]
    assert invalid["allowed"] is False and invalid["status"]["code"] == 403
    assert "ghcr.io/Acme/api:1.4.2: invalid-reference" in invalid["status"]["message"]

    secret = _post(url, ca, "review-pod-unreadable-secret.json").json()["response"]
    assert secret["allowed"] is True  # the registry cannot be reached: onUnknown warn
    assert secret["warnings"] == [
        "pullguard: worker registry.invalid/team/worker:2.0: unreachable as anonymous",
        "pullguard: secret shop/regcred could not be read (no Kubernetes API configured); planned as if "
        "kubelet "
        "skipped it",
    ]

    malformed = _post(url, ca, "review-pod-malformed.json").json()["response"]
    assert (malformed["allowed"], malformed["status"]["code"]) == (False, 400)
    assert malformed["status"]["details"]["causes"][0]["field"] == "request.object.spec.containers[0].image"

    not_review = _post(url, ca, "not-a-review.json")
    assert not_review.status_code == 400
    assert (
        not_review.json()["message"]
        == "pullguard: not an AdmissionReview: kind is 'Pod', expected AdmissionReview"
    )

    assert server.stop() == 0
    server.wait_for("stopped")
    admissions = [line for line in server.seen if line.get("msg") == "admission"]
    assert [a["verdict"] for a in admissions] == ["denied", "warned", "invalid", "rejected"]


def test_a_second_run_reuses_the_development_certificate(served: Any, tmp_path: Path) -> None:
    first = served()
    first.wait_for("listening")
    assert first.stop() == 0
    fingerprint = (tmp_path / ".pullguard" / "tls.crt").read_bytes()

    second = served()
    dev = second.wait_for(
        "DEVELOPMENT ONLY: serving a self-signed certificate; use --tls-cert/--tls-key in a cluster"
    )
    second.wait_for("listening")
    assert dev["created"] is False
    assert (tmp_path / ".pullguard" / "tls.crt").read_bytes() == fingerprint
    assert second.stop() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("--tls-cert", "x.pem"), "pullguard: --tls-cert and --tls-key go together", id="cert-without-key"
        ),
        pytest.param(
            ("--tls-cert", "missing.crt", "--tls-key", "missing.key"),
            "pullguard: cannot serve: missing.crt: No such file or directory",
            id="missing-certificate",
        ),
    ],
)
def test_serve_refuses_bad_tls_options_with_exit_2(served: Any, args: tuple[str, ...], message: str) -> None:
    server = served(*args)
    assert server.proc.wait(timeout=20) == 2
    assert server.proc.stderr is not None
    time.sleep(0.1)
    lines = []
    while not server.lines.empty():
        lines.append(server.lines.get().get("msg"))
    assert message in lines
