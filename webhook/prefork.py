"""``pullguard serve --workers N``: N worker processes accepting on one listening socket (pre-fork).

Why processes: one Python process answers reviews on one core (the GIL); a node with two cores
answers about twice as many with two workers. The model is gunicorn's and uvicorn's
``--workers``: the supervisor binds the socket and loads the certificate once (so a bad
certificate or a taken port fails ``serve`` with exit 2 before any worker exists), then forks;
every worker inherits the same listening socket and the kernel hands each new connection to one
of the workers blocked in ``accept`` — no port per worker, no proxy in front, nothing for the
Service to know. ``SO_REUSEPORT`` would need one socket per worker on a fixed port (no ``--port
0``) and hashes connections to workers even when one of them is busy.

Each worker composes its own webhook after the fork — engine, caches, connection pools, the
Kubernetes client, its ``CertificateSource`` — since event loops, sockets and TLS state must not
cross a fork. So each worker reloads a rotated certificate on its own (within the same 10 s
interval), and each keeps its own caches: a review answered by worker 2 does not warm worker 1,
so a cold image costs at most N times the registry requests of one worker (the stampede of B4
still collapses to one flight *per worker*). Metrics are per worker (see ``webhook.metrics``).

Lifecycle: SIGTERM or SIGINT to the supervisor is passed on as SIGTERM to every worker, each of
which stops accepting and finishes its in-flight reviews (``server.GRACEFUL_SECONDS``); the
supervisor exits 0 when all are gone. Workers sit in their own process group, so a terminal's
Ctrl-C reaches only the supervisor (which turns it into one SIGTERM each), and ask the kernel for
SIGTERM should the supervisor die (``PR_SET_PDEATHSIG``), so no orphan keeps the port. A worker
that exits on its own — a crash, the OOM killer — is logged with its exit code and replaced, so
the other workers' connections and in-flight reviews are untouched; when more than
``MAX_RESTARTS`` workers die within ``RESTART_WINDOW`` seconds, something is persistently wrong
(a worker that cannot start): the supervisor stops the rest and exits 1, and Kubernetes restarts
the container with back-off, which ``kubectl get pods`` shows (gunicorn's and kubelet's split of
duties: replace one crash, surface a crash loop).

What it is not: a thread pool (the GIL), or a hot-upgrade mechanism (a new version is a new pod).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

log = logging.getLogger("pullguard.prefork")

#: More than this many unexpected worker exits within RESTART_WINDOW seconds: exit 1.
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
_PR_SET_PDEATHSIG = 1
EXIT_CRASH_LOOP = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def recommended_workers() -> int:
    """One worker per CPU this process may use: the CPU affinity, capped by a cgroup v2 quota.

    In a pod with ``resources.limits.cpu: 2`` the kernel grants 2 CPUs' time (``cpu.max``
    ``200000 100000``) however many the node has; more workers than that only contend.
    """
    cpus = len(os.sched_getaffinity(0))
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cpus)


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this worker when the supervisor exits (prctl(2))."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Forks ``count`` workers running ``work(slot)`` and keeps them running until told to stop."""

    def __init__(
        self, count: int, work: Callable[[int], None], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.count = count
        self.work = work
        self._clock = clock
        self.children: dict[int, int] = {}  # pid -> slot
        self.stopping = False
        self.failed = False
        self._deaths: list[float] = []

    def _spawn(self, slot: int) -> None:
        parent = os.getpid()
        # no stop signal may run the supervisor's handler inside a worker that has just forked
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
                os.setpgid(0, 0)
                _die_with_parent()
                if os.getppid() != parent:  # the supervisor died before prctl took effect
                    os._exit(0)
                self.work(slot)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker %d failed", slot)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = slot
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        log.info("worker started", extra={"fields": {"worker": slot, "pid": pid}})

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        self._stop_all()

    def _stop_all(self) -> None:
        self.stopping = True
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def run(self) -> int:
        """Start the workers and wait; the exit code of ``serve`` (0, or 1 after a crash loop)."""
        previous = {s: signal.signal(s, self._signal) for s in _STOP_SIGNALS}
        # what the supervisor imported is shared copy-on-write with every worker; moved out of the
        # collector's generations, a worker's garbage collections do not write to (and so copy) it
        gc.freeze()
        try:
            for slot in range(self.count):
                if not self.stopping:
                    self._spawn(slot)
            while self.children:
                pid, status = os.wait()
                if pid not in self.children:
                    continue
                slot = self.children.pop(pid)
                code = os.waitstatus_to_exitcode(status)
                fields = {"worker": slot, "pid": pid, "exitCode": code}
                if self.stopping:
                    log.info("worker stopped", extra={"fields": fields})
                    continue
                self._replace(slot, fields)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return EXIT_CRASH_LOOP if self.failed else 0

    def _replace(self, slot: int, fields: dict[str, int]) -> None:
        now = self._clock()
        self._deaths = [t for t in self._deaths if now - t < RESTART_WINDOW] + [now]
        if len(self._deaths) > MAX_RESTARTS:
            log.error(
                "workers keep dying; stopping pullguard so Kubernetes restarts it",
                extra={"fields": {**fields, "deaths": len(self._deaths), "windowSeconds": RESTART_WINDOW}},
            )
            self.failed = True
            self._stop_all()
            return
        log.error("worker exited unexpectedly; starting a new one", extra={"fields": fields})
        self._spawn(slot)
