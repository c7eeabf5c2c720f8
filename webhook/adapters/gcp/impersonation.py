"""``gcp.permissionCheck: impersonate``: ask IAM itself, as the node pool's service account.

pullguard obtains a short-lived token for the node SA through IAM Credentials
``projects/-/serviceAccounts/<email>:generateAccessToken`` (google-auth
``impersonated_credentials``; pullguard's own account needs ``roles/iam.serviceAccountTokenCreator``
on the node SA) and calls Artifact Registry ``testIamPermissions`` on the repository with it. IAM
answers with the permissions the caller holds, after allow policies, conditions, deny policies
and principal access boundaries — everything the policy reader cannot evaluate. The token asks
for ``cloud-platform`` so that the AR API accepts the call; the node pool's real scopes are
checked separately (they limit the node's token, not this one).
"""

from __future__ import annotations

import threading
from typing import Any

from webhook.adapters.gcp._errors import google_errors
from webhook.adapters.gcp.apis import GoogleApis
from webhook.core.gcp_iam import DOWNLOAD_PERMISSION
from webhook.core.gcp_names import ArTarget


class ImpersonatedCheck:
    def __init__(self, apis: GoogleApis) -> None:
        self._apis = apis
        self._lock = threading.Lock()
        #: per node SA: its impersonated credentials and an AR client using them (tokens are reused
        #: until they expire, so a chart's images cost one generateAccessToken per node SA)
        self._clients: dict[str, tuple[Any, Any]] = {}

    def _client_for(self, email: str) -> Any:
        with self._lock:
            cached = self._clients.get(email)
        if cached is None:
            credentials = self._apis.impersonated(email)
            cached = (credentials, self._apis.artifact_registry(credentials))
            with self._lock:
                cached = self._clients.setdefault(email, cached)
        credentials, client = cached
        from google.auth.transport.requests import Request  # google-auth only when used (apis.py)

        with google_errors("iamcredentials", f"generateAccessToken for {email}"):
            if not credentials.valid:
                credentials.refresh(Request())
        return client

    async def may_download(self, email: str, target: ArTarget) -> bool:
        def ask() -> bool:
            client = self._client_for(email)
            what = f"testIamPermissions on {target.repository_name} as {email}"
            with google_errors("artifactregistry", what):
                response = client.test_iam_permissions(
                    request={"resource": target.repository_name, "permissions": [DOWNLOAD_PERMISSION]},
                    retry=None,
                    timeout=self._apis.timeout,
                )
            return DOWNLOAD_PERMISSION in list(response.permissions)

        return await self._apis.call(ask)
