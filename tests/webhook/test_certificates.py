"""``pullguard certs`` and ``certs/make-certs.sh``: a CA and a serving certificate the API server accepts.

The proof is a real TLS handshake: the webhook serves the written files and a client trusting only
the printed caBundle connects with the Service's DNS name as the server name — as the API server does
when it calls ``https://<service>.<namespace>.svc``.
"""

from __future__ import annotations

import base64
import socket
import ssl
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.cli import run
from tests.webhook.conftest import StartWebhook

REPO = Path(__file__).resolve().parents[2]
NAMES = [
    "pullguard",
    "pullguard.pullguard-system",
    "pullguard.pullguard-system.svc",
    "pullguard.pullguard-system.svc.cluster.local",
]


def _cli(out: Path, *extra: str) -> str:
    result = run(
        ["certs", "--service", "pullguard", "--namespace", "pullguard-system", "--out", str(out), *extra]
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def _script(out: Path, *extra: str) -> str:
    done = subprocess.run(
        [str(REPO / "certs" / "make-certs.sh"), *extra, "pullguard", "pullguard-system", str(out)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


MAKERS = [pytest.param(_cli, id="pullguard-certs"), pytest.param(_script, id="make-certs-sh")]


@pytest.mark.parametrize("make", MAKERS)
def test_the_serving_certificate_names_the_service_and_chains_to_the_printed_ca_bundle(
    make: Callable[..., str], tmp_path: Path, start_webhook: StartWebhook
) -> None:
    out = tmp_path / "out"
    bundle = make(out)

    assert base64.b64decode(bundle) == (out / "ca.crt").read_bytes()
    cert = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == NAMES
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    for key in ("tls.key", "ca.key"):
        assert stat.S_IMODE((out / key).stat().st_mode) == 0o600

    webhook = start_webhook({}, cert_dir=out)
    client = ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
    host, port = webhook.server.address
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        client.wrap_socket(raw, server_hostname="pullguard.pullguard-system.svc") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection((host, port), timeout=5) as raw,
    ):
        client.wrap_socket(raw, server_hostname="other.pullguard-system.svc")


@pytest.mark.parametrize("make", MAKERS)
def test_running_it_again_rotates_the_serving_certificate_and_keeps_the_ca(
    make: Callable[..., str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first_bundle = make(out)
    first_cert = (out / "tls.crt").read_bytes()

    second_bundle = make(out)
    assert second_bundle == first_bundle
    assert (out / "tls.crt").read_bytes() != first_cert

    third_bundle = make(out, "--new-ca")
    assert third_bundle != first_bundle


@pytest.mark.parametrize(
    ("service", "namespace", "message"),
    [
        pytest.param("Pullguard", "ns", "--service 'Pullguard' is not a DNS label", id="uppercase"),
        pytest.param("pullguard", "a.b", "--namespace 'a.b' is not a DNS label", id="dotted-namespace"),
    ],
)
def test_names_that_are_not_dns_labels_are_refused(
    service: str, namespace: str, message: str, tmp_path: Path
) -> None:
    result = run(["certs", "--service", service, "--namespace", namespace, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.stderr
