"""Run the real Debian CNCF distribution registry (``/usr/bin/docker-registry`` 2.8.2) on 127.0.0.1.

Each instance gets its own temp dir (config, storage, htpasswd, TLS material, log) and binds
``127.0.0.1:0``; the bound port is read from the ``listening on`` log line, so parallel sessions
never collide. The config is written as JSON, which the registry's YAML loader accepts, so no YAML
quoting can go wrong.
"""

from __future__ import annotations

import json
import re
import ssl
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NoReturn, Self

import bcrypt
import httpx
import trustme

from tests.infra._process import (
    clean_env,
    log_tail,
    make_workdir,
    remove_workdir,
    spawn,
    terminate,
    wait_until,
)
from tests.infra.tokenserver import TokenServer

REGISTRY_BIN = "/usr/bin/docker-registry"
HTPASSWD_REALM = "pullguard-basic-realm"
SEED_ADMIN = "seed-admin"
Mode = Literal["noauth", "htpasswd", "token"]
_LISTENING = re.compile(r'msg="listening on 127\.0\.0\.1:(\d+)')
_ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) ')


@dataclass(frozen=True)
class AccessEntry:
    """One line of the registry's access log: what was asked and what it answered."""

    method: str
    path: str
    status: int


class RegistryStartError(RuntimeError):
    """The registry did not come up; the message carries the log tail."""


