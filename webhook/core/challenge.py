"""Parsing ``WWW-Authenticate`` challenges (RFC 7235 §4.1, RFC 6750 §3).

Registries answer an unauthenticated request with ``401`` and one or more challenges:
``Basic realm="…"`` (ECR, htpasswd registries: send Basic credentials on every request) or
``Bearer realm="…",service="…",scope="…"`` (token auth: fetch a token from the realm). When a token
is rejected the challenge repeats with ``error="insufficient_scope"`` or ``error="invalid_token"``
— which is how a 401 after a successful token exchange is told apart from bad credentials
(containerd core/remotes/docker/auth/parse.go does the same reading).

Pure: the header value in, a list of challenges out. Malformed input yields what could be read;
it never raises, because the registry, not the user, wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"  # noqa: S105 - the RFC 7230 "token" grammar, not a credential
_SCHEME_RE = re.compile(rf"\s*({_TOKEN})(?:\s+|$)")
_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*("((?:[^"\\]|\\.)*)"|{_TOKEN})\s*(,|$)')
_TOKEN68_RE = re.compile(r"\s*([A-Za-z0-9\-._~+/]+=*)\s*(,|$)")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: its scheme (lower-cased) and its parameters (names lower-cased)."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scope(self) -> str | None:
        return self.params.get("scope")

    @property
    def error(self) -> str | None:
        return self.params.get("error")


def _unquote(raw: str, quoted: str | None) -> str:
    if quoted is None:
        return raw
    return re.sub(r"\\(.)", r"\1", quoted)


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in one ``WWW-Authenticate`` value, in order."""
    out: list[Challenge] = []
    pos = 0
    text = header or ""
    while pos < len(text):
        m = _SCHEME_RE.match(text, pos)
        if m is None:
            break
        scheme = m.group(1).lower()
        pos = m.end()
        params: dict[str, str] = {}
        while pos < len(text):
            pm = _PARAM_RE.match(text, pos)
            if pm is None:
                tm = _TOKEN68_RE.match(text, pos)
                if tm is not None and not params and "=" not in text[pos : tm.end()].rstrip("=, "):
                    pos = tm.end()
                    continue
                break
            name, raw, quoted = pm.group(1).lower(), pm.group(2), pm.group(3)
            # A following "name=value" is a parameter; a bare token followed by space starts a new scheme.
            params.setdefault(name, _unquote(raw, quoted))
            pos = pm.end()
            nxt = _SCHEME_RE.match(text, pos)
            if nxt is not None and not _PARAM_RE.match(text, pos):
                break
        out.append(Challenge(scheme, params))
        while pos < len(text) and text[pos] in " ,":
            pos += 1
    return out


def parse_all(headers: list[str]) -> list[Challenge]:
    """Challenges from every ``WWW-Authenticate`` header of a response (there may be several)."""
    out: list[Challenge] = []
    for h in headers:
        out.extend(parse_challenges(h))
    return out


def preferred(challenges: list[Challenge]) -> Challenge | None:
    """The challenge a client acts on: Bearer over Basic, as containerd's authorizer does."""
    for scheme in ("bearer", "basic"):
        for c in challenges:
            if c.scheme == scheme:
                return c
    return None
