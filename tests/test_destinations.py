"""The SSRF policy classifies every spelling of an address by where it leads (core/destinations.py).

Tables first: every form of every class, with the policy flag that allows it. Then properties:
nothing raises on arbitrary text, garbage is refused, alternative spellings classify like the
dotted quad they denote, and the IPv4 parser agrees with glibc's ``getaddrinfo``. Comparing with
glibc needs no network, because ``AI_NUMERICHOST`` forbids name resolution.
"""

from __future__ import annotations

import socket
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from webhook.core.destinations import (
    CLASSES,
    METADATA_ADDRESSES,
    METADATA_NAMES,
    DestinationPolicy,
    classify,
    literal_address,
    refusal,
    refusal_for_host,
)

DEFAULT = DestinationPolicy()
LOOPBACK = DestinationPolicy(allow_loopback=True)
LINK_LOCAL = DestinationPolicy(allow_link_local=True)
NO_PRIVATE = DestinationPolicy(allow_private=False)
EVERYTHING = DestinationPolicy(allow_loopback=True, allow_link_local=True, allow_private=True)

ZEROS = "0.0.0.0"  # noqa: S104 - a classification vector, never bound

# (text, class, canonical address, the policy that allows it or None if nothing does)
ADDRESSES = [
    # loopback in every spelling glibc accepts
    pytest.param("127.0.0.1", "loopback", "127.0.0.1", LOOPBACK, id="loopback-dotted"),
    pytest.param("127.1", "loopback", "127.0.0.1", LOOPBACK, id="loopback-short"),
    pytest.param("2130706433", "loopback", "127.0.0.1", LOOPBACK, id="loopback-decimal"),
    pytest.param("0x7f000001", "loopback", "127.0.0.1", LOOPBACK, id="loopback-hex"),
    pytest.param("017700000001", "loopback", "127.0.0.1", LOOPBACK, id="loopback-octal"),
    pytest.param("127.255.255.254", "loopback", "127.255.255.254", LOOPBACK, id="loopback-top-of-8"),
    pytest.param("::1", "loopback", "::1", LOOPBACK, id="loopback-v6"),
    pytest.param("[::1]", "loopback", "::1", LOOPBACK, id="loopback-v6-bracketed"),
    pytest.param("::ffff:127.0.0.1", "loopback", "::ffff:7f00:1", LOOPBACK, id="loopback-v4-mapped"),
    pytest.param("::127.0.0.1", "loopback", "::7f00:1", LOOPBACK, id="loopback-v4-compatible"),
    # unspecified: Linux delivers these to the local host
    pytest.param(ZEROS, "unspecified", ZEROS, LOOPBACK, id="unspecified-v4"),
    pytest.param("0", "unspecified", ZEROS, LOOPBACK, id="unspecified-v4-decimal"),
    pytest.param("0.1.2.3", "unspecified", "0.1.2.3", LOOPBACK, id="this-network-0/8"),
    pytest.param("::", "unspecified", "::", LOOPBACK, id="unspecified-v6"),
    pytest.param("::ffff:0.0.0.0", "unspecified", "::ffff:0:0", LOOPBACK, id="unspecified-v4-mapped"),
    # cloud metadata, in every spelling
    pytest.param("169.254.169.254", "metadata", "169.254.169.254", LINK_LOCAL, id="imds"),
    pytest.param("2852039166", "metadata", "169.254.169.254", LINK_LOCAL, id="imds-decimal"),
    pytest.param("0xA9FEA9FE", "metadata", "169.254.169.254", LINK_LOCAL, id="imds-hex"),
    pytest.param("0xa9.0xfe.0xa9.0xfe", "metadata", "169.254.169.254", LINK_LOCAL, id="imds-hex-dotted"),
    pytest.param("0251.0376.0251.0376", "metadata", "169.254.169.254", LINK_LOCAL, id="imds-octal"),
    pytest.param("169.254.43518", "metadata", "169.254.169.254", LINK_LOCAL, id="imds-short"),
    pytest.param("169.16689662", "metadata", "169.254.169.254", LINK_LOCAL, id="imds-two-part"),
    pytest.param("::ffff:169.254.169.254", "metadata", "::ffff:a9fe:a9fe", LINK_LOCAL, id="imds-v4-mapped"),
    pytest.param("::ffff:a9fe:a9fe", "metadata", "::ffff:a9fe:a9fe", LINK_LOCAL, id="imds-v4-mapped-hex"),
    pytest.param(
        "[::ffff:169.254.169.254]", "metadata", "::ffff:a9fe:a9fe", LINK_LOCAL, id="imds-mapped-bracket"
    ),
    pytest.param("::169.254.169.254", "metadata", "::a9fe:a9fe", LINK_LOCAL, id="imds-v4-compatible"),
    pytest.param(
        "::ffff:0:169.254.169.254", "metadata", "::ffff:0:a9fe:a9fe", LINK_LOCAL, id="imds-translated"
    ),
    pytest.param("64:ff9b::169.254.169.254", "metadata", "64:ff9b::a9fe:a9fe", LINK_LOCAL, id="imds-nat64"),
    pytest.param("2002:a9fe:a9fe::1", "metadata", "2002:a9fe:a9fe::1", LINK_LOCAL, id="imds-6to4"),
    pytest.param("fd00:ec2::254", "metadata", "fd00:ec2::254", LINK_LOCAL, id="imds-v6"),
    pytest.param("[fd00:ec2::254]", "metadata", "fd00:ec2::254", LINK_LOCAL, id="imds-v6-bracketed"),
    pytest.param("FD00:EC2:0:0:0:0:0:254", "metadata", "fd00:ec2::254", LINK_LOCAL, id="imds-v6-long"),
    pytest.param("169.254.170.2", "metadata", "169.254.170.2", LINK_LOCAL, id="ecs-credentials"),
    pytest.param("169.254.170.23", "metadata", "169.254.170.23", LINK_LOCAL, id="eks-pod-identity"),
    pytest.param("169.254.169.123", "metadata", "169.254.169.123", LINK_LOCAL, id="aws-time-sync"),
    pytest.param("100.100.100.200", "metadata", "100.100.100.200", LINK_LOCAL, id="alibaba-wins-over-cgnat"),
    pytest.param("168.63.129.16", "metadata", "168.63.129.16", LINK_LOCAL, id="azure-wireserver"),
    # link-local
    pytest.param("169.254.1.1", "link-local", "169.254.1.1", LINK_LOCAL, id="link-local-v4"),
    pytest.param("fe80::1", "link-local", "fe80::1", LINK_LOCAL, id="link-local-v6"),
    pytest.param("fe80::1%eth0", "link-local", "fe80::1%eth0", LINK_LOCAL, id="link-local-scoped"),
    pytest.param("fe80::1%25eth0", "link-local", "fe80::1%eth0", LINK_LOCAL, id="link-local-scoped-rfc6874"),
    pytest.param(
        "[fe80::1%25eth0]", "link-local", "fe80::1%eth0", LINK_LOCAL, id="link-local-scoped-bracket"
    ),
    pytest.param(
        "::ffff:169.254.1.1", "link-local", "::ffff:a9fe:101", LINK_LOCAL, id="link-local-v4-mapped"
    ),
    # private: allowed by default
    pytest.param("10.1.2.3", "private", "10.1.2.3", DEFAULT, id="rfc1918-10"),
    pytest.param("172.16.0.1", "private", "172.16.0.1", DEFAULT, id="rfc1918-172"),
    pytest.param("192.168.1.1", "private", "192.168.1.1", DEFAULT, id="rfc1918-192"),
    pytest.param("100.64.0.1", "private", "100.64.0.1", DEFAULT, id="cgnat"),
    pytest.param("fd12:3456::1", "private", "fd12:3456::1", DEFAULT, id="ula"),
    pytest.param("::ffff:10.1.2.3", "private", "::ffff:a01:203", DEFAULT, id="rfc1918-v4-mapped"),
    pytest.param("012.1.2.3", "private", "10.1.2.3", DEFAULT, id="rfc1918-octal-first-part"),
    # public
    pytest.param("8.8.8.8", "public", "8.8.8.8", DEFAULT, id="public-v4"),
    pytest.param("134744072", "public", "8.8.8.8", DEFAULT, id="public-decimal"),
    pytest.param("2606:4700:4700::1111", "public", "2606:4700:4700::1111", DEFAULT, id="public-v6"),
    pytest.param("64:ff9b::8.8.8.8", "public", "64:ff9b::808:808", DEFAULT, id="public-nat64"),
    pytest.param("2002:808:808::1", "public", "2002:808:808::1", DEFAULT, id="public-6to4"),
    # never allowed
    pytest.param("224.0.0.1", "multicast", "224.0.0.1", None, id="multicast-v4"),
    pytest.param("ff02::1", "multicast", "ff02::1", None, id="multicast-v6"),
    pytest.param("::ffff:224.0.0.1", "multicast", "::ffff:e000:1", None, id="multicast-v4-mapped"),
    pytest.param("255.255.255.255", "reserved", "255.255.255.255", None, id="broadcast"),
    pytest.param("4294967295", "reserved", "255.255.255.255", None, id="broadcast-decimal"),
    pytest.param("240.0.0.1", "reserved", "240.0.0.1", None, id="class-e"),
    pytest.param("192.0.2.1", "reserved", "192.0.2.1", None, id="documentation-v4"),
    pytest.param("198.18.0.1", "reserved", "198.18.0.1", None, id="benchmarking"),
    pytest.param("2001:db8::1", "reserved", "2001:db8::1", None, id="documentation-v6"),
    pytest.param("2001::1", "reserved", "2001::1", None, id="teredo"),
    pytest.param("64:ff9b:1::1", "reserved", "64:ff9b:1::1", None, id="local-nat64"),
    pytest.param("fec0::1", "reserved", "fec0::1", None, id="site-local"),
    pytest.param("4000::1", "reserved", "4000::1", None, id="unallocated-v6"),
]

