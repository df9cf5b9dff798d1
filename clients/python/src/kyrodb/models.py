"""What the gRPC clients take and return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from .vectors import VectorLike

__all__ = [
    "Point",
    "PointLike",
    "Record",
    "Hit",
    "SearchResult",
    "BulkGetResult",
    "ItemError",
    "BulkInsertResult",
    "ScrollPage",
    "NamespaceInfo",
    "CacheStats",
    "Stats",
    "InstanceConfig",
    "Snapshot",
]


@dataclass(frozen=True)
class Point:
    """A point to write: its id in the namespace, its vector, its payload."""

    doc_id: int
    vector: VectorLike
    payload: Mapping[str, Any] = field(default_factory=dict)


PointLike = Union[Point, Tuple[int, VectorLike], Tuple[int, VectorLike, Mapping[str, Any]], Mapping[str, Any]]
"""A :class:`Point`, a tuple ``(doc_id, vector[, payload])`` or a mapping
with the keys ``doc_id``, ``vector`` and optionally ``payload``."""


@dataclass
class Record:
    """A point as read back. ``vector`` is set when it was asked for."""

    doc_id: int
    payload: Dict[str, Any]
    vector: Optional["npt.NDArray[np.float32]"] = None


@dataclass
class Hit:
    """A search result: ``score`` is higher for closer points (cosine
    similarity under the cosine metric), ``distance`` lower."""

    doc_id: int
    score: float
    distance: float
    payload: Dict[str, Any]
    vector: Optional["npt.NDArray[np.float32]"] = None


@dataclass
class SearchResult:
    """The hits of a search, best first, and how the query ran.

    Iterating over it, ``len()`` and indexing act on ``hits``.
    """

    hits: List[Hit]
    plan: str
    candidates: int
    cached: bool

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)

    def __getitem__(self, index: int) -> Hit:
        return self.hits[index]

    @property
    def doc_ids(self) -> List[int]:
        """The hits' doc ids, best first."""
        return [hit.doc_id for hit in self.hits]


@dataclass
class BulkGetResult:
    """The points that exist, in request order, and the doc ids that do not."""

    points: List[Record]
    missing: List[int]


@dataclass
class ItemError:
    """A point a bulk insert refused: its position in the whole call (from 0),
    its doc id and why (the message starts with the offending field)."""

    index: int
    doc_id: int
    message: str


@dataclass
class BulkInsertResult:
    """Points stored, points refused, and the refusals (the first 10,000)."""

    inserted: int
    failed: int
    errors: List[ItemError]


@dataclass
class ScrollPage:
    """One page of points in ascending doc id order; ``next_after`` is the
    ``after`` of the next page, ``None`` on the last page."""

    points: List[Record]
    next_after: Optional[int]


@dataclass
class NamespaceInfo:
    """A namespace and its sizes."""

    tenant: str
    namespace: str
    points: int
    hot_points: int
    cold_segments: int
    cold_bytes: int


@dataclass
class CacheStats:
    """Counters of one cache."""

    hits: int
    misses: int
    insertions: int
    evictions: int
    rejected: int

    @property
    def hit_ratio(self) -> float:
        """Hits over lookups (0 when there were none)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


@dataclass
class Stats:
    """An instance's sizes; the instance-wide figures (``hot_bytes``, caches,
    fsyncs, ``unreachable_points``) are filled for admin keys only."""

    instance: str
    dim: int
    metric: str
    namespaces: int
    points: int
    hot_points: int
    cold_segments: int
    cold_bytes: int
    hot_bytes: int
    query_cache: CacheStats
    point_cache: CacheStats
    fsyncs: int
    synced_writes: int
    fsync_seconds: float
    unreachable_points: int


@dataclass
class InstanceConfig:
    """An instance's effective configuration (the whole server's as TOML,
    secrets removed)."""

    instance: str
    dim: int
    metric: str
    config_toml: str


@dataclass
class Snapshot:
    """A snapshot the server wrote, and where."""

    name: str
    path: str
