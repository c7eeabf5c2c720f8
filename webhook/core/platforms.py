"""Which image-index child containerd pulls for a node's platform.

What: containerd/platforms (``platforms.go`` Parse/Normalize, ``database.go`` normalizeArch,
``compare.go`` platformVector/Only/Ordered, ``platform_windows_compat.go``) and the selection
containerd makes among the children of an index (``core/images/image.go`` Manifest and
``core/images/handlers.go`` LimitManifests: filter, then a stable sort by the matcher's ``Less``
with platform-less children last, then the first one).

Why: an index without a child the node accepts fails with "no match for platform in manifest".
The accepted set depends on the pull path: containerd 1.x and the local pull path use
``platforms.Only(host)`` (an amd64 node also takes 386, an arm64 node arm/v8..v5), while the
containerd 2.x transfer service uses ``platforms.Ordered(DefaultSpec())``, an exact normalised
match (``exact=True``; domain-facts 4.6).

What it deliberately does not do: no OS features (``os.features``) and hence no "most features
wins" tie-break, no revision-based preference among Windows children, no reading of a child's
config to check its platform (containerd does that for platform-less children), and no guessing
of the host's architecture for a bare "linux" specifier.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from webhook.core.errors import InputError

__all__ = ["Platform", "compatible", "matches", "normalize", "parse_platform", "select_child"]

_OS_AND_VERSION = re.compile(r"([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.-]*)\))?", re.ASCII)
_COMPONENT = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)
#: Windows builds from which the stable container ABI applies (ltsc2022, ltsc2025), ascending.
_WINDOWS_LTSC = (20348, 26100)


@dataclass(frozen=True, slots=True)
class Platform:
    """An OCI platform; ``os_version`` matters only for Windows."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    def __str__(self) -> str:
        """containerd ``platforms.Format``: ``os/arch[/variant]`` (``unknown`` without an OS)."""
        if not self.os:
            return "unknown"
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


def parse_platform(text: str) -> Platform:
    """containerd ``platforms.Parse`` for ``os[(version)]/arch[/variant]`` specifiers.

    A single component (``linux``, ``arm64``) would make containerd fill in the host it runs
    on; pullguard does not run on the node, so it is refused, as is anything else Parse refuses.
    """
    problem = _specifier_problem(text)
    if problem:
        raise InputError(f"invalid platform {text!r}: {problem}", "platform")
    parts = text.split("/")
    found = _OS_AND_VERSION.fullmatch(parts[0])
    assert found is not None  # checked by _specifier_problem
    os, os_version = _normalize_os(found[1]), found[2] or ""
    if len(parts) == 2:
        arch, variant = _normalize_arch(parts[1], "")
        variant = "" if (arch, variant) == ("arm", "v7") else variant
    else:
        arch, variant = _normalize_arch(parts[1], parts[2])
        variant = "v8" if (arch, variant) == ("arm64", "") else variant
    return Platform(os, arch, variant, os_version)


def normalize(p: Platform, *, default_os: str = "linux") -> Platform:
    """containerd ``platforms.Normalize``; an empty OS becomes the node's OS (``runtime.GOOS``)."""
    arch, variant = _normalize_arch(p.architecture, p.variant)
    return replace(p, os=_normalize_os(p.os) or default_os, architecture=arch, variant=variant)


def compatible(host: Platform) -> tuple[Platform, ...]:
    """The ordered vector ``platforms.Only(host)`` accepts, most preferred first (normalised)."""
    return tuple(normalize(p) for p in _vector(normalize(host)))


def matches(host: Platform, candidate: Platform, *, exact: bool = False) -> bool:
    """Whether a node of platform ``host`` accepts ``candidate``.

    ``exact=False`` is ``platforms.Only(host)``; ``exact=True`` is ``platforms.Ordered(host)``,
    what the containerd 2.x transfer service uses for the CRI pull.
    """
    return _rank(host, candidate, exact) is not None


def select_child(host: Platform, children: Sequence[Platform | None], *, exact: bool = False) -> int | None:
    """The index of the index child containerd pulls for ``host``, or None ("no match for platform").

    Children without a platform always pass the filter but sort after every platform that does
    match; among matching children the earliest in the compatibility order wins, ties going to
    manifest order (``sort.SliceStable``).
    """
    best: tuple[int, int] | None = None
    first_bare: int | None = None
    for index, child in enumerate(children):
        if child is None:
            first_bare = index if first_bare is None else first_bare
            continue
        rank = _rank(host, child, exact)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, index)
    return best[1] if best is not None else first_bare


