"""pullguard's own access to the Google APIs: credentials and the REST clients, built lazily.

What: one ``GoogleApis`` per process holds pullguard's credentials and the client objects for
Artifact Registry v1, GKE (container v1), Resource Manager v3 (projects, folders, organizations)
and, for the ``impersonate`` permission check, IAM Credentials ``generateAccessToken`` through
google-auth's ``impersonated_credentials``. Every client uses ``transport="rest"`` and the
endpoint from ``gcp.endpoints`` when given (``http://127.0.0.1:PORT`` keeps its scheme, so the
tests' wire fake needs no TLS — research/test-infrastructure.md §5). The libraries have no async
REST transport, so callers run these blocking calls in a thread (``call``).

Credentials: ``gcp.accessTokenFile`` names a file holding an OAuth2 access token (re-read when
it changes; what ``gcloud auth print-access-token`` prints, or a CI step's token output);
otherwise the google-auth default chain (GOOGLE_APPLICATION_CREDENTIALS, workload identity, the
metadata server). The same token is pullguard's password (user ``oauth2accesstoken``) on the
Docker data plane (``*-docker.pkg.dev``), as AR documents for access-token authentication.

Not here: the network guard. These clients use ``requests`` through google-auth, not pullguard's
guarded httpx client; their endpoints are operator configuration, never taken from a workload.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from webhook.adapters.gcp._errors import google_errors
from webhook.core.gcp_iam import CLOUD_PLATFORM
from webhook.core.redact import Secret

if TYPE_CHECKING:
    # google-auth and google-api-core are imported where used (~0.35 s): a CLI run or a cluster
    # that never needs a Google API does not pay for them (bench/README.md, B2/B5 process time).
    from google.api_core.client_options import ClientOptions
    from google.auth import credentials as ga_credentials

T = TypeVar("T")
#: Lifetime asked for impersonated node-SA tokens (they are used for one check).
IMPERSONATION_LIFETIME = 300


@dataclass(frozen=True, slots=True)
class GcpOptions:
    endpoints: Mapping[str, str] = field(default_factory=dict)
    access_token_file: str | None = None
    permission_check: str = "iam"  # "iam" | "impersonate"
    request_timeout: float = 2.0


class GoogleApis:
    """Lazily built clients; safe to share between threads (client objects are thread-safe)."""

    def __init__(self, options: GcpOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._credentials: ga_credentials.Credentials | None = None
        self._clients: dict[str, Any] = {}

    # -- running blocking client calls ----------------------------------------------------------

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    @property
    def timeout(self) -> float:
        return self.options.request_timeout

    # -- credentials --------------------------------------------------------------------------------

    def credentials(self) -> ga_credentials.Credentials:
        with self._lock:
            if self._credentials is None:
                if self.options.access_token_file:
                    from webhook.adapters.gcp.token_file import TokenFileCredentials

                    self._credentials = TokenFileCredentials(self.options.access_token_file)
                else:
                    import google.auth

                    with google_errors("credentials", "google-auth default credentials"):
                        self._credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
            return self._credentials

    def access_token(self) -> Secret:
        """pullguard's current access token (refreshed when stale) — for the Docker data plane."""
        from google.auth.transport.requests import Request

        creds = self.credentials()
        with self._lock, google_errors("credentials", "refreshing pullguard's access token"):
            if not creds.valid:
                creds.refresh(Request())  # type: ignore[no-untyped-call]
            return Secret(str(creds.token))

    def impersonated(self, email: str) -> ga_credentials.Credentials:
        """Credentials of ``email`` via IAM Credentials ``generateAccessToken`` (needs TokenCreator)."""
        from google.auth import impersonated_credentials

        base = self.options.endpoints.get("iamcredentials")
        override = (
            f"{base.rstrip('/')}/v1/projects/-/serviceAccounts/{email}:generateAccessToken" if base else None
        )
        return impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
            source_credentials=self.credentials(),
            target_principal=email,
            target_scopes=[CLOUD_PLATFORM],
            lifetime=IMPERSONATION_LIFETIME,
            iam_endpoint_override=override,
        )

    # -- clients -----------------------------------------------------------------------------------

    def _options(self, service: str) -> ClientOptions:
        from google.api_core.client_options import ClientOptions

        endpoint = self.options.endpoints.get(service)
        return ClientOptions(api_endpoint=endpoint) if endpoint else ClientOptions()

    def _client(self, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            client = build()
            with self._lock:
                client = self._clients.setdefault(key, client)
        return client

    def artifact_registry(self, credentials: ga_credentials.Credentials | None = None) -> Any:
        from google.cloud import artifactregistry_v1

        def build() -> Any:
            return artifactregistry_v1.ArtifactRegistryClient(
                transport="rest",
                credentials=credentials or self.credentials(),
                client_options=self._options("artifactregistry"),
            )

        if credentials is not None:
            return build()
        return self._client("artifactregistry", build)

    def cluster_manager(self) -> Any:
        from google.cloud import container_v1

        return self._client(
            "container",
            lambda: container_v1.ClusterManagerClient(
                transport="rest", credentials=self.credentials(), client_options=self._options("container")
            ),
        )

    def resource_manager(self, kind: str) -> Any:
        """``projects``, ``folders`` or ``organizations`` client of Resource Manager v3."""
        from google.cloud import resourcemanager_v3

        classes = {
            "projects": resourcemanager_v3.ProjectsClient,
            "folders": resourcemanager_v3.FoldersClient,
            "organizations": resourcemanager_v3.OrganizationsClient,
        }
        cls = classes[kind]
        return self._client(
            f"crm-{kind}",
            lambda: cls(
                transport="rest",
                credentials=self.credentials(),
                client_options=self._options("cloudresourcemanager"),
            ),
        )
