"""pullguard's one exception tree.

Every problem pullguard can name is one of these types; adapters translate their library's
exceptions (httpx, botocore, kubernetes, google.api_core) into them at exactly one boundary, so no
foreign exception reaches the engine, the CLI or the webhook (STYLE rule 3, after httpx's
``_exceptions.py`` and ``map_httpcore_exceptions``).

    PullguardError
    ├── InputError                 bad input from the user; carries the field path
    │   ├── InvalidReferenceError  an image reference distribution/reference would reject
    │   ├── SecretMalformedError   a pull secret kubelet cannot decode (aborts the pod's lookup)
    │   ├── ConfigError            the configuration file (every problem, with key paths)
    │   └── ManifestError          a YAML/JSON document the CLI cannot read as Kubernetes objects
    ├── DestinationRefusedError    the network guard refused a host (SSRF protection)
    ├── RegistryError              a registry answered something other than success
    ├── ClusterReadError           the Kubernetes API could not be read (RBAC, unreachable)
    ├── CloudError                 a cloud API (AWS, GCP) could not be read
    └── DeadlineExceededError      the check ran out of its time budget

Messages never contain a credential: constructors take names and field paths, never secret
values (DESIGN 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PullguardError(Exception):
    """Root of every error pullguard raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(PullguardError):
    """Input the user gave us is wrong; ``field`` names where (a dotted/indexed path)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidReferenceError(InputError):
    """An image reference that ``ParseNormalizedNamed`` rejects.

    ``upstream`` is the exact message distribution/reference gives (the conformance vectors
    compare against it); ``message`` adds what is wrong and where, for humans.
    """

    def __init__(self, reference: str, reason: str, upstream: str, field: str | None = None) -> None:
        shown = reference if len(reference) <= 80 else reference[:77] + "..."
        super().__init__(f"invalid image reference {shown!r}: {reason}", field)
        self.reference = reference
        self.reason = reason
        self.upstream = upstream


class SecretMalformedError(InputError):
    """A pull secret kubelet cannot decode.

    kubelet's ``MakeDockerKeyring`` fails for the whole pod when any pull secret is malformed
    (pkg/credentialprovider/secrets/secrets.go), so this is a verdict for every image, not only
    for the images the secret would have matched. ``upstream`` mirrors kubelet's own wording.
    """

    def __init__(self, secret: str, field: str, reason: str, upstream: str = "") -> None:
        super().__init__(f"secret {secret}: {field}: {reason}", field)
        self.secret = secret
        self.reason = reason
        self.upstream = upstream or reason


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration file: the key path and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(InputError):
    """A configuration file that cannot be used; lists every problem, not only the first."""

    def __init__(self, source: str, problems: Sequence[ConfigProblem]) -> None:
        lines = "; ".join(str(p) for p in problems)
        super().__init__(f"configuration {source}: {lines}", problems[0].path if problems else None)
        self.source = source
        self.problems = tuple(problems)


class ManifestError(InputError):
    """A document given to ``pullguard check`` that is not a readable Kubernetes object."""

    def __init__(self, source: str, message: str, field: str | None = None) -> None:
        where = f"{source}: {field}: " if field else f"{source}: "
        super().__init__(where + message, field)
        self.source = source


class DestinationRefusedError(PullguardError):
    """The network guard refused to contact a host (loopback, link-local, metadata, ...)."""

    def __init__(self, host: str, address: str | None, reason: str) -> None:
        at = f" ({address})" if address and address != host else ""
        super().__init__(f"refused to contact {host}{at}: {reason}")
        self.host = host
        self.address = address
        self.reason = reason


class RegistryError(PullguardError):
    """A registry (or its token server) answered something other than success.

    ``outcome`` is one of the DESIGN 1.1 outcomes; ``status`` the HTTP status (None for transport
    failures); ``code`` the distribution-spec error code when the body carried one.
    ``url`` is already redacted.
    """

    def __init__(
        self,
        outcome: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.status = status
        self.code = code
        self.url = url
        self.retry_after = retry_after

    @property
    def temporary(self) -> bool:
        """Whether asking again later could change the answer (after ggcr ``Temporary()``)."""
        return self.outcome in {"rate-limited", "unreachable", "timeout"}


class ClusterReadError(PullguardError):
    """The Kubernetes API could not answer (no RBAC, unreachable, malformed object)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class CloudError(PullguardError):
    """A cloud provider API could not answer; ``service`` names it (ecr, iam, artifactregistry...)."""

    def __init__(self, service: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.code = code


class DeadlineExceededError(PullguardError):
    """The whole check ran out of its time budget."""