#: Pure, and asked for every index child of every image site of a check (4,000 sites in B5 of
#: bench/README.md): memoised, bounded. Platforms are frozen, so the arguments hash.
@functools.lru_cache(maxsize=4096)
def _rank(host: Platform, candidate: Platform, exact: bool) -> int | None:
    """Position of the first matcher of the host's vector that accepts ``candidate``."""
    wanted = normalize(host)
    vector = [wanted] if exact else _vector(wanted)
    got = normalize(candidate, default_os=wanted.os)
    for rank, entry in enumerate(vector):
        m = normalize(entry)  # NewMatcher normalises each vector entry again (arm64/v8 -> arm64)
        if (m.os, m.architecture, m.variant) == (got.os, got.architecture, got.variant):
            return rank if _windows_version_ok(wanted, candidate) else None
    return None


def _specifier_problem(text: str) -> str:
    if "*" in text:
        return "wildcards are not supported"
    parts = text.split("/", 3)
    if not _OS_AND_VERSION.fullmatch(parts[0]):
        return f"{parts[0]!r} is not an OS (expected letters, digits, '_' or '-', optionally '(version)')"
    for part in parts[1:]:
        if not _COMPONENT.fullmatch(part):
            return f"{part!r} is not a platform component (expected letters, digits, '_', '.' or '-')"
    if len(parts) == 1:
        return "expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
    if len(parts) == 4:
        return "too many components; expected os/arch[/variant]"
    return ""


def _normalize_os(os: str) -> str:
    lowered = os.lower()
    return "darwin" if lowered == "macos" else lowered


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd ``normalizeArch`` (database.go)."""
    arch, variant = arch.lower(), variant.lower()
    if arch == "i386":
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            return "arm64", ""
        return "arm64", "v9" if variant in ("9", "9.0", "v9.0") else variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            return "arm", "v7"
        return "arm", "v" + variant if variant in ("5", "6", "8") else variant
    return arch, variant


def _atoi(text: str) -> int | None:
    """Go ``strconv.Atoi`` (a sign and ASCII digits), refusing levels no CPU has.

    Go would build a vector of every level below an absurd variant such as ``v999999999``;
    treating such a variant as non-numeric keeps the vector small and changes no real platform.
    """
    if not re.fullmatch(r"[+-]?[0-9]{1,6}", text, re.ASCII):
        return None
    return int(text)


def _vector(p: Platform) -> list[Platform]:
    """containerd ``platformVector`` of a normalised platform."""
    vector = [p]
    if p.architecture == "amd64":
        level = _atoi(p.variant.removeprefix("v"))
        if level is not None and level > 1:
            vector += [replace(p, variant=f"v{v}") for v in range(level - 1, 0, -1)]
        vector.append(replace(p, architecture="386", variant=""))
    elif p.architecture == "arm":
        level = _atoi(p.variant.removeprefix("v"))
        if level is not None and level > 5:
            vector += [replace(p, variant=f"v{v}") for v in range(level - 1, 4, -1)]
    elif p.architecture == "arm64":
        variant = p.variant or "v8"
        major_text, dot, minor_text = variant.partition(".")
        major = _atoi(major_text.removeprefix("v"))
        if major is not None and major >= 8:
            minor = 0
            if len(variant) == 4 and dot and _atoi(minor_text) is not None:
                minor = int(minor_text)
            if major == 9:
                vector += [replace(p, variant=_arm64(9, m)) for m in range(minor - 1, -1, -1)]
                minor, major = min(minor + 5, 9), 8  # v9.x is compatible with v8.(x+5), up to v8.9
                vector.append(replace(p, variant=f"v8.{minor}"))
            vector += [replace(p, variant=_arm64(major, m)) for m in range(minor - 1, -1, -1)]
        if variant.startswith(("v8.", "v9.")):
            variant = "v8"
        vector += _vector(replace(p, architecture="arm", variant=variant))
    return vector


def _arm64(major: int, minor: int) -> str:
    return f"v{major}" if minor == 0 else f"v{major}.{minor}"


def _windows_version_ok(host: Platform, candidate: Platform) -> bool:
    """containerd's Windows matcher: host and container OS builds must be compatible."""
    if host.os != "windows" or not host.os_version or not candidate.os_version:
        return True
    h, c = _windows_version(host.os_version), _windows_version(candidate.os_version)
    if h == (0, 0, 0):  # an unparsable host version matches every build (windowsVersionMatcher)
        return True
    if h[:2] != c[:2]:
        return False
    if h[2] < _WINDOWS_LTSC[0]:
        return h[2] == c[2]
    oldest = next((b for b in reversed(_WINDOWS_LTSC) if h[2] > b), _WINDOWS_LTSC[0])
    return oldest <= c[2] <= h[2]


def _windows_version(text: str) -> tuple[int, int, int]:
    """``getWindowsOSVersion``: (major, minor, build) of ``10.0.17763[.x]``, zeros when unparsable."""
    parts = text.split(".")
    if len(parts) < 3:
        return 0, 0, 0
    limits = (0xFF, 0xFF, 0xFFFF)
    if not all(
        re.fullmatch(r"[0-9]+", p, re.ASCII) and int(p) <= lim for p, lim in zip(parts, limits, strict=False)
    ):
        return 0, 0, 0
    return int(parts[0]), int(parts[1]), int(parts[2])
