"""HTTP details shared by ``GatewayClient`` and ``AsyncGatewayClient``:
headers, answers, and which failures may be retried."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, TypeVar

import httpx

from ._gateway_requests import Request
from .errors import DeadlineExceeded, InternalError, KyroError, Unavailable, from_http_error

DEFAULT_URL = "http://127.0.0.1:8080"

T = TypeVar("T")

# Failures before anything reached the gateway: safe to retry any request.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def base_url(url: Optional[str]) -> str:
    """``url``, else ``$KYRO_GATEWAY_URL``, else ``http://127.0.0.1:8080``."""
    return (url or os.environ.get("KYRO_GATEWAY_URL") or DEFAULT_URL).rstrip("/")


def api_key(key: Optional[str]) -> Optional[str]:
    """``key``, else ``$KYRO_GATEWAY_API_KEY``."""
    return key if key is not None else os.environ.get("KYRO_GATEWAY_API_KEY")


def headers(request: "Request[Any]", key: Optional[str]) -> Dict[str, str]:
    """The request's headers plus the key (``X-API-Key``) when it needs one."""
    result = dict(request.headers)
    if request.authenticated and key:
        result["X-API-Key"] = key
    return result


def may_retry_transport(error: httpx.TransportError, request: "Request[Any]") -> bool:
    """Whether a request that failed in transport may be sent again."""
    return isinstance(error, _NOT_SENT) or request.idempotent


def transport_failure(error: httpx.TransportError, url: str) -> KyroError:
    """The kyrodb exception for a transport failure."""
    if isinstance(error, httpx.TimeoutException):
        return DeadlineExceeded(f"{url}: {type(error).__name__}: {error}", code="timeout")
    return Unavailable(f"{url}: {type(error).__name__}: {error}", code="connection_error")


def answer(request: "Request[T]", response: httpx.Response) -> T:
    """The parsed body of a successful response; raises for an error one."""
    if response.status_code >= 400:
        raise error_of(response)
    if response.status_code == 204 or not response.content:
        return request.parse(None)
    try:
        body = response.json()
    except ValueError as error:
        raise InternalError(
            f"{request.method} {request.path}: the gateway answered {response.status_code} with non-JSON",
            code="bad_answer",
            status=response.status_code,
        ) from error
    return request.parse(body)


def error_of(response: httpx.Response) -> KyroError:
    """The kyrodb exception for an error response."""
    try:
        body = response.json()
    except ValueError:
        body = None
    return from_http_error(response.status_code, body, response.headers)


def retry_after(response: httpx.Response) -> Optional[float]:
    """The response's ``Retry-After`` in seconds, if it sent one."""
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def may_retry_response(response: httpx.Response, request: "Request[Any]") -> bool:
    """Whether a request answered ``response`` may be sent again: a 503
    (kyro-server or the model unreachable, or the gateway's deadline) for an
    idempotent request."""
    return response.status_code == 503 and request.idempotent
