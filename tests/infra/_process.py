"""Small helpers shared by the process-based fixtures: spawn, bounded waits, log tails, teardown.

They exist so that every long-running child (registry, containerd) is started the same way: output
to a log file we can quote in errors, killed with the parent if pytest dies hard, stopped by its own
PID, and never waited on without a deadline.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_LIBC_NAME = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_NAME, use_errno=True) if _LIBC_NAME else None

# Every child still running; the atexit hook is a last resort when a fixture finalizer never ran
# (e.g. KeyboardInterrupt during collection). Normal teardown goes through ``terminate``.
_LIVE: dict[int, subprocess.Popen[bytes]] = {}


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL the child when the forking thread dies (no orphans on a hard kill)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stdout+stderr appended to ``log_path`` and register it for emergency cleanup."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl(2), async-signal-safe
        )
    _LIVE[proc.pid] = proc
    return proc


def terminate(proc: subprocess.Popen[bytes] | None, timeout: float = 5.0) -> None:
    """Stop one child by its PID: SIGTERM, bounded wait, then SIGKILL and reap."""
    if proc is None:
        return
    _LIVE.pop(proc.pid, None)
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE.values()):
        terminate(proc, timeout=2.0)


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.01,
    alive: Callable[[], bool] | None = None,
) -> T | None:
    """Poll ``probe`` until it returns a non-None value or ``timeout`` elapses (returns None then).

    ``alive`` lets the caller stop early when the process being waited on has already exited, so a
    crash is reported at once instead of after the full timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if alive is not None and not alive():
            return probe()
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.1)


_OWNER_FILE = "owner.pid"
WORKDIR_PREFIX = "pg-"


def make_workdir(kind: str) -> Path:
    """A short-named dir ``/tmp/pg-<kind>-XXXX`` tagged with our PID; stale ones are swept first.

    Short because containerd's unix socket path must fit in 108 bytes. The PID tag lets a later
    session remove directories left behind by a session that was SIGKILLed (its children die with
    it via PDEATHSIG, but nothing else could delete its files).
    """
    sweep_stale_workdirs()
    path = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{kind}-", dir="/tmp"))
    (path / _OWNER_FILE).write_text(str(os.getpid()))
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale_workdirs() -> None:
    """Delete ``/tmp/pg-*`` dirs whose owner PID is gone (never touches live sessions' dirs)."""
    for path in Path("/tmp").glob(f"{WORKDIR_PREFIX}*"):
        try:
            pid = int((path / _OWNER_FILE).read_text().strip())
        except (OSError, ValueError):
            continue  # not ours, or still being created
        if not _pid_alive(pid):
            unmount_below(path)
            shutil.rmtree(path, ignore_errors=True)


def remove_workdir(path: Path) -> None:
    """Unmount anything below ``path`` (e.g. a crashed unpack) and delete it."""
    unmount_below(path)
    shutil.rmtree(path, ignore_errors=True)


def unmount_below(root: Path) -> None:
    """Lazily unmount mount points under ``root`` so rmtree can never descend into a live mount."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return
    prefix = str(root) + "/"
    targets = [f[1] for f in (m.split() for m in mounts) if len(f) > 1 and f[1].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True, timeout=10)


def log_tail(path: Path, lines: int = 30) -> str:
    """Last ``lines`` lines of a log file, for error messages (empty string if unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def clean_env(drop_prefixes: Sequence[str] = ()) -> dict[str, str]:
    """A copy of ``os.environ`` without proxies or variables that would reconfigure the child.

    Proxy variables are dropped because every server here is on 127.0.0.1 and a proxy would only
    turn loopback traffic into confusing failures.
    """
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    return {
        k: v
        for k, v in os.environ.items()
        if k.lower() not in proxies and not any(k.startswith(p) for p in drop_prefixes)
    }
