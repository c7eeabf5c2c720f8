"""A CA and a serving certificate for the webhook (``pullguard certs``, and ``make run``).

The API server calls a webhook Service as ``https://<service>.<namespace>.svc:443`` and checks
the certificate against the ``caBundle`` of the ValidatingWebhookConfiguration (k8s docs,
"Dynamic Admission Control": the serving certificate must be valid for
``<service>.<namespace>.svc``). So the serving certificate carries every name the Service
answers to — ``S``, ``S.NS``, ``S.NS.svc``, ``S.NS.svc.cluster.local`` — as DNS SANs (Go ignores
the Common Name since 1.15), ``serverAuth`` extended key usage, and is signed by a small CA
whose certificate, base64-encoded, is the ``caBundle``.

Keys are ECDSA P-256 (small, fast handshakes, accepted by Go's TLS stack). Re-running
``pullguard certs`` with the same ``--out`` keeps the CA and issues a new serving certificate,
so the caBundle does not change: that is rotation (the server reloads the files by content).
``--new-ca`` starts over (then the caBundle must be updated; see certs/README.md).

For development, ``ensure_dev_certificate`` makes one for ``localhost``, ``127.0.0.1`` and
``::1`` under ``.pullguard/`` on the first ``pullguard serve`` without ``--tls-cert``; the log
says it is for development only. Private keys are written with mode 0600 and never printed.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVING_DAYS = 365
#: A development certificate closer than this to expiry is replaced on start.
RENEW_BEFORE = dt.timedelta(days=7)
DEV_DIR = ".pullguard"
DEV_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Issued:
    """Where the files went, and the caBundle to put in the webhook configuration."""

    directory: Path
    ca_cert: Path
    cert: Path
    key: Path
    ca_bundle: str
    names: tuple[str, ...]
    new_ca: bool


def service_names(service: str, namespace: str) -> tuple[str, ...]:
    """Every DNS name a Service answers to inside the cluster."""
    return (
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
    )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """ECDSA signs (digitalSignature); only the CA signs certificates and CRLs (RFC 5280 4.2.1.3)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    common_name: str = "pullguard webhook CA", days: int = CA_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: tuple[str, ...],
    days: int = SERVING_DAYS,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A serving certificate for ``names`` (DNS names or IP addresses), signed by the CA."""
    key = _key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _load_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: not an ECDSA key (make a new CA with --new-ca)")
    if cert.not_valid_after_utc <= _now() + RENEW_BEFORE:
        return None
    return cert, key


def write_certificates(
    directory: Path, names: tuple[str, ...], *, new_ca: bool = False, days: int = SERVING_DAYS
) -> Issued:
    """ca.crt, ca.key, tls.crt, tls.key in ``directory``; keeps a usable CA unless ``new_ca``."""
    directory.mkdir(parents=True, exist_ok=True)
    existing = None if new_ca else _load_ca(directory)
    if existing is None:
        ca_cert, ca_key = make_ca()
        _write_key(directory / "ca.key", ca_key)
        _write(directory / "ca.crt", _pem(ca_cert))
    else:
        ca_cert, ca_key = existing
    cert, key = issue(ca_cert, ca_key, names, days)
    # Key first, then certificate: a reader that sees the new certificate sees its key too.
    _write_key(directory / "tls.key", key)
    _write(directory / "tls.crt", _pem(cert))
    return Issued(
        directory,
        directory / "ca.crt",
        directory / "tls.crt",
        directory / "tls.key",
        base64.b64encode(_pem(ca_cert)).decode("ascii"),
        names,
        existing is None,
    )


def _usable(cert_path: Path, key_path: Path, names: tuple[str, ...]) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    return wanted <= have and cert.not_valid_after_utc > _now() + RENEW_BEFORE


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def ensure_dev_certificate(
    directory: Path = Path(DEV_DIR), extra_names: tuple[str, ...] = ()
) -> tuple[Issued, bool]:
    """A development certificate under ``directory``; True when it was made just now."""
    names = tuple(dict.fromkeys((*DEV_NAMES, *extra_names)))
    cert, key = directory / "tls.crt", directory / "tls.key"
    if _usable(cert, key, names):
        ca = directory / "ca.crt"
        bundle = base64.b64encode(ca.read_bytes()).decode("ascii") if ca.is_file() else ""
        return Issued(directory, ca, cert, key, bundle, names, False), False
    return write_certificates(directory, names, days=SERVING_DAYS), True
