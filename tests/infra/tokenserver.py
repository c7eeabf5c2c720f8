"""An in-process token server implementing the distribution token protocol (GET and OAuth2 POST).

Why it is written this way (all verified against distribution 2.8.2, containerd 1.6, skopeo 1.9):

* containerd POSTs ``grant_type=password`` first whenever it has a password and only falls back to
  GET on 400/401/404 (405 with a username); skopeo always GETs. Both paths are served.
* The registry only accepts RS*/ES* JWTs whose header carries the libtrust ``kid`` of a key whose
  certificate is in ``rootcertbundle``, and whose ``aud`` is a plain string (a list gets 401).
* Bad credentials are the only authentication error: valid credentials that lack access get a
  200 with a token whose ``access`` is reduced (possibly empty), exactly as the spec demands; the
  registry then answers ``insufficient_scope``.

Tests get request counters (GET/POST separately), a record of each request (never passwords) and
fault injection (``delay``, ``fail_with_status``/``fail_times``) to simulate slow or broken servers.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import hashlib
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.infra._http import LoopbackHTTP, QuietHandler
from tests.infra._process import make_workdir, remove_workdir

DEFAULT_SERVICE = "pullguard-test-registry"
DEFAULT_ISSUER = "pullguard-test-issuer"
ADMIN_USER = "seed-admin"
ALL_ACTIONS = frozenset({"pull", "push", "delete", "*"})


def libtrust_kid(public_key: rsa.RSAPublicKey) -> str:
    """libtrust key ID: base32(sha256(DER SPKI)[:30]) without padding, 12 groups of 4 joined by ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, 48, 4))


