"""The one boundary where google-api-core, google-auth and requests exceptions become ``CloudError``.

Every call into a Google client library runs inside ``google_errors(service, what)``; nothing
from ``google.*`` or ``requests`` escapes this package (STYLE rule 3, after httpx
``map_httpcore_exceptions``). ``CloudError.code`` keeps the distinctions callers act on:

=================  ====================================================================
``not-found``      404 ``NotFound``: the resource does not exist
``forbidden``      403 ``Forbidden``/``PermissionDenied`` (REST 403 maps to ``Forbidden``)
``unauthorized``   401 ``Unauthorized``/``Unauthenticated``, or a token that could not be
                   fetched (``RefreshError``, ``DefaultCredentialsError``)
``timeout``        ``DeadlineExceeded`` / a read timeout
``rate-limited``   429 ``TooManyRequests``/``ResourceExhausted``
``unreachable``    5xx, connection refused, DNS, TLS
``error``          anything else the API answered (400 and the like)
=================  ====================================================================

Messages carry the API's own message (it never holds a credential) and never a token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from webhook.core.errors import CloudError

_MESSAGE_LIMIT = 300


def _short(exc: BaseException) -> str:
    message = getattr(exc, "message", None)
    if message is None and len(exc.args) == 2 and isinstance(exc.args[1], str):
        # google-auth RefreshError(summary, response body): keep the API's own message.
        try:
            inner = json.loads(exc.args[1]).get("error", {}).get("message")
        except (ValueError, AttributeError):
            inner = None
        message = f"{exc.args[0]}: {inner}" if inner else str(exc.args[0])
    text = str(message or exc or type(exc).__name__)
    return text.replace("\n", " ")[:_MESSAGE_LIMIT]


def _code(exc: BaseException) -> str:
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, gexc.NotFound):
        return "not-found"
    if isinstance(exc, (gexc.Forbidden, gexc.PermissionDenied)):
        return "forbidden"
    if isinstance(exc, (gexc.Unauthorized, gexc.Unauthenticated)):
        return "unauthorized"
    if isinstance(exc, (gexc.DeadlineExceeded, requests.Timeout)):
        return "timeout"
    if isinstance(exc, (gexc.TooManyRequests, gexc.ResourceExhausted)):
        return "rate-limited"
    if isinstance(exc, (gexc.ServerError, gexc.ServiceUnavailable, requests.ConnectionError)):
        return "unreachable"
    if isinstance(exc, (auth_exc.RefreshError, auth_exc.DefaultCredentialsError)):
        return "unauthorized"
    if isinstance(exc, auth_exc.TransportError):
        return "unreachable"
    if isinstance(exc, gexc.RetryError):
        return "timeout"
    return "error"


@contextmanager
def google_errors(service: str, what: str) -> Iterator[None]:
    """Translate any Google/requests exception raised while doing ``what`` into ``CloudError``."""
    # Imported here, not at the top: only code that calls a Google API pays for them (apis.py).
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    try:
        yield
    except CloudError:
        raise
    except (gexc.GoogleAPIError, auth_exc.GoogleAuthError, requests.RequestException) as exc:
        code = _code(exc)
        status = getattr(exc, "code", None)
        shown = f"{int(status)} " if isinstance(status, int) else ""
        raise CloudError(service, f"{what}: {shown}{_short(exc)}", code=code) from None
    except (OSError, ValueError) as exc:
        raise CloudError(service, f"{what}: {_short(exc)}", code="error") from None
