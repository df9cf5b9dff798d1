"""KyroDB's Python client.

- :class:`Client` / :class:`AsyncClient`: gRPC to kyro-server (vectors,
  payloads, filters, namespaces, stats).
- :class:`GatewayClient` / :class:`AsyncGatewayClient`: REST to
  kyro-gateway (failure episodes: capture, search, reflect, validate_fix;
  embeddings; the admin API).

Vectors may be numpy arrays or sequences of numbers; errors are
:class:`KyroError` subclasses; transient failures are retried as a
:class:`RetryPolicy` says.
"""

from . import filters
from ._proto.kyro.v1 import kyro_pb2 as pb
from .aio import AsyncClient
from .client import Client
from .errors import (
    AlreadyExists,
    Cancelled,
    Conflict,
    DeadlineExceeded,
    InternalError,
    InvalidArgument,
    KyroError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from .gateway import GatewayClient
from .gateway_aio import AsyncGatewayClient
from .models import (
    BulkGetResult,
    BulkInsertResult,
    CacheStats,
    Hit,
    InstanceConfig,
    ItemError,
    NamespaceInfo,
    Point,
    Record,
    ScrollPage,
    SearchResult,
    Snapshot,
    Stats,
)
from .retry import NO_RETRY, RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "AsyncGatewayClient",
    "BulkGetResult",
    "BulkInsertResult",
    "CacheStats",
    "Cancelled",
    "Client",
    "Conflict",
    "DeadlineExceeded",
    "GatewayClient",
    "Hit",
    "InstanceConfig",
    "InternalError",
    "InvalidArgument",
    "ItemError",
    "KyroError",
    "NO_RETRY",
    "NamespaceInfo",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "Point",
    "QuotaExceeded",
    "RateLimited",
    "Record",
    "ResourceExhausted",
    "RetryPolicy",
    "ScrollPage",
    "SearchResult",
    "Snapshot",
    "Stats",
    "Unauthenticated",
    "Unavailable",
    "filters",
    "pb",
]
