"""The SSRF policy: may pullguard open a connection to this address, or to this host name?

What: ``classify`` names the kind of an IP address, ``refusal`` applies a ``DestinationPolicy``
to an address, and ``refusal_for_host`` checks a host string before it is resolved. Each returns
``None`` (allowed) or a sentence saying what the destination is and which ``network:`` key
(DESIGN 1.3) would allow it.

Why: pullguard contacts hosts that users choose: the registry of an image reference, the token
realm a registry names in its ``WWW-Authenticate`` challenge, redirect targets. It runs inside a
cluster, next to services that hand out credentials to whoever asks: the instance metadata
service (AWS IMDS at 169.254.169.254 and [fd00:ec2::254], GCE, Azure, Alibaba at
100.100.100.200), the ECS and EKS Pod Identity credential endpoints, and the kubelet and sidecars
on 127.0.0.1. Anyone allowed to create a Pod could otherwise make the webhook fetch those URLs
with the webhook's own identity. The OWASP Server-Side Request Forgery Prevention Cheat Sheet
("application can send requests to any external IP address or domain name") asks for this: check
the IP address after resolution against loopback, link-local, private and metadata ranges, do not
trust the string the user wrote, and use the checked address. DESIGN 5 states the rule.

How:
- An address is classified by where packets to it go, not by how it is written. An IPv6 address
  that embeds an IPv4 address is classified by the IPv4 address, because a dual-stack socket, a
  NAT64 gateway or a 6to4 relay delivers it there. This covers IPv4-mapped ``::ffff:a.b.c.d``,
  IPv4-compatible ``::a.b.c.d``, IPv4-translated ``::ffff:0:a.b.c.d``, NAT64 ``64:ff9b::/96``
  and 6to4 ``2002::/16``.
- A host string is parsed the way the C library parses it. glibc's ``getaddrinfo`` accepts every
  IPv4 form ``inet_aton`` accepts: ``2852039166``, ``0xA9FEA9FE``, ``0251.0376.0251.0376``,
  ``169.254.43518`` and ``127.1``. ``ipaddress`` rejects all of these, so a check that only
  understood dotted quads would let them through. A test compares this parser with glibc.
- Metadata addresses take precedence over the class around them. 100.100.100.200 is in CGNAT
  space (private, allowed by default) and fd00:ec2::254 is a ULA, yet both are metadata services.
- 0.0.0.0/8 and ``::`` are "unspecified". Linux delivers a connection to them to the local host,
  so ``network.allowLoopback`` governs them.
- Multicast, broadcast, and reserved, documentation or unallocated space are always refused. No
  registry lives there, so no setting should make them reachable.
- Text that cannot be parsed is refused, never allowed, and none of these functions raises.
  ``classify`` returns ``"invalid"`` for such text, in addition to the classes listed below.

Deliberately not here: resolving names and connecting (core performs no I/O, and the import-linter
contract forbids ``socket`` and ``ssl`` here). ``webhook.adapters.http`` resolves each host once,
asks ``refusal`` about every address, and connects to an address that passed. Checking and
connecting to the same address defeats DNS rebinding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

__all__ = [
    "CLASSES",
    "METADATA_ADDRESSES",
    "METADATA_NAMES",
    "DestinationPolicy",
    "classify",
    "literal_address",
    "refusal",
    "refusal_for_host",
]

#: Every value ``classify`` returns. "invalid" means the text is not an IP address at all.
CLASSES = frozenset(
    {
        "loopback",
        "link-local",
        "metadata",
        "private",
        "public",
        "multicast",
        "reserved",
        "unspecified",
        "invalid",
    }
)


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Which address classes pullguard may connect to (DESIGN 1.3 ``network:``).

    The defaults follow DESIGN 5. Registries on the local host and anything link-local are
    refused, because they are where credentials are handed out. Private space is allowed,
    because in-cluster registries are common.
    """

    #: 127.0.0.0/8 and ::1, plus 0.0.0.0/8 and ::, which reach the local host on Linux.
    allow_loopback: bool = False
    #: 169.254.0.0/16, fe80::/10, and cloud metadata addresses and names.
    allow_link_local: bool = False
    #: RFC 1918, 100.64.0.0/10 (CGNAT), fc00::/7 (ULA).
    allow_private: bool = True


