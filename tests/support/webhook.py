"""The real webhook on a real TLS socket, in a background thread, for tests and the benchmark.

Composed exactly as ``pullguard serve`` composes it (configuration -> ``build`` -> Reviewer ->
``create_app`` -> ``CertificateSource`` -> uvicorn ``Server``), on ``127.0.0.1:0`` with a
certificate from a trustme CA; clients verify it with that CA. Nothing is patched: tests change
behaviour through configuration, the cluster (a kubeconfig) and the servers they start.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trustme

from webhook.app import create_app, reviewer_for
from webhook.assembly import Assembly, build, connect_cluster
from webhook.metrics import Metrics
from webhook.ports import NodeIdentityResolver
from webhook.server import CertificateSource, Server, bind
from webhook.server import run as run_server
from webhook.settings import parse_config

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


@dataclass
class RunningWebhook:
    server: Server
    assembly: Assembly
    metrics: Metrics
    certs: CertificateSource
    ca: trustme.CA
    cert_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client like the API server's: TLS verified with the CA, keep-alive, TCP_NODELAY (Go's
        default; without it Nagle's algorithm and delayed ACKs add ~40 ms to every request)."""
        transport = httpx.HTTPTransport(verify=self.ssl_context(), socket_options=NODELAY)
        return httpx.Client(base_url=self.url, transport=transport, **kwargs)

    def review(
        self, review: Mapping[str, Any], *, timeout: str | None = None, client: httpx.Client | None = None
    ) -> httpx.Response:
        """POST a review as the API server does (``?timeout=`` when given)."""
        path = "/validate" + (f"?timeout={timeout}" if timeout else "")
        if client is not None:
            return client.post(path, content=json.dumps(review))
        with self.client(timeout=30) as c:
            return c.post(path, content=json.dumps(review))


def write_cert(ca: trustme.CA, directory: Path, *names: str) -> tuple[Path, Path]:
    """A serving certificate for ``names`` (default 127.0.0.1, localhost) as tls.crt / tls.key."""
    directory.mkdir(parents=True, exist_ok=True)
    issued = ca.issue_cert(*(names or ("127.0.0.1", "localhost")))
    cert, key = directory / "tls.crt", directory / "tls.key"
    key_tmp, cert_tmp = directory / ".tls.key.tmp", directory / ".tls.crt.tmp"
    key_tmp.write_bytes(issued.private_key_pem.bytes())
    cert_tmp.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key_tmp.replace(key)
    cert_tmp.replace(cert)
    return cert, key


@contextmanager
def running_webhook(
    config: Mapping[str, Any],
    ca: trustme.CA,
    cert_dir: Path,
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
    reload_interval: float = 10.0,
    read_header_timeout: float = 10.0,
    read_timeout: float = 30.0,
    resolvers: Sequence[NodeIdentityResolver] = (),
) -> Iterator[RunningWebhook]:
    cfg = parse_config(dict(config), "test-config")
    metrics = Metrics()
    cluster = (
        connect_cluster(cfg, kubeconfig=str(kubeconfig), context=context, metrics=metrics)
        if kubeconfig is not None
        else None
    )
    assembly = build(cfg, cluster=cluster, metrics=metrics, resolvers=resolvers)
    cert, key = (cert_dir / "tls.crt", cert_dir / "tls.key")
    if not cert.exists():
        write_cert(ca, cert_dir)
    certs = CertificateSource(
        str(cert), str(key), interval=reload_interval, on_reload=metrics.certificate_reload
    )
    app = create_app(reviewer_for(cfg, assembly, metrics), metrics, certs.problem)
    server = Server(
        app, certs, bind("127.0.0.1", 0), read_header_timeout=read_header_timeout, read_timeout=read_timeout
    )
    errors: list[BaseException] = []

    def run() -> None:
        async def main() -> None:
            try:
                await server.serve()
            finally:
                await assembly.aclose()

        try:
            run_server(main())  # the loop `pullguard serve` runs on (uvloop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"webhook-{uuid.uuid4().hex[:6]}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if errors or not thread.is_alive():
            raise RuntimeError(f"the webhook did not start: {errors!r}")
        if time.monotonic() > deadline:
            raise RuntimeError("the webhook did not start within 10 s")
        time.sleep(0.01)
    try:
        yield RunningWebhook(server, assembly, metrics, certs, ca, cert_dir)
    finally:
        server.stop()
        thread.join(timeout=15)
