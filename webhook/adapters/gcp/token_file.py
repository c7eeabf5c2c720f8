"""``gcp.accessTokenFile``: an OAuth2 access token read from a file, as google-auth credentials.

Its own module so that google-auth (which it subclasses) is imported only when a Google API is
actually used — see ``apis.py``. The file is re-read on every refresh and at least every minute
(a CI step or a sidecar may rotate it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.auth import credentials as ga_credentials

from webhook.core.errors import CloudError


class TokenFileCredentials(ga_credentials.Credentials):
    """An access token read from a file, re-read on every refresh (the file may be rotated)."""

    def __init__(self, path: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._path = path

    def refresh(self, request: Any) -> None:
        try:
            with open(self._path, encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError as exc:
            raise CloudError(
                "credentials",
                f"cannot read gcp.accessTokenFile {self._path}: {exc.strerror}",
                code="unauthorized",
            ) from None
        if not value:
            raise CloudError("credentials", f"gcp.accessTokenFile {self._path} is empty", code="unauthorized")
        self.token = value
        # Re-read at least every minute so a rotated file is picked up.
        self.expiry = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=60)