#: Instance services that hand out credentials or identity. Each one is refused unless
#: ``network.allowLinkLocal`` is true, even where its range (CGNAT, ULA, public) would be allowed.
METADATA_ADDRESSES: frozenset[IPv4Address | IPv6Address] = frozenset(
    {
        # AWS IMDS ("Access instance metadata for an EC2 instance", EC2 User Guide). GCE, Azure
        # IMDS, OCI, OpenStack and DigitalOcean use the same IPv4 address.
        IPv4Address("169.254.169.254"),
        IPv6Address("fd00:ec2::254"),  # AWS IMDS over IPv6 (Nitro instances)
        IPv4Address("169.254.170.2"),  # ECS task metadata and task-role credentials
        IPv4Address("169.254.170.23"),  # EKS Pod Identity Agent
        IPv6Address("fd00:ec2::23"),  # EKS Pod Identity Agent, IPv6
        IPv4Address("169.254.169.123"),  # Amazon Time Sync Service
        IPv6Address("fd00:ec2::123"),  # Amazon Time Sync Service, IPv6
        IPv6Address("fd00:ec2::253"),  # Amazon Route 53 Resolver, IPv6 (a ULA, so "private" otherwise)
        IPv6Address("fd20:ce::254"),  # GCE metadata server on IPv6 VMs
        IPv4Address("100.100.100.200"),  # Alibaba Cloud ECS metadata (inside CGNAT space)
        IPv4Address("168.63.129.16"),  # Azure WireServer: host agent and extension config (public range)
    }
)

#: Host names of metadata services. They are refused before resolution, so the error names the
#: service even when the local resolver maps the name somewhere unexpected. The address check
#: after resolution covers these names as well.
METADATA_NAMES: frozenset[str] = frozenset(
    {
        "metadata.google.internal",  # GCE
        "metadata.goog",  # GCE
        "metadata",  # GCE, through the resolver's search path
        "instance-data",  # AWS, through the VPC resolver's search path
        "instance-data.ec2.internal",  # AWS
        "metadata.tencentyun.com",  # Tencent Cloud
        "metadata.platformequinix.com",  # Equinix Metal (a public address that answers per instance)
        "metadata.packet.net",  # Equinix Metal, former name
    }
)

_LOOPBACK_NAMES = frozenset({"localhost"})  # RFC 6761 6.3: localhost and *.localhost are loopback

_V4_UNSPECIFIED = IPv4Network("0.0.0.0/8")
_V4_LOOPBACK = IPv4Network("127.0.0.0/8")
_V4_LINK_LOCAL = IPv4Network("169.254.0.0/16")
_V4_MULTICAST = IPv4Network("224.0.0.0/4")
_V4_BROADCAST = IPv4Address("255.255.255.255")
_V4_PRIVATE = tuple(
    IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
# IANA special-purpose space that is not reachable on the Internet. The list is explicit so the
# answer does not depend on the Python patch version (``is_global`` changed in 3.11.10).
_V4_RESERVED = tuple(
    IPv4Network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "240.0.0.0/4",  # reserved for future use
    )
)

_V6_LINK_LOCAL = IPv6Network("fe80::/10")
_V6_MULTICAST = IPv6Network("ff00::/8")
_V6_PRIVATE = IPv6Network("fc00::/7")
_V6_GLOBAL_UNICAST = IPv6Network("2000::/3")
_V6_RESERVED = tuple(
    IPv6Network(n)
    for n in (
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): where the IPv4 address sits is site-specific
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, including Teredo
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # SRv6 SIDs
        "fec0::/10",  # deprecated site-local
    )
)
_V6_MAPPED = IPv6Network("::ffff:0:0/96")
_V6_TRANSLATED = IPv6Network("::ffff:0:0:0/96")
_V6_NAT64 = IPv6Network("64:ff9b::/96")
_V6_6TO4 = IPv6Network("2002::/16")
_V6_COMPATIBLE = IPv6Network("::/96")

