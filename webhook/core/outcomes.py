"""Registry answers → DESIGN 1.1 outcomes, in one place.

The same mapping decides every HTTP answer pullguard gets from a registry or its token server, so
401, 403 and 404 never mean different things in different code paths (STYLE rule 4: keep
UNAUTHORIZED, DENIED, NAME_UNKNOWN, MANIFEST_UNKNOWN, TOOMANYREQUESTS apart; never fold 403 into
401). Sources: OCI distribution-spec ``spec.md`` (status codes, error codes), the token spec
(``docs/content/spec/auth/token.md``: the token server returns 401 only for invalid credentials;
lack of access yields a reduced token, and the registry then answers 401 with
``error="insufficient_scope"``), containerd ``resolver.go``/``authorizer.go``.

``describe_retry_after`` words a 429/503 ``Retry-After`` header (RFC 9110 10.2.3: delay-seconds
or an HTTP-date) for a message. pullguard never waits for it (the admission deadline is seconds,
a registry's back-off can be an hour); the user is told when to try again. A value in neither
form is not echoed: the header is the registry's text and would otherwise reach the user, logs
and the API server's event unchecked.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum

_DELAY_SECONDS = re.compile(r"[0-9]{1,10}", re.ASCII)
#: RFC 9110 5.6.7: recipients accept all three HTTP-date forms; senders use the first (IMF-fixdate).
#: (email.utils would parse them, but it imports ``socket``, which core may not.)
_MONTH = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})"
_HTTP_DATES = (
    re.compile(
        rf"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (?P<day>[0-9]{{2}}) {_MONTH} (?P<year>[0-9]{{4}}) {_TIME} GMT"
    ),
    re.compile(
        rf"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
        rf"(?P<day>[0-9]{{2}})-{_MONTH}-(?P<year>[0-9]{{2}}) {_TIME} GMT"
    ),
    re.compile(rf"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) {_MONTH} (?P<day>[ 0-9][0-9]) {_TIME} (?P<year>[0-9]{{4}})"),
)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Phase(Enum):
    MANIFEST = "manifest"  # HEAD/GET /v2/<name>/manifests/<ref>, blobs, tags
    TOKEN = "token"  # noqa: S105 - GET/POST <realm>


def outcome_for(
    status: int,
    *,
    phase: Phase = Phase.MANIFEST,
    code: str | None = None,
    challenge_error: str | None = None,
    authenticated: bool = False,
) -> str:
    """The outcome of one non-success HTTP answer.

    ``authenticated``: a non-anonymous credential was accepted (the token server issued a token
    for it, or Basic credentials were sent) — a later refusal then means *forbidden*, not
    *unauthorized*.
    """
    if 200 <= status < 300:
        return "pullable"
    if status == 429 or code == "TOOMANYREQUESTS":
        return "rate-limited"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "unreachable"
    if phase is Phase.TOKEN:
        if status == 401:
            return "unauthorized"
        if status == 403:
            return "forbidden"
        return "undetermined"
    if status == 404 or code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"):
        return "not-found"
    if status == 401:
        if authenticated and challenge_error == "insufficient_scope":
            return "forbidden"
        return "unauthorized"
    if status == 403 or code == "DENIED":
        return "forbidden"
    return "undetermined"


def describe_status(status: int | None, code: str | None) -> str:
    """``401 UNAUTHORIZED`` style text for messages."""
    parts = [str(status)] if status else []
    if code:
        parts.append(code)
    return " ".join(parts)


def describe_retry_after(value: str | None) -> str | None:
    """``retry after 30 s``, ``retry after <HTTP-date>``, or a note that the header was unusable.

    None when there was no header.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        return f"retry after {int(text)} s"
    if _http_date(text):
        return f"retry after {text}"
    return "the registry sent an unusable Retry-After header"


def _http_date(text: str) -> bool:
    """Whether ``text`` is an HTTP-date in any of its three forms, naming a day that exists."""
    for form in _HTTP_DATES:
        match = form.fullmatch(text)
        if match is None:
            continue
        year = int(match["year"])
        if len(match["year"]) == 2:  # a fixed pivot (core has no clock): only whether the day exists matters
            year += 2000 if year < 70 else 1900
        try:
            datetime(
                year,
                _MONTHS.index(match["month"]) + 1,
                int(match["day"]),
                int(match["hour"]),
                int(match["minute"]),
                int(match["second"]),
            )
        except ValueError:  # 31 Feb, 25:00
            return False
        return True
    return False
