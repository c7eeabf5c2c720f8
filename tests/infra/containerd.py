"""containerd 1.6 + ``ctr`` as the ground-truth pull oracle.

A private containerd runs with a fully self-contained root/state/socket in a short temp dir (unix
socket paths are limited to 108 bytes) and the CRI plugin disabled, so nothing touches
``/run/containerd`` or ``/var/lib/containerd``. ``ctr images pull`` is the oracle (``ctr content
fetch`` is not: it exits 0 on a platform mismatch). TLS registries need ``--hosts-dir``: ctr sends
plain HTTP to 127.0.0.1 otherwise, even with ``--tlscacert``.

If containerd cannot run here (not root, binaries missing, daemon dies, no usable snapshotter) a
``ContainerdUnavailableError`` is raised with the reason — tests must not silently skip the oracle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NoReturn, Self

from tests.infra._process import (
    clean_env,
    log_tail,
    make_workdir,
    remove_workdir,
    spawn,
    terminate,
    wait_until,
)

CONTAINERD_BIN = "containerd"
CTR_BIN = "ctr"
NAMESPACE = "pullguard"


class ContainerdUnavailableError(RuntimeError):
    """containerd cannot run in this environment; the message says why."""


@dataclass(frozen=True)
class PullResult:
    """Outcome of one ``ctr images pull``; ``message`` is the final ``ctr: …`` line on failure."""

    ok: bool
    message: str
    duration: float
    returncode: int = 0
    output: str = ""


class Containerd:
    """One private containerd daemon plus a ``ctr`` wrapper bound to its socket."""

    def __init__(self, *, startup_timeout: float = 10.0, pull_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.pull_timeout = pull_timeout
        self.snapshotter: str | None = None
        self._containerd = CONTAINERD_BIN
        self._ctr_bin = CTR_BIN
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Self:
        """Check prerequisites, write the config, spawn, and wait until ``ctr version`` succeeds."""
        if self._proc is not None:
            return self
        self._check_prerequisites()
        self._dir = make_workdir("ctd")
        cfg = self._dir / "config.toml"
        cfg.write_text(self._config(self._dir))
        self._proc = spawn([self._containerd, "--config", str(cfg)], self.log_path, env=clean_env())
        proc = self._proc

        def ready() -> bool | None:
            if not self.socket.exists():
                return None
            r = self._ctr("version", timeout=5)
            return True if r.returncode == 0 else None

        if wait_until(ready, timeout=self.startup_timeout, alive=lambda: proc.poll() is None) is None:
            self._fail(f"did not become ready within {self.startup_timeout}s")
        self.snapshotter = self._pick_snapshotter()
        return self

    def stop(self) -> None:
        """Stop our daemon by PID, unmount anything left under our root, delete the temp dir."""
        terminate(self._proc, timeout=10)
        self._proc = None
        if self._dir is not None:
            remove_workdir(self._dir)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    def _check_prerequisites(self) -> None:
        if os.geteuid() != 0:
            raise ContainerdUnavailableError(
                "containerd needs root (overlay mounts, chown on unpack); euid != 0"
            )
        missing = [b for b in (CONTAINERD_BIN, CTR_BIN) if shutil.which(b) is None]
        if missing:
            raise ContainerdUnavailableError(f"missing binaries: {missing} (apt-get install containerd)")
        self._containerd = shutil.which(CONTAINERD_BIN) or CONTAINERD_BIN
        self._ctr_bin = shutil.which(CTR_BIN) or CTR_BIN

    def _fail(self, what: str) -> NoReturn:
        tail = log_tail(self.log_path)
        code = self._proc.poll() if self._proc else None
        self.stop()
        raise ContainerdUnavailableError(f"containerd {what} (exit code {code}).\n--- log tail ---\n{tail}")

    @staticmethod
    def _config(root: Path) -> str:
        return f"""version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
]
[grpc]
  address = "{root}/containerd.sock"