_MAX_TEXT = 255  # a DNS name has at most 253 characters; an address literal is shorter still
_ZONE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}", re.ASCII)
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?", re.ASCII)
_INET_PART_RE = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*", re.ASCII)

_ALLOWED_BY = {
    "loopback": "network.allowLoopback",
    "unspecified": "network.allowLoopback",
    "link-local": "network.allowLinkLocal",
    "metadata": "network.allowLinkLocal",
    "private": "network.allowPrivate",
}
_NOUNS = {
    "loopback": "a loopback address",
    "unspecified": "an unspecified address, which reaches the local host on Linux",
    "link-local": "a link-local address",
    "metadata": "a cloud metadata address",
    "private": "a private address",
    "multicast": "a multicast address",
    "reserved": "a reserved address",
}


@dataclass(frozen=True, slots=True)
class _Literal:
    """An address literal: what was written, what it denotes, and what packets to it reach."""

    address: IPv4Address | IPv6Address  # without zone
    zone: str | None
    target: IPv4Address | IPv6Address  # the embedded IPv4 address, when there is one

    @property
    def canonical(self) -> str:
        return f"{self.address}%{self.zone}" if self.zone else str(self.address)


def classify(address: str) -> str:
    """The class of an IP address in any form the C library accepts; ``"invalid"`` otherwise.

    The result is one of ``CLASSES``. An IPv6 address that embeds an IPv4 address is classified
    by the IPv4 address.
    """
    literal = _parse(address)
    return "invalid" if literal is None else _classify(literal.target)


def literal_address(host: str) -> str | None:
    """The canonical address a host string denotes (``"127.1"`` -> ``"127.0.0.1"``), or None for a name.

    Brackets are removed. An IPv6 zone is kept (RFC 6874 ``%25`` is decoded), because connecting
    to a link-local address needs it.
    """
    literal = _parse(host)
    return None if literal is None else literal.canonical


def refusal(address: str, policy: DestinationPolicy) -> str | None:
    """None if ``policy`` allows connecting to ``address``; otherwise why not, and which key allows it."""
    literal = _parse(address)
    if literal is None:
        return f"{_shown(address)} is not an IP address (refused)"
    kind = _classify(literal.target)
    if _allowed(kind, policy):
        return None
    if address == literal.canonical and literal.target == literal.address:
        subject = f"{address} is"
    elif literal.target == literal.address:  # another spelling of the same address
        subject = f"{address} denotes {literal.canonical},"
    else:  # an IPv6 address that embeds an IPv4 address
        subject = f"{address} denotes {literal.target},"
    noun = "the broadcast address" if literal.target == _V4_BROADCAST else _NOUNS[kind]
    key = _ALLOWED_BY.get(kind)
    rule = f"refused unless {key} is true" if key else "always refused"
    return f"{subject} {noun} ({rule})"


def refusal_for_host(host: str, policy: DestinationPolicy) -> str | None:
    """Check a host string (from a URL) before resolving it; None if it may be resolved.

    Metadata names and loopback names are refused by name. Address literals in every form the C
    library accepts (bracketed IPv6 included) are parsed and checked with ``refusal``. Anything
    else must be a syntactically valid DNS name. A name whose last label is numeric but is not a
    valid address (``1.2.3.4.5``, ``127.0.0.1.``) is refused, because resolvers disagree on it.
    Passing this check is not enough to connect: the resolved addresses are checked as well.
    """
    if len(host) > _MAX_TEXT:
        return f"{_shown(host)} is too long to be a host name (refused)"
    if _parse(host) is not None:
        return refusal(host, policy)
    name = host.lower()
    name = name.removesuffix(".")
    labels = name.split(".")
    if not (name.isascii() and all(_LABEL_RE.fullmatch(label) for label in labels)):
        return f"{_shown(host)} is not a valid host name or IP address (refused)"
    if labels[-1].isdigit():
        return f"{_shown(host)} is not a valid host name: its last label is numeric (refused)"
    if name in METADATA_NAMES and not policy.allow_link_local:
        return f"{host} is a cloud metadata host name (refused unless network.allowLinkLocal is true)"
    if labels[-1] in _LOOPBACK_NAMES and not policy.allow_loopback:
        return f"{host} is a loopback host name (refused unless network.allowLoopback is true)"
    return None