class RegistryProcess:
    """One ``docker-registry serve`` child in ``noauth``, ``htpasswd`` or ``token`` mode, optionally TLS.

    In ``htpasswd`` mode an extra ``seed-admin`` user (random password) is added so the image pusher
    can seed without borrowing a test user; in ``token`` mode the token server's admin is used.
    Both are exposed as ``push_credentials``.
    """

    def __init__(
        self,
        mode: Mode = "noauth",
        *,
        users: Mapping[str, str] | None = None,
        token_server: TokenServer | None = None,
        tls_ca: trustme.CA | None = None,
        startup_timeout: float = 5.0,
        binary: str = REGISTRY_BIN,
        access_log: bool = False,
    ) -> None:
        if mode == "token" and token_server is None:
            raise ValueError("token mode needs a running TokenServer")
        if mode != "htpasswd" and users:
            raise ValueError("users only apply to htpasswd mode (token mode takes them from the TokenServer)")
        self.mode: Mode = mode
        self.token_server = token_server
        self.startup_timeout = startup_timeout
        self.binary = binary
        self._users: dict[str, str] = dict(users or {})
        self._seed_admin = (SEED_ADMIN, "seed-" + uuid.uuid4().hex) if mode == "htpasswd" else None
        self._tls_ca = tls_ca
        self.access_log = access_log
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._ssl_context: ssl.SSLContext | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Write config, spawn, read the port from the log and wait (bounded) until ``/v2/`` answers."""
        if self._proc is not None:
            return self
        if not Path(self.binary).exists():
            raise RegistryStartError(f"{self.binary} not found (apt-get install docker-registry)")
        self._dir = make_workdir(f"reg-{self.mode}")
        config = self._config(self._dir)
        cfg_path = self._dir / "config.yml"
        cfg_path.write_text(json.dumps(config, indent=2))
        self._proc = spawn(
            [self.binary, "serve", str(cfg_path)], self.log_path, env=clean_env(drop_prefixes=("REGISTRY_",))
        )
        proc = self._proc

        def port_from_log() -> int | None:
            m = _LISTENING.search(self.log_path.read_text(errors="replace"))
            return int(m.group(1)) if m else None

        port = wait_until(port_from_log, timeout=self.startup_timeout, alive=lambda: proc.poll() is None)
        if port is None:
            self._fail("did not log 'listening on'")
        self._port = port
        with httpx.Client(verify=self.ssl_context or False, timeout=1.0, trust_env=False) as client:

            def answers() -> bool | None:
                try:
                    status = client.get(f"{self.url}/v2/").status_code
                except httpx.TransportError:
                    return None
                return True if status in (200, 401) else None

            if wait_until(answers, timeout=self.startup_timeout, alive=lambda: proc.poll() is None) is None:
                self._fail("did not answer /v2/ with 200 or 401")
        return self

    def stop(self) -> None:
        """Kill our own child by PID, wait for it, and delete the instance directory."""
        terminate(self._proc)
        self._proc = None
        if self._dir is not None:
            remove_workdir(self._dir)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    def _fail(self, what: str) -> NoReturn:
        tail = log_tail(self.log_path)
        code = self._proc.poll() if self._proc else None
        self.stop()
        raise RegistryStartError(
            f"docker-registry ({self.mode}) {what} within {self.startup_timeout}s (exit code {code}).\n"
            f"--- log tail ---\n{tail}"
        )

    # ------------------------------------------------------------------ config
    def _config(self, root: Path) -> dict[str, Any]:
        http: dict[str, Any] = {"addr": "127.0.0.1:0", "secret": uuid.uuid4().hex}
        config: dict[str, Any] = {
            "version": "0.1",
            "log": {"level": "info", "accesslog": {"disabled": not self.access_log}},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http,
            "health": {"storagedriver": {"enabled": False}},
        }
        if self._tls_ca is not None:
            cert = self._tls_ca.issue_cert("127.0.0.1", "localhost", "::1")
            (root / "server.crt").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
            cert.private_key_pem.write_to_path(str(root / "server.key"))
            self._tls_ca.cert_pem.write_to_path(str(root / "ca.pem"))
            (root / "certs.d").mkdir()
            self._tls_ca.cert_pem.write_to_path(str(root / "certs.d" / "ca.crt"))
            http["tls"] = {"certificate": str(root / "server.crt"), "key": str(root / "server.key")}
        if self.mode == "htpasswd":
            self._write_htpasswd(root / "htpasswd")
            config["auth"] = {"htpasswd": {"realm": HTPASSWD_REALM, "path": str(root / "htpasswd")}}
        elif self.mode == "token":
            assert self.token_server is not None
            config["auth"] = {
                "token": {
                    "realm": self.token_server.realm,
                    "service": self.token_server.service,
                    "issuer": self.token_server.issuer,
                    "rootcertbundle": str(self.token_server.cert_bundle_path),
                }
            }
        return config

    def _write_htpasswd(self, path: Path) -> None:
        """bcrypt entries ($2b$, cost 5 for speed); the registry rejects $apr1$ MD5 entries."""
        entries = dict(self._users)
        if self._seed_admin is not None:
            entries[self._seed_admin[0]] = self._seed_admin[1]
        lines = [
            f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}" for u, p in entries.items()
        ]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(path)  # atomic: the registry re-reads the file when its mtime changes

    def add_user(self, username: str, password: str) -> None:
        """Add/replace an htpasswd user at runtime (the registry notices the new mtime, no restart)."""
        if self.mode != "htpasswd":
            raise ValueError("add_user only applies to htpasswd mode")
        self._users[username] = password
        if self._dir is not None:
            self._write_htpasswd(self._dir / "htpasswd")

    # ------------------------------------------------------------------ properties
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("registry is not running")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` — the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def tls(self) -> bool:
        return self._tls_ca is not None

    @property
    def ca_file(self) -> Path | None:
        """PEM of the CA that signed the server cert (None without TLS)."""
        return self._dir / "ca.pem" if self.tls and self._dir else None

    @property
    def cert_dir(self) -> Path | None:
        """Directory holding ``ca.crt``, the layout skopeo's ``--cert-dir`` expects (None without TLS)."""
        return self._dir / "certs.d" if self.tls and self._dir else None

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying client context trusting only the test CA (None without TLS)."""
        if self.ca_file is None:
            return None
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=str(self.ca_file))
        return self._ssl_context

    @property
    def users(self) -> dict[str, str]:
        """htpasswd users as given (without the internal seed admin)."""
        return dict(self._users)

    @property
    def push_credentials(self) -> tuple[str, str] | None:
        """Credentials able to push: seed admin (htpasswd), token-server admin (token), None (noauth)."""
        if self.mode == "token":
            assert self.token_server is not None
            return self.token_server.admin
        return self._seed_admin

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("registry has no working directory (not started)")
        return self._dir / "registry.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def served(self) -> list[AccessEntry]:
        """Every request the registry answered so far, from its access log (``access_log=True``).

        The registry writes one Apache combined-format line per request (gorilla/handlers, as
        distribution's ``http.accesslog``), so a benchmark can count what each client sent on the
        server side, identically for every client.
        """
        if not self.access_log:
            raise RuntimeError("start the registry with access_log=True to count requests")
        text = self.log_path.read_text(errors="replace") if self._dir else ""
        return [AccessEntry(m[1], m[2], int(m[3])) for m in _ACCESS.finditer(text)]

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines) if self._dir else ""

    def __repr__(self) -> str:
        where = self.url if self._port else "not started"
        return f"RegistryProcess(mode={self.mode!r}, tls={self.tls}, {where})"