@dataclass(frozen=True)
class Scope:
    """One parsed ``type:name:actions`` scope; the name may contain ':' (host:port), actions may not."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, raw: str) -> Scope | None:
        typ, sep, rest = raw.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not typ or not name:
            return None
        return cls(typ, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True)
class TokenRequest:
    """What one token request asked for and got; passwords are deliberately never recorded."""

    method: str
    username: str | None
    scopes: tuple[str, ...]
    status: int
    granted: tuple[dict[str, Any], ...] = ()
    service: str | None = None
    client_id: str | None = None


@dataclass
class _Grant:
    principal: str | None  # None = anonymous (applies to everybody)
    pattern: str
    actions: frozenset[str]


@dataclass
class _Policy:
    users: dict[str, str] = field(default_factory=dict)
    grants: list[_Grant] = field(default_factory=list)

    def copy(self) -> _Policy:
        return _Policy(dict(self.users), [_Grant(g.principal, g.pattern, g.actions) for g in self.grants])


class _AuthError(Exception):
    """Raised inside the handler for credential failures (answered with 401)."""


class TokenServer(LoopbackHTTP):
    """Threaded stdlib HTTP token server on 127.0.0.1:0; realm is ``{url}/token``.

    ACL model: ``grant(user, pattern, actions)`` with ``fnmatch`` patterns (note ``*`` also matches
    ``/``, so ``team/*`` covers ``team/a/b``); ``allow_anonymous(pattern)`` makes repositories
    pullable by everybody including anonymous clients; the ``admin`` user may do anything and is
    what the image pusher uses to seed registries.
    """

    thread_name = "pg-token-server"

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        admin: tuple[str, str] | None = None,
        token_ttl: int = 300,
        workdir: Path | None = None,
    ) -> None:
        self.service = service
        self.issuer = issuer
        self.token_ttl = token_ttl
        self.admin: tuple[str, str] = admin or (ADMIN_USER, "admin-" + uuid.uuid4().hex)
        self._policy = _Policy(dict(users or {}))
        self._baseline: _Policy | None = None
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        self.delay: float = 0.0
        """Seconds to sleep before answering each token request (simulates a slow server)."""
        self.fail_with_status: int | None = None
        """When set, token requests are answered with this status and a JSON error body."""
        self.fail_times: int | None = None
        """How many requests ``fail_with_status`` applies to (None = until cleared)."""
        self.refresh_token: str | None = None
        """When set, every token response also carries this ``refresh_token`` (OAuth2, as Docker Hub)."""
        self._own_workdir = workdir is None
        self._workdir = workdir or make_workdir("tok")
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = libtrust_kid(self._key.public_key())
        self.cert_bundle_path = self._workdir / "token-bundle.pem"
        self.cert_bundle_path.write_bytes(self._self_signed_cert_pem())

    # ------------------------------------------------------------------ lifecycle
    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    def start(self) -> Self:
        """Bind 127.0.0.1:0 and serve in a daemon thread; also snapshots the policy for ``reset``."""
        super().start()
        if self._baseline is None:
            self._baseline = self._policy.copy()
        return self

    def stop(self) -> None:
        """Shut the server down, join its thread and remove the key material directory."""
        super().stop()
        if self._own_workdir:
            remove_workdir(self._workdir)
            self._own_workdir = False

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    # ------------------------------------------------------------------ policy
    def add_user(self, username: str, password: str) -> None:
        with self._lock:
            self._policy.users[username] = password

    def grant(self, username: str | None, pattern: str, actions: Iterable[str] = ("pull",)) -> None:
        """Let ``username`` (None = everybody, incl. anonymous) perform ``actions`` on matching repos."""
        with self._lock:
            self._policy.grants.append(_Grant(username, pattern, frozenset(actions)))

    def allow_anonymous(self, pattern: str) -> None:
        """Make matching repositories pullable without credentials."""
        self.grant(None, pattern, ("pull",))

    def revoke(self, username: str | None, pattern: str | None = None) -> None:
        """Drop grants of ``username`` (all of them, or only those with exactly ``pattern``)."""
        with self._lock:
            self._policy.grants = [
                g
                for g in self._policy.grants
                if not (g.principal == username and (pattern is None or g.pattern == pattern))
            ]

    def reset(self) -> None:
        """Restore the policy captured at ``start`` and clear stats and faults (per-test isolation)."""
        with self._lock:
            if self._baseline is not None:
                self._policy = self._baseline.copy()
            self._requests.clear()
        self.delay = 0.0
        self.fail_with_status = None
        self.fail_times = None

    def allowed_actions(self, username: str | None, scope: Scope) -> frozenset[str]:
        """Actions the policy gives ``username`` on ``scope`` (intersection with what was asked)."""
        wanted = frozenset(scope.actions)
        if username == self.admin[0]:
            return wanted & ALL_ACTIONS
        if not scope.type.startswith("repository"):
            return frozenset()
        with self._lock:
            grants = list(self._policy.grants)
        allowed: set[str] = set()
        for g in grants:
            if (g.principal is None or g.principal == username) and fnmatch.fnmatchcase(
                scope.name, g.pattern
            ):
                allowed |= g.actions
        if "*" in allowed:
            return wanted
        return wanted & frozenset(allowed)

    def check_credentials(self, username: str, password: str) -> bool:
        if (username, password) == self.admin:
            return True
        with self._lock:
            expected = self._policy.users.get(username)
        return expected is not None and expected == password

    # ------------------------------------------------------------------ stats
    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def get_count(self) -> int:
        return sum(1 for r in self.requests if r.method == "GET")

    @property
    def post_count(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST")

    def count(self, method: str | None = None, username: str | None = None) -> int:
        """Requests matching ``method`` and/or ``username`` (None matches any)."""
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method) and (username is None or r.username == username)
        )

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, req: TokenRequest) -> None:
        with self._lock:
            self._requests.append(req)

    def _take_fault(self) -> int | None:
        with self._lock:
            status = self.fail_with_status
            if status is None:
                return None
            if self.fail_times is not None:
                if self.fail_times <= 0:
                    return None
                self.fail_times -= 1
            return status

    # ------------------------------------------------------------------ tokens
    def issue_token(
        self, username: str | None, scopes: Iterable[Scope | str]
    ) -> tuple[str, list[dict[str, Any]]]:
        """Mint a registry-acceptable JWT carrying the access the policy allows for ``scopes``."""
        access: list[dict[str, Any]] = []
        for raw in scopes:
            scope = raw if isinstance(raw, Scope) else Scope.parse(raw)
            if scope is None:
                continue
            actions = self.allowed_actions(username, scope)
            if actions:
                access.append({"type": scope.type, "name": scope.name, "actions": sorted(actions)})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": username or "",
            "aud": self.service,  # must be a string: distribution 2.8.2 rejects a list
            "exp": now + self.token_ttl,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})
        return token, access

    def _self_signed_cert_pem(self) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pullguard test token signer")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM)


def _first(params: Mapping[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def _make_handler(ts: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"
        server_version = "pullguard-test-token-server"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/token":
                self.reply_json(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
                return
            q = parse_qs(url.query, keep_blank_values=True)
            scopes = [s for raw in q.get("scope", []) for s in raw.split()]
            self._serve(
                "GET",
                self._basic_auth(),
                scopes,
                _first(q, "service"),
                _first(q, "client_id"),
            )

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self.read_body().decode("utf-8", "replace")
            if url.path != "/token":
                self.reply_json(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
                return
            form = parse_qs(body, keep_blank_values=True)

            def one(key: str) -> str | None:
                return _first(form, key)

            scopes = [s for raw in form.get("scope", []) for s in raw.split()]
            grant_type = one("grant_type")
            if grant_type != "password":
                ts._record(TokenRequest("POST", one("username"), tuple(scopes), 400, service=one("service")))
                self.reply_json(
                    400, {"error": "unsupported_grant_type", "error_description": str(grant_type)}
                )
                return
            creds = (one("username") or "", one("password") or "")
            self._serve("POST", creds, scopes, one("service"), one("client_id"))

        # -------------------------------------------------------------- helpers
        def _basic_auth(self) -> tuple[str, str] | _AuthError | None:
            header = self.headers.get("Authorization")
            if not header:
                return None
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                return _AuthError("unsupported authorization scheme")
            try:
                user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return _AuthError("malformed basic credentials")
            if not sep:
                return _AuthError("malformed basic credentials")
            return user, password

        def _serve(
            self,
            method: str,
            creds: tuple[str, str] | _AuthError | None,
            scopes: list[str],
            service: str | None,
            client_id: str | None,
        ) -> None:
            username = creds[0] if isinstance(creds, tuple) else None
            if ts.delay > 0:
                time.sleep(ts.delay)
            fault = ts._take_fault()
            if fault is not None:
                ts._record(
                    TokenRequest(method, username, tuple(scopes), fault, service=service, client_id=client_id)
                )
                self.reply_json(fault, {"errors": [{"code": "UNAVAILABLE", "message": "injected failure"}]})
                return
            if isinstance(creds, _AuthError) or (creds is not None and not ts.check_credentials(*creds)):
                ts._record(
                    TokenRequest(method, username, tuple(scopes), 401, service=service, client_id=client_id)
                )
                # "bad creds" matches the message documented for skopeo in the research notes.
                self.reply_json(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "bad creds"}]},
                    {"WWW-Authenticate": 'Basic realm="pullguard-token-server"'},
                )
                return
            if service is not None and service != ts.service:
                ts._record(
                    TokenRequest(method, username, tuple(scopes), 400, service=service, client_id=client_id)
                )
                self.reply_json(
                    400, {"errors": [{"code": "UNSUPPORTED", "message": f"unknown service {service!r}"}]}
                )
                return
            token, access = ts.issue_token(username, scopes)
            ts._record(
                TokenRequest(
                    method, username, tuple(scopes), 200, tuple(access), service=service, client_id=client_id
                )
            )
            issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            payload: dict[str, Any] = {
                "token": token,
                "access_token": token,
                "expires_in": ts.token_ttl,
                "issued_at": issued,
            }
            if method == "POST":
                payload["scope"] = " ".join(scopes)
            if ts.refresh_token:
                payload["refresh_token"] = ts.refresh_token
            self.reply_json(200, payload)

    return Handler