POLICIES = [DEFAULT, LOOPBACK, LINK_LOCAL, NO_PRIVATE, EVERYTHING]


def allows(policy: DestinationPolicy, kind: str) -> bool:
    """What each class needs, restated independently of the module under test."""
    return {
        "public": True,
        "private": policy.allow_private,
        "loopback": policy.allow_loopback,
        "unspecified": policy.allow_loopback,
        "link-local": policy.allow_link_local,
        "metadata": policy.allow_link_local,
    }.get(kind, False)


@pytest.mark.parametrize(("text", "kind", "canonical", "allowed_by"), ADDRESSES)
def test_every_spelling_is_classified_by_where_it_leads(
    text: str, kind: str, canonical: str, allowed_by: DestinationPolicy | None
) -> None:
    assert classify(text) == kind
    assert literal_address(text) == canonical


@pytest.mark.parametrize(("text", "kind", "canonical", "allowed_by"), ADDRESSES)
def test_each_class_is_allowed_only_by_its_own_flag(
    text: str, kind: str, canonical: str, allowed_by: DestinationPolicy | None
) -> None:
    if allowed_by is not None:
        assert refusal(text, allowed_by) is None
        assert refusal_for_host(text, allowed_by) is None
    for policy in POLICIES:
        expected = allows(policy, kind)
        assert (refusal(text, policy) is None) == expected, policy
        assert (refusal_for_host(text, policy) is None) == expected, policy


