"""``Retry-After`` (RFC 9110 10.2.3) as pullguard words it: seconds or an IMF-fixdate, nothing else echoed."""

from __future__ import annotations

import pytest

from webhook.core.outcomes import describe_retry_after

UNUSABLE = "the registry sent an unusable Retry-After header"


@pytest.mark.parametrize(
    ("header", "said"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("30", "retry after 30 s", id="delay-seconds"),
        pytest.param(" 7 ", "retry after 7 s", id="delay-seconds-with-spaces"),
        pytest.param("0", "retry after 0 s", id="zero"),
        pytest.param("Wed, 21 Oct 2099 07:28:00 GMT", "retry after Wed, 21 Oct 2099 07:28:00 GMT", id="date"),
        pytest.param("Wed, 31 Feb 2099 07:28:00 GMT", UNUSABLE, id="date-that-does-not-exist"),
        pytest.param(
            "Wednesday, 21-Oct-99 07:28:00 GMT",
            "retry after Wednesday, 21-Oct-99 07:28:00 GMT",
            id="rfc850-date",
        ),
        pytest.param("Wed Oct 21 07:28:00 2099", "retry after Wed Oct 21 07:28:00 2099", id="asctime-date"),
        pytest.param(
            "Wed Oct  1 07:28:00 2099", "retry after Wed Oct  1 07:28:00 2099", id="asctime-one-digit-day"
        ),
        pytest.param("Wed, 21 Oct 2099 07:28:00 UTC", UNUSABLE, id="not-gmt"),
        pytest.param("-1", UNUSABLE, id="negative"),
        pytest.param("1.5", UNUSABLE, id="fraction"),
        pytest.param("99999999999", UNUSABLE, id="eleven-digits"),
        pytest.param("", UNUSABLE, id="empty"),
        pytest.param("soon<script>alert(1)</script>", UNUSABLE, id="markup-is-not-echoed"),
        pytest.param("30\r\nX-Injected: 1", UNUSABLE, id="header-injection-is-not-echoed"),
    ],
)
def test_retry_after_is_worded_or_refused(header: str | None, said: str | None) -> None:
    assert describe_retry_after(header) == said
