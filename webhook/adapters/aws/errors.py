"""botocore exceptions → ``core.errors.CloudError``, in exactly one place (STYLE rule 3).

Every AWS call of the package runs inside ``translate(service, operation)``. The error keeps the
AWS error code and a ``kind`` that the callers branch on — never on message text:

    credentials   pullguard's own credentials are missing, invalid or expired
    access        authenticated, but pullguard's identity may not make this call
    not-found     the named entity does not exist (NoSuchEntity, RepositoryNotFoundException, ...)
    unavailable   the operation is not implemented by this endpoint (HTTP 501, or 500 with no code)
    throttled     the API throttled us
    unreachable   no connection to the endpoint
    timeout       the endpoint did not answer in time
    other         anything else (bad parameters, unparsable answers)

Messages carry no credential: botocore's error messages name operations and principals only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from webhook.core.errors import CloudError

#: AWS error codes meaning "your credentials are not valid" (STS/IAM/ECR/EC2 spellings).
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "AuthFailure",
        "InvalidAccessKeyId",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)
_ACCESS_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"})
_NOT_FOUND_CODES = frozenset(
    {
        "NoSuchEntity",
        "RepositoryNotFoundException",
        "RepositoryPolicyNotFoundException",
        "ResourceNotFoundException",
        "InvalidInstanceID.NotFound",
        "ImageNotFoundException",
    }
)
_THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException"}
)
_XML_FIELD = re.compile(r"<(Code|Message)>([^<]*)</\1>")


class AwsCallError(CloudError):
    """A failed AWS call: ``service``, ``operation``, AWS ``code`` and pullguard's ``kind``."""

    def __init__(
        self, service: str, operation: str, kind: str, message: str, code: str | None = None
    ) -> None:
        super().__init__(service, f"{operation}: {message}", code=code)
        self.operation = operation
        self.kind = kind
        self.reason = message


def _kind(code: str, status: int | None) -> str:
    if code in _CREDENTIAL_CODES:
        return "credentials"
    if code in _ACCESS_CODES:
        return "access"
    if code in _NOT_FOUND_CODES:
        return "not-found"
    if code in _THROTTLE_CODES or status == 429:
        return "throttled"
    if status == 501 or code in ("NotImplemented", "501"):
        return "unavailable"
    if status == 403:
        return "access"
    if status is not None and status >= 500:
        return "unavailable" if code in ("", str(status)) else "unreachable"
    return "other"


def _from_client_error(
    service: str, operation: str, error: dict[str, object], status: int | None
) -> AwsCallError:
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "")
    # Some endpoints answer a JSON-protocol call with a Query-protocol XML body: read it.
    if "<Code>" in message or (code.isdigit() and "<" in message):
        fields = dict(_XML_FIELD.findall(message))
        code = fields.get("Code", code)
        message = fields.get("Message", "")
    if message.lstrip().startswith("<"):
        message = ""  # an HTML error page says nothing useful
    kind = _kind(code, status)
    shown = f"{code}: {message}" if message else (code or f"HTTP {status}")
    if kind == "unavailable" and not message:
        shown = f"HTTP {status} (the endpoint does not implement {operation})"
    return AwsCallError(service, operation, kind, shown[:400], code or None)


@contextmanager
def translate(service: str, operation: str) -> Iterator[None]:
    """Run one boto3 call; any botocore exception leaves as ``AwsCallError`` (``raise … from``)."""
    import botocore.exceptions as bx

    try:
        yield
    except bx.ClientError as exc:
        meta = exc.response.get("ResponseMetadata", {})
        status = meta.get("HTTPStatusCode") if isinstance(meta, dict) else None
        error = exc.response.get("Error", {})
        raise _from_client_error(service, operation, dict(error), status) from exc
    except (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError) as exc:
        raise AwsCallError(
            service,
            operation,
            "credentials",
            f"no usable AWS credentials ({type(exc).__name__}); pullguard uses boto3's standard chain: "
            "environment, profile, web identity (IRSA) or EKS Pod Identity, instance metadata",
            "NoCredentials",
        ) from exc
    except (bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
        raise AwsCallError(
            service, operation, "timeout", f"no answer in time ({type(exc).__name__})"
        ) from exc
    except (bx.EndpointConnectionError, bx.ConnectionClosedError, bx.HTTPClientError) as exc:
        raise AwsCallError(service, operation, "unreachable", str(exc)[:300]) from exc
    except bx.BotoCoreError as exc:
        raise AwsCallError(service, operation, "other", f"{type(exc).__name__}: {str(exc)[:300]}") from exc