@pytest.mark.parametrize(("text", "kind", "canonical", "allowed_by"), ADDRESSES)
def test_a_refusal_names_the_class_and_the_key_that_would_allow_it(
    text: str, kind: str, canonical: str, allowed_by: DestinationPolicy | None
) -> None:
    policy = NO_PRIVATE if kind == "private" else DEFAULT
    reason = refusal(text, policy)
    if kind == "public":
        assert reason is None
        return
    assert reason is not None and reason.startswith(text)
    key = {
        "loopback": "network.allowLoopback",
        "unspecified": "network.allowLoopback",
        "link-local": "network.allowLinkLocal",
        "metadata": "network.allowLinkLocal",
        "private": "network.allowPrivate",
    }.get(kind)
    assert (f"refused unless {key} is true" if key else "always refused") in reason
    assert refusal_for_host(text, policy) == reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param(
            "169.254.169.254",
            "169.254.169.254 is a cloud metadata address (refused unless network.allowLinkLocal is true)",
            id="metadata",
        ),
        pytest.param(
            "2852039166",
            "2852039166 denotes 169.254.169.254, a cloud metadata address"
            " (refused unless network.allowLinkLocal is true)",
            id="decimal-says-what-it-denotes",
        ),
        pytest.param(
            "::ffff:127.0.0.1",
            "::ffff:127.0.0.1 denotes 127.0.0.1, a loopback address"
            " (refused unless network.allowLoopback is true)",
            id="mapped-says-the-embedded-address",
        ),
        pytest.param(
            ZEROS,
            f"{ZEROS} is an unspecified address, which reaches the local host on Linux"
            " (refused unless network.allowLoopback is true)",
            id="unspecified-explains-why",
        ),
        pytest.param(
            "255.255.255.255", "255.255.255.255 is the broadcast address (always refused)", id="broadcast"
        ),
        pytest.param("224.0.0.1", "224.0.0.1 is a multicast address (always refused)", id="multicast"),
        pytest.param(
            "registry.example", "'registry.example' is not an IP address (refused)", id="not-an-address"
        ),
    ],
)
def test_refusal_messages_read_as_sentences(text: str, reason: str) -> None:
    assert refusal(text, DEFAULT) == reason