def _allowed(kind: str, policy: DestinationPolicy) -> bool:
    if kind == "public":
        return True
    if kind == "private":
        return policy.allow_private
    if kind in {"loopback", "unspecified"}:
        return policy.allow_loopback
    if kind in {"link-local", "metadata"}:
        return policy.allow_link_local
    return False  # multicast, reserved, invalid


def _classify(address: IPv4Address | IPv6Address) -> str:
    if address in METADATA_ADDRESSES:
        return "metadata"
    if isinstance(address, IPv4Address):
        return _classify_v4(address)
    return _classify_v6(address)


def _classify_v4(address: IPv4Address) -> str:
    if address in _V4_UNSPECIFIED:
        return "unspecified"
    if address in _V4_LOOPBACK:
        return "loopback"
    if address in _V4_LINK_LOCAL:
        return "link-local"
    if address in _V4_MULTICAST:
        return "multicast"
    if any(address in net for net in _V4_PRIVATE):
        return "private"
    if address == _V4_BROADCAST or any(address in net for net in _V4_RESERVED):
        return "reserved"
    return "public" if address.is_global else "reserved"


def _classify_v6(address: IPv6Address) -> str:
    value = int(address)
    if value == 0:
        return "unspecified"
    if value == 1:
        return "loopback"
    if address in _V6_LINK_LOCAL:
        return "link-local"
    if address in _V6_MULTICAST:
        return "multicast"
    if address in _V6_PRIVATE:
        return "private"
    if any(address in net for net in _V6_RESERVED):
        return "reserved"
    return "public" if address in _V6_GLOBAL_UNICAST and address.is_global else "reserved"


def _embedded_v4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address packets to ``address`` are delivered to, when it embeds one."""
    value = int(address)
    if address in _V6_MAPPED or address in _V6_TRANSLATED or address in _V6_NAT64:
        return IPv4Address(value & 0xFFFFFFFF)
    if address in _V6_6TO4:
        return IPv4Address((value >> 80) & 0xFFFFFFFF)
    if address in _V6_COMPATIBLE and value > 1:  # :: and ::1 are IPv6's own, not 0.0.0.0/0.0.0.1
        return IPv4Address(value)
    return None


def _parse(text: str) -> _Literal | None:
    """Parse an address literal in any form glibc's ``getaddrinfo`` treats as numeric; never raises."""
    if not isinstance(text, str) or not text.isascii() or len(text) > _MAX_TEXT:
        return None
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1]
        return _parse_v6(inner) if ":" in inner else None
    if ":" in text:
        return _parse_v6(text)
    v4 = _inet_aton(text)
    return None if v4 is None else _Literal(v4, None, v4)


def _parse_v6(text: str) -> _Literal | None:
    body, percent, zone = text.partition("%")
    if percent:
        zone = zone.removeprefix("25")  # RFC 6874 writes the zone separator as %25 in URLs
        if not _ZONE_RE.fullmatch(zone):
            return None
    try:
        address = IPv6Address(body)
    except ValueError:
        return None
    embedded = _embedded_v4(address)
    return _Literal(address, zone or None, embedded or address)


def _inet_aton(text: str) -> IPv4Address | None:
    """glibc ``inet_aton``: 1-4 parts, each decimal, ``0x`` hex or ``0`` octal; the last fills the rest.

    ``a.b.c.d`` is the usual form; ``a.b.c`` puts c in the last 16 bits, ``a.b`` puts b in the
    last 24, and a single number is the whole 32-bit address.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_PART_RE.fullmatch(p) for p in parts):
        return None
    values = [int(p, 16) if p[:2] in {"0x", "0X"} else int(p, 8) if p[0] == "0" else int(p) for p in parts]
    *leading, last = values
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    value = last
    for i, v in enumerate(leading):
        value |= v << (8 * (3 - i))
    return IPv4Address(value)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
