"""containerd platform matching: TestOnly and normalizeArch rows, Parse, the exact (transfer
service) matcher, and which index child containerd selects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webhook.core.errors import InputError
from webhook.core.platforms import Platform, compatible, matches, normalize, parse_platform, select_child

DATA = Path(__file__).parent / "data" / "conformance" / "registries-and-platforms.json"
if not DATA.is_file():
    pytest.fail(f"conformance vectors missing: {DATA} (copy ../shared/conformance into tests/data)")
VECTORS: dict[str, Any] = json.loads(DATA.read_text())


def P(text: str) -> Platform:  # reads like a literal in the tables below
    return parse_platform(text)


# --- conformance: platform_TestOnly ---------------------------------------------------------


def _only_cases() -> list[Any]:
    cases = []
    for row in VECTORS["platform_TestOnly"]:
        for expected in ("true", "false"):
            for candidate in row["matches"][expected]:
                cases.append(
                    pytest.param(
                        row["platform"], candidate, expected == "true", id=f"{row['platform']}~{candidate}"
                    )
                )
    return cases


@pytest.mark.parametrize(("host", "candidate", "expected"), _only_cases())
def test_only_matches_like_containerd(host: str, candidate: str, expected: bool) -> None:
    assert matches(P(host), P(candidate)) is expected
    got = normalize(P(candidate), default_os=P(host).os)
    vector = {(p.os, p.architecture, p.variant) for p in compatible(P(host))}
    assert ((got.os, got.architecture, got.variant) in vector) is expected


# --- conformance: platform_normalizeArch ----------------------------------------------------

#: Each row's "in"/"out" description, spelled out as (arch, variant) -> (arch, variant) cases.
NORMALIZE_ARCH: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {
    ("i386", "386/"): [("i386", "", "386", ""), ("i386", "v7", "386", "")],
    ("x86_64|x86-64|amd64", "amd64 (variant v1 -> '')"): [
        (arch, variant, "amd64", "") for arch in ("x86_64", "x86-64", "amd64") for variant in ("", "v1")
    ],
    ("aarch64|arm64 + variant 8|v8|v8.0", "arm64/''"): [
        (arch, variant, "arm64", "") for arch in ("aarch64", "arm64") for variant in ("8", "v8", "v8.0")
    ],
    ("arm64 + variant 9|9.0|v9.0", "arm64/v9"): [("arm64", v, "arm64", "v9") for v in ("9", "9.0", "v9.0")],
    ("armhf", "arm/v7"): [("armhf", "", "arm", "v7"), ("armhf", "v6", "arm", "v7")],
    ("armel", "arm/v6"): [("armel", "", "arm", "v6")],
    ("arm + '' or 7", "arm/v7"): [("arm", "", "arm", "v7"), ("arm", "7", "arm", "v7")],
    ("arm + 5|6|8", "arm/v5|v6|v8"): [("arm", v, "arm", f"v{v}") for v in ("5", "6", "8")],
}


def test_every_normalize_arch_row_is_spelled_out() -> None:
    assert set(NORMALIZE_ARCH) == {(row["in"], row["out"]) for row in VECTORS["platform_normalizeArch"]}


@pytest.mark.parametrize(
    ("arch", "variant", "want_arch", "want_variant"),
    [
        pytest.param(*case, id=f"{case[0]}/{case[1] or '-'}")
        for cases in NORMALIZE_ARCH.values()
        for case in cases
    ]
    + [
        pytest.param("AMD64", "V2", "amd64", "v2", id="lower-cased"),
        pytest.param("arm64", "v8.2", "arm64", "v8.2", id="minor-kept"),
        pytest.param("arm", "v7", "arm", "v7", id="arm-v7"),
        pytest.param("riscv64", "", "riscv64", "", id="unknown-kept"),
    ],
)
def test_normalize_arch_like_containerd(arch: str, variant: str, want_arch: str, want_variant: str) -> None:
    got = normalize(Platform("linux", arch, variant))
    assert (got.architecture, got.variant) == (want_arch, want_variant)


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param("linux/amd64", Platform("linux", "amd64"), id="os-arch"),
        pytest.param("linux/arm64/v8", Platform("linux", "arm64", "v8"), id="arm64-v8-kept-by-parse"),
        pytest.param("linux/arm64", Platform("linux", "arm64"), id="arm64"),
        pytest.param("linux/aarch64", Platform("linux", "arm64"), id="aarch64"),
        pytest.param("linux/arm", Platform("linux", "arm"), id="arm-v7-implicit"),
        pytest.param("linux/armhf", Platform("linux", "arm"), id="armhf"),
        pytest.param("linux/arm/v7", Platform("linux", "arm", "v7"), id="arm-v7-explicit"),
        pytest.param("linux/x86_64/v1", Platform("linux", "amd64"), id="x86_64-v1"),
        pytest.param("Linux/AMD64", Platform("linux", "amd64"), id="case"),
        pytest.param("macos/arm64", Platform("darwin", "arm64"), id="macos"),
        pytest.param(
            "windows(10.0.17763)/amd64", Platform("windows", "amd64", "", "10.0.17763"), id="os-version"
        ),
        pytest.param("linux/arm64/v9.6", Platform("linux", "arm64", "v9.6"), id="dotted-variant"),
    ],
)
def test_parse_platform_like_containerd(text: str, want: Platform) -> None:
    assert parse_platform(text) == want


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("linux", "expected os/arch", id="os-only"),
        pytest.param("arm64", "expected os/arch", id="arch-only"),
        pytest.param("linux/*", "wildcards", id="wildcard"),
        pytest.param("linux/amd64/v2/x", "too many", id="four-parts"),
        pytest.param("linux//v7", "not a platform component", id="empty-arch"),
        pytest.param("linux/am d64", "not a platform component", id="space"),
        pytest.param("lin.ux/amd64", "not an OS", id="dot-in-os"),
        pytest.param("windows(10.0/amd64", "not an OS", id="unclosed-version"),
        pytest.param("linux/amd64\n", "not a platform component", id="trailing-newline"),
        pytest.param("", "not an OS", id="empty"),
    ],
)
def test_parse_platform_refuses_with_a_clear_message(text: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as caught:
        parse_platform(text)
    assert caught.value.field == "platform"
    assert repr(text) in str(caught.value)


def test_platform_str_hides_os_version() -> None:
    assert str(P("linux/arm64/v8")) == "linux/arm64/v8"
    assert str(P("windows(10.0.17763)/amd64")) == "windows/amd64"
    assert str(Platform("", "amd64")) == "unknown"


# --- exact (containerd 2.x transfer service) ------------------------------------------------


@pytest.mark.parametrize(
    ("host", "candidate", "only", "exact"),
    [
        pytest.param("linux/amd64", "linux/386", True, False, id="386-only-via-only"),
        pytest.param("linux/arm64", "linux/arm/v7", True, False, id="arm32-only-via-only"),
        pytest.param("linux/arm64", "linux/aarch64/v8", True, True, id="normalised-equal"),
        pytest.param("linux/amd64", "linux/amd64/v1", True, True, id="amd64-v1"),
        pytest.param("linux/amd64", "linux/amd64/v2", False, False, id="amd64-v2-never"),
        pytest.param("linux/amd64/v3", "linux/amd64/v2", True, False, id="lower-level"),
        pytest.param("linux/arm64", "windows/arm64", False, False, id="other-os"),
    ],
)
def test_exact_matching_is_the_normalised_host_only(
    host: str, candidate: str, only: bool, exact: bool
) -> None:
    assert matches(P(host), P(candidate)) is only
    assert matches(P(host), P(candidate), exact=True) is exact


def test_empty_candidate_os_is_the_nodes_os() -> None:
    assert matches(P("linux/amd64"), Platform("", "amd64"))
    assert matches(P("windows/amd64"), Platform("", "amd64"))


@pytest.mark.parametrize(
    ("host", "candidate", "expected"),
    [
        pytest.param("windows(10.0.17763)/amd64", "windows(10.0.17763.5122)/amd64", True, id="same-build"),
        pytest.param(
            "windows(10.0.17763)/amd64", "windows(10.0.20348)/amd64", False, id="pre-ltsc2022-exact"
        ),
        pytest.param(
            "windows(10.0.20348)/amd64", "windows(10.0.17763)/amd64", False, id="older-than-ltsc2022"
        ),
        pytest.param("windows(10.0.26100)/amd64", "windows(10.0.20348)/amd64", True, id="ltsc2025-runs-2022"),
        pytest.param("windows(10.0.26100)/amd64", "windows(10.0.26200)/amd64", False, id="newer-than-host"),
        pytest.param("windows(10.0.25398)/amd64", "windows(10.0.20348)/amd64", True, id="23h2-runs-2022"),
        pytest.param("windows(10.0.17763)/amd64", "windows/amd64", True, id="no-image-version"),
        pytest.param("windows/amd64", "windows(10.0.20348)/amd64", True, id="no-host-version"),
        pytest.param("windows(6.3.9600)/amd64", "windows(10.0.9600)/amd64", False, id="major-differs"),
    ],
)
def test_windows_builds_must_be_compatible(host: str, candidate: str, expected: bool) -> None:
    assert matches(P(host), P(candidate)) is expected


# --- which child containerd pulls -----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "children", "exact", "want"),
    [
        pytest.param("linux/amd64", ["linux/arm64", "linux/amd64"], False, 1, id="the-matching-one"),
        pytest.param("linux/amd64", ["linux/386", "linux/amd64"], False, 1, id="preferred-beats-earlier"),
        pytest.param("linux/amd64", ["linux/386", "linux/arm64"], False, 0, id="fallback-386"),
        pytest.param("linux/amd64", ["linux/386", "linux/arm64"], True, None, id="no-386-when-exact"),
        pytest.param(
            "linux/amd64", ["linux/amd64", "linux/amd64"], False, 0, id="tie-goes-to-manifest-order"
        ),
        pytest.param("linux/amd64", [None, "linux/amd64"], False, 1, id="platformless-sorts-last"),
        pytest.param(
            "linux/amd64", ["linux/arm64", None, None], False, 1, id="platformless-when-nothing-else"
        ),
        pytest.param("linux/amd64", ["linux/arm64", "windows/amd64"], False, None, id="no-match"),
        pytest.param("linux/amd64", [], False, None, id="empty-index"),
        pytest.param(
            "linux/arm64", ["linux/arm/v5", "linux/arm/v7", "linux/arm64/v8"], False, 2, id="arm64-first"
        ),
        pytest.param("linux/arm64", ["linux/arm/v5", "linux/arm/v7"], False, 1, id="highest-arm32"),
        pytest.param("linux/arm64/v9", ["linux/arm64/v8.2", "linux/arm64/v8.5"], False, 1, id="v8.5-for-v9"),
        pytest.param(
            "linux/amd64/v3",
            ["linux/amd64", "linux/amd64/v2", "linux/amd64/v4"],
            False,
            1,
            id="highest-level-not-above-host",
        ),
    ],
)
def test_select_child_picks_what_containerd_pulls(
    host: str, children: list[str | None], exact: bool, want: int | None
) -> None:
    parsed = [None if c is None else P(c) for c in children]
    assert select_child(P(host), parsed, exact=exact) == want


# --- properties -----------------------------------------------------------------------------

_SPEC = st.text(alphabet="linuxwdoamd64rv87.()/_-*\n ", max_size=24)


@given(_SPEC | st.text(max_size=24))
def test_parse_platform_raises_only_input_errors(text: str) -> None:
    try:
        host = parse_platform(text)
    except InputError:
        return
    assert normalize(normalize(host)) == normalize(host)
    assert compatible(host)[0] == normalize(host)
    assert matches(host, host)
    assert matches(host, host, exact=True)
    assert select_child(host, [host]) == 0