def test_private_addresses_are_allowed_by_default_and_refused_when_disabled() -> None:
    assert refusal("10.1.2.3", DEFAULT) is None
    assert refusal("10.1.2.3", NO_PRIVATE) == (
        "10.1.2.3 is a private address (refused unless network.allowPrivate is true)"
    )


# -- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed_by", "reason"),
    [
        # metadata names, however they are written
        pytest.param("metadata.google.internal", LINK_LOCAL, "cloud metadata host name", id="gce"),
        pytest.param(
            "METADATA.Google.Internal.", LINK_LOCAL, "cloud metadata host name", id="gce-case-and-dot"
        ),
        pytest.param("metadata.goog", LINK_LOCAL, "cloud metadata host name", id="gce-goog"),
        pytest.param("metadata", LINK_LOCAL, "cloud metadata host name", id="gce-short"),
        pytest.param("instance-data", LINK_LOCAL, "cloud metadata host name", id="aws-short"),
        pytest.param("instance-data.ec2.internal", LINK_LOCAL, "cloud metadata host name", id="aws"),
        # loopback names (RFC 6761)
        pytest.param("localhost", LOOPBACK, "loopback host name", id="localhost"),
        pytest.param("LocalHost.", LOOPBACK, "loopback host name", id="localhost-case-and-dot"),
        pytest.param("registry.localhost", LOOPBACK, "loopback host name", id="dot-localhost"),
        # ordinary names pass the name check (their addresses are checked after resolution)
        pytest.param("ghcr.io", DEFAULT, None, id="ghcr"),
        pytest.param("registry-1.docker.io", DEFAULT, None, id="docker-hub"),
        pytest.param("123456789012.dkr.ecr.us-east-1.amazonaws.com", DEFAULT, None, id="ecr"),
        pytest.param("my_registry.internal.", DEFAULT, None, id="underscore-trailing-dot"),
        pytest.param("xn--bcher-kva.example", DEFAULT, None, id="punycode"),
        pytest.param("metadata.google.internal.example.com", DEFAULT, None, id="metadata-as-a-label-only"),
        pytest.param("0xdead.beef", DEFAULT, None, id="hex-looking-but-a-name"),
        # never valid
        pytest.param("", None, "not a valid host name", id="empty"),
        pytest.param(".", None, "not a valid host name", id="root"),
        pytest.param("a..b", None, "not a valid host name", id="empty-label"),
        pytest.param("-a.example", None, "not a valid host name", id="leading-hyphen"),
        pytest.param("a b.example", None, "not a valid host name", id="space"),
        pytest.param(" 127.0.0.1", None, "not a valid host name", id="leading-space"),
        pytest.param("127.0.0.1.", None, "last label is numeric", id="dotted-quad-trailing-dot"),
        pytest.param("1.2.3.4.5", None, "last label is numeric", id="five-parts"),
        pytest.param("256.1.1.1", None, "last label is numeric", id="octet-overflow"),
        pytest.param("08.1.1.1", None, "last label is numeric", id="bad-octal"),
        pytest.param("[127.0.0.1]", None, "not a valid host name", id="bracketed-v4"),
        pytest.param("[::1", None, "not a valid host name", id="unbalanced-bracket"),
        pytest.param("::1]", None, "not a valid host name", id="unbalanced-bracket-right"),
        pytest.param("fe80::1%", None, "not a valid host name", id="empty-zone"),
        pytest.param("fe80::1%eth0/x", None, "not a valid host name", id="bad-zone"),
        pytest.param("[::1]:443", None, "not a valid host name", id="with-port"),
        pytest.param("a" * 64 + ".example", None, "not a valid host name", id="label-too-long"),
        pytest.param("a." * 128 + "example", None, "too long", id="name-too-long"),
        pytest.param("ｍetadata.google.internal", None, "not a valid host name", id="fullwidth-not-ascii"),
        pytest.param("١٢٧.0.0.1", None, "not a valid host name", id="arabic-indic-digits"),
        pytest.param("127.0.0.1\x00.example", None, "not a valid host name", id="nul"),
    ],
)
def test_host_names_are_checked_before_resolution(
    host: str, allowed_by: DestinationPolicy | None, reason: str | None
) -> None:
    default = refusal_for_host(host, DEFAULT)
    if reason is None:
        assert default is None
    else:
        assert default is not None and reason in default
    if allowed_by is not None:
        assert refusal_for_host(host, allowed_by) is None
    else:
        assert refusal_for_host(host, EVERYTHING) is not None


