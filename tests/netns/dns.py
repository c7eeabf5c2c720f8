"""A tiny DNS server for the rebinding test: its answer for a name changes after the first query.

Wire-level and scripted on purpose (there is no real DNS server to run in the namespace, and the
point is an answer that changes between two lookups, as a rebinding attacker's server does). It
speaks just enough of RFC 1035 (4.1 message format, 4.1.4 no compression in questions) for glibc's
stub resolver: one question per query, an A answer for names in its table (TTL 0, so nothing may
cache it), an empty NOERROR answer for AAAA and other types, NXDOMAIN for unknown names. glibc
sends the A and AAAA queries in parallel on one socket; each datagram is answered on its own.

Used only inside the loopback-only namespace of tests/netns/fault_probe.py, where the namespace's
private /etc/resolv.conf points at it (``nameserver 127.0.0.1``). Standard library only.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Sequence
from ipaddress import IPv4Address
from types import TracebackType


class RebindingDNS:
    """``names[name]`` is a list of IPv4 answers: query n gets answer n (the last one repeats)."""

    def __init__(self, names: dict[str, Sequence[str]], host: str = "127.0.0.1", port: int = 53) -> None:
        self.names = {k.lower().rstrip("."): list(v) for k, v in names.items()}
        self.asked: dict[str, int] = {}  # A queries per name
        self.answered: list[tuple[str, str]] = []  # (name, address) in the order they were given
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rebinding-dns", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self._answer(query)
            if reply is not None:
                self._sock.sendto(reply, peer)

    def _answer(self, query: bytes) -> bytes | None:
        if len(query) < 12:
            return None
        ident, _flags, qdcount = struct.unpack("!HHH", query[:6])
        if qdcount != 1:
            return None
        labels, at = [], 12
        while at < len(query) and query[at] != 0:
            length = query[at]
            labels.append(query[at + 1 : at + 1 + length].decode("ascii", "replace"))
            at += 1 + length
        question_end = at + 5  # the zero byte, QTYPE, QCLASS
        if question_end > len(query):
            return None
        qtype = struct.unpack("!H", query[at + 1 : at + 3])[0]
        name = ".".join(labels).lower()
        question = query[12:question_end]
        if name not in self.names:
            return struct.pack("!HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        if qtype != 1:  # not A: the name exists, with no record of this type
            return struct.pack("!HHHHHH", ident, 0x8180, 1, 0, 0, 0) + question
        with self._lock:
            count = self.asked.get(name, 0)
            self.asked[name] = count + 1
            answers = self.names[name]
            address = answers[min(count, len(answers) - 1)]
            self.answered.append((name, address))
        record = struct.pack("!HHHIH", 0xC00C, 1, 1, 0, 4) + IPv4Address(address).packed
        return struct.pack("!HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + record

    def __enter__(self) -> RebindingDNS:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