[ttrpc]
  address = "{root}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"""

    def _pick_snapshotter(self) -> str:
        """overlayfs when it loaded, else native; neither means pulls cannot unpack here."""
        out = self._ctr("plugins", "ls", timeout=10).stdout
        status = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 4 and parts[0] == "io.containerd.snapshotter.v1":
                status[parts[1]] = parts[-1]
        for name in ("overlayfs", "native"):
            if status.get(name) == "ok":
                return name
        self._fail(f"has no usable snapshotter (plugins: {status})")

    # ------------------------------------------------------------------ ctr
    @property
    def socket(self) -> Path:
        if self._dir is None:
            raise RuntimeError("containerd is not running")
        return self._dir / "containerd.sock"

    @property
    def address(self) -> str:
        return str(self.socket)

    @property
    def log_path(self) -> Path:
        if self._dir is None:
            raise RuntimeError("containerd has no working directory (not started)")
        return self._dir / "containerd.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _ctr(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self._ctr_bin, "--address", self.address, "--namespace", NAMESPACE, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
            check=False,
        )

    def pull(
        self,
        ref: str,
        *,
        user: str | None = None,
        password: str | None = None,
        platform: str = "linux/amd64",
        plain_http: bool = True,
        hosts_dir: Path | str | None = None,
    ) -> PullResult:
        """``ctr images pull`` (fetch + unpack for ``platform``); never raises on a failed pull.

        Pass ``plain_http=False`` together with ``hosts_dir`` for a TLS registry.
        """
        args = ["images", "pull", "--platform", platform]
        if self.snapshotter:
            args += ["--snapshotter", self.snapshotter]
        if plain_http:
            args.append("--plain-http")
        if hosts_dir is not None:
            args += ["--hosts-dir", str(hosts_dir)]
        if user is not None:
            args += ["--user", user if password is None else f"{user}:{password}"]
        args.append(ref)
        started = time.monotonic()
        try:
            r = self._ctr(*args, timeout=self.pull_timeout)
        except subprocess.TimeoutExpired:
            return PullResult(False, f"ctr pull timed out after {self.pull_timeout}s", self.pull_timeout, -1)
        duration = time.monotonic() - started
        output = (r.stdout + r.stderr).strip()
        if r.returncode == 0:
            return PullResult(True, "", duration, 0, output)
        err_lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        ctr_lines = [ln for ln in err_lines if ln.startswith("ctr: ")]
        message = (ctr_lines or err_lines or [f"exit code {r.returncode}"])[-1]
        return PullResult(False, message, duration, r.returncode, output)

    def images(self) -> list[str]:
        """Image references currently in our namespace."""
        r = self._ctr("images", "ls", "-q", timeout=30)
        return [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]

    def content_count(self) -> int:
        """Number of blobs in the content store (0 after ``remove_all_images`` once GC ran)."""
        r = self._ctr("content", "ls", "-q", timeout=30)
        return len([ln for ln in r.stdout.splitlines() if ln.strip()])

    def remove_all_images(self) -> None:
        """Delete every image with a synchronous GC, so later pulls must fetch from the registry."""
        refs = self.images()
        if refs:
            r = self._ctr("images", "rm", "--sync", *refs, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"ctr images rm failed: {r.stderr.strip()}")

    def make_hosts_dir(
        self, host: str, ca_file: Path | str, *, capabilities: tuple[str, ...] = ("pull", "resolve")
    ) -> Path:
        """Write ``certs.d/<host>/hosts.toml`` pointing ctr at ``https://<host>`` with ``ca_file``."""
        if self._dir is None:
            raise RuntimeError("containerd is not running")
        base = self._dir / "certs.d"
        host_dir = base / host
        host_dir.mkdir(parents=True, exist_ok=True)
        caps = ", ".join(f'"{c}"' for c in capabilities)
        (host_dir / "hosts.toml").write_text(
            f'server = "https://{host}"\n\n'
            f'[host."https://{host}"]\n'
            f"  capabilities = [{caps}]\n"
            f'  ca = "{ca_file}"\n'
        )
        return base
