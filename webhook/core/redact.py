"""Keeping credentials out of every string pullguard produces.

``Secret`` wraps a password, token or ``auth`` value so that ``repr``/``str``/f-strings and
logging never show it (DESIGN 5: "``repr`` of credential types is redacted"). ``redact_url``
keeps only the query parameters the distribution protocol defines and blanks the rest, after
go-containerregistry's ``internal/redact`` allowlist.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SHOWN = "***"

#: Query parameters that never carry a credential (ggcr internal/redact paramAllowlist).
_QUERY_ALLOWLIST = frozenset({"scope", "service", "n", "last", "ns", "digest", "mount", "from", "account"})


class Secret:
    """A credential value whose text is shown only by an explicit ``reveal()``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The real value: call only where it is sent to the registry it belongs to."""
        return self._value

    def fingerprint(self) -> str:
        """A short, non-reversible tag for cache keys (never the value itself)."""
        return hashlib.sha256(self._value.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({_SHOWN!r})"

    def __str__(self) -> str:
        return _SHOWN

    def __format__(self, spec: str) -> str:
        return _SHOWN

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("pullguard.Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the value somewhere we do not control.
        raise TypeError("Secret values are not picklable")


def redact_url(url: str) -> str:
    """``url`` with userinfo removed and non-protocol query values replaced by ``REDACTED``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, v if k in _QUERY_ALLOWLIST else "REDACTED") for k, v in pairs])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