def test_metadata_names_are_all_refused_by_default_and_lower_case() -> None:
    for name in METADATA_NAMES:
        assert name == name.lower()
        assert refusal_for_host(name, DEFAULT) is not None
        assert refusal_for_host(name, LINK_LOCAL) is None


def test_metadata_addresses_are_refused_even_when_their_range_is_allowed() -> None:
    for address in METADATA_ADDRESSES:
        assert classify(str(address)) == "metadata"
        assert refusal(str(address), DestinationPolicy(allow_loopback=True, allow_private=True)) is not None
        assert refusal(str(address), LINK_LOCAL) is None


# -- properties ---------------------------------------------------------------------------------

policies = st.builds(DestinationPolicy, st.booleans(), st.booleans(), st.booleans())
hostish = st.text(alphabet="0123456789abcdefxX.:[]%-_lohstmeadg ", max_size=40)


@given(text=st.one_of(st.text(max_size=300), hostish), policy=policies)
def test_nothing_raises_and_only_valid_allowed_destinations_pass(
    text: str, policy: DestinationPolicy
) -> None:
    kind = classify(text)
    assert kind in CLASSES
    reason = refusal(text, policy)
    assert (reason is None) == allows(policy, kind)
    assert reason is None or (isinstance(reason, str) and reason)
    host_reason = refusal_for_host(text, policy)
    assert host_reason is None or (isinstance(host_reason, str) and host_reason)
    if host_reason is None:
        # None only for an allowed address, or for a syntactically valid DNS name
        assert allows(policy, kind) or (kind == "invalid" and _is_dns_name(text))


@given(address=st.ip_addresses(v=4))
def test_every_ipv4_spelling_classifies_like_the_dotted_quad(address: IPv4Address) -> None:
    kind = classify(str(address))
    value = int(address)
    spellings = [
        str(value),
        hex(value),
        "0" + oct(value)[2:],
        f"{value >> 24}.{value & 0xFFFFFF}",
        f"{value >> 24}.{(value >> 16) & 0xFF}.{value & 0xFFFF}",
        f"::ffff:{address}",
        f"[::ffff:{address}]",
        f"::ffff:0:{address}",
        f"64:ff9b::{address}",
        str(IPv6Address((0x2002 << 112) | (value << 80) | 1)),
    ]
    for spelling in spellings:
        assert classify(spelling) == kind, spelling
    assume(value > 1)  # ::0.0.0.1 is ::1, IPv6's own loopback
    assert classify(f"::{address}") == kind


@given(address=st.ip_addresses())
def test_canonical_addresses_round_trip(address: IPv4Address | IPv6Address) -> None:
    assert literal_address(str(address)) == str(address)
    if address.version == 6:
        assert literal_address(f"[{address}]") == str(address)


@given(text=st.text(alphabet="0123456789abcdefxX.", min_size=1, max_size=24))
def test_ipv4_literals_parse_exactly_as_glibc_getaddrinfo_parses_them(text: str) -> None:
    try:
        infos = socket.getaddrinfo(
            text.encode(), None, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
        )
        expected: str | None = str(infos[0][4][0])
    except socket.gaierror:
        expected = None
    assert literal_address(text) == expected


@pytest.mark.parametrize(
    "text", ["0x", "0x.1", "00x1", "4294967296", "1.16777216", "1.2.65536", "0x100000000", "1.2.3.", ".1.2.3"]
)
def test_ipv4_edge_cases_glibc_rejects_are_not_addresses(text: str) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(text.encode(), None, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    assert literal_address(text) is None


def _is_dns_name(text: str) -> bool:
    name = text.lower().removesuffix(".")
    labels = name.split(".")
    return (
        name.isascii()
        and len(name) <= 253
        and not labels[-1].isdigit()
        and all(
            0 < len(label) <= 63
            and all(c.isalnum() or c in "-_" for c in label)
            and not label.startswith("-")
            and not label.endswith("-")
            for label in labels
        )
    )
