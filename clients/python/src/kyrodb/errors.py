"""Exceptions raised by every kyrodb client.

One hierarchy serves both transports: a gRPC status from kyro-server and an
HTTP error from the gateway (``{"error": {"code", "message", "field"}}``)
map to the same classes, so ``except kyrodb.NotFound`` works with either.

Every error carries:

- ``code``: the server's code, a gRPC status name (``"INVALID_ARGUMENT"``)
  or the gateway's code (``"validation_error"``);
- ``message``: the server's message;
- ``field``: the offending field when the server names one (the gateway's
  ``field``; for gRPC, the field path the message starts with, such as
  ``vector`` in ``vector: expected 384 dimensions, got 3``);
- ``status``: the HTTP status (gateway errors) or ``None``;
- ``request_id``: the gateway's ``X-Request-Id`` or ``None``.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import grpc

__all__ = [
    "KyroError",
    "InvalidArgument",
    "PayloadTooLarge",
    "Unauthenticated",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "AlreadyExists",
    "ResourceExhausted",
    "RateLimited",
    "QuotaExceeded",
    "Unavailable",
    "DeadlineExceeded",
    "Cancelled",
    "InternalError",
    "from_grpc_error",
    "from_http_error",
]


class KyroError(Exception):
    """Base class of every error a kyrodb client raises."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        field: Optional[str] = None,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        prefix = f"{self.code}: " if self.code else ""
        return prefix + self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"field={self.field!r}, status={self.status!r})"
        )


class InvalidArgument(KyroError):
    """A request field breaks a rule (gRPC INVALID_ARGUMENT, HTTP 400/422)."""


class PayloadTooLarge(InvalidArgument):
    """The request body is larger than the gateway accepts (HTTP 413)."""


class Unauthenticated(KyroError):
    """No key, or an unknown, revoked or expired key (UNAUTHENTICATED, 401)."""


class PermissionDenied(KyroError):
    """The key lacks a scope, or the customer is suspended (PERMISSION_DENIED, 403)."""


class NotFound(KyroError):
    """The namespace, point, episode, customer or key does not exist (NOT_FOUND, 404)."""


class Conflict(KyroError):
    """The request conflicts with the server's state (HTTP 409): an
    ``Idempotency-Key`` reused with another body, or still running."""


class AlreadyExists(Conflict):
    """The thing to create exists already (gRPC ALREADY_EXISTS: a snapshot name)."""


class ResourceExhausted(KyroError):
    """The server refused for lack of capacity (gRPC RESOURCE_EXHAUSTED, HTTP 429)."""


class RateLimited(ResourceExhausted):
    """Too many requests for this customer and endpoint (HTTP 429 ``rate_limited``).

    ``retry_after`` is the server's ``Retry-After`` in seconds, when sent.
    """

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class QuotaExceeded(ResourceExhausted):
    """The monthly capture quota and its grace are used up (HTTP 429 ``quota_exceeded``)."""


class Unavailable(KyroError):
    """The server cannot be reached or is shutting down (UNAVAILABLE, HTTP 503).

    Clients retry these with backoff before raising.
    """


class DeadlineExceeded(KyroError):
    """The request's deadline passed (gRPC DEADLINE_EXCEEDED, or an HTTP timeout)."""


class Cancelled(KyroError):
    """The call was cancelled (gRPC CANCELLED)."""


class InternalError(KyroError):
    """A failure on the server's side (INTERNAL, HTTP 500) or an unexpected answer."""


_GRPC_CLASSES: Mapping[grpc.StatusCode, type[KyroError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}

_HTTP_CODES: Mapping[str, type[KyroError]] = {
    "bad_request": InvalidArgument,
    "validation_error": InvalidArgument,
    "payload_too_large": PayloadTooLarge,
    "unauthenticated": Unauthenticated,
    "forbidden": PermissionDenied,
    "not_found": NotFound,
    "conflict": Conflict,
    "rate_limited": RateLimited,
    "quota_exceeded": QuotaExceeded,
    "unavailable": Unavailable,
    "internal": InternalError,
}

_HTTP_STATUSES: Mapping[int, type[KyroError]] = {
    400: InvalidArgument,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    405: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidArgument,
    429: ResourceExhausted,
    503: Unavailable,
    504: DeadlineExceeded,
}

# kyro-server's INVALID_ARGUMENT messages start with the field's path:
# "vector: …", "filter.all_of[1].range: …", "points[3].payload.tags: …".
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]*)*): ")


def from_grpc_error(error: grpc.RpcError) -> KyroError:
    """The kyrodb exception for a failed gRPC call."""
    code: grpc.StatusCode = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(error)
    cls = _GRPC_CLASSES.get(code, InternalError)
    field = None
    if cls is InvalidArgument:
        match = _FIELD_PREFIX.match(details)
        if match:
            field = match.group(1)
    return cls(details, code=code.name, field=field)


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the gateway sends seconds


def from_http_error(status: int, body: Any, headers: Mapping[str, str]) -> KyroError:
    """The kyrodb exception for a gateway error response.

    ``body`` is the decoded JSON (or ``None`` when the body is not JSON);
    ``headers`` must look names up case-insensitively (``httpx.Headers`` does).
    """
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        code = str(detail.get("code") or "")
        message = str(detail.get("message") or "")
        field = detail.get("field")
    else:
        code, message, field = "", "", None
    cls = _HTTP_CODES.get(code) or _HTTP_STATUSES.get(status)
    if cls is None:
        cls = InternalError if status >= 500 else KyroError
    if not message:
        message = f"HTTP {status}"
    kwargs: dict[str, Any] = {
        "code": code or f"http_{status}",
        "field": str(field) if field is not None else None,
        "status": status,
        "request_id": headers.get("x-request-id"),
    }
    if cls is RateLimited:
        return RateLimited(message, retry_after=_retry_after(headers), **kwargs)
    return cls(message, **kwargs)
