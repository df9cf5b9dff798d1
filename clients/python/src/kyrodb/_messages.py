"""Request messages and reply conversion shared by ``Client`` and ``AsyncClient``."""

from __future__ import annotations

from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence

from ._proto.kyro.v1 import kyro_pb2 as pb
from .filters import FilterLike, as_filter
from .models import (
    BulkGetResult,
    BulkInsertResult,
    CacheStats,
    Hit,
    InstanceConfig,
    ItemError,
    NamespaceInfo,
    Point,
    PointLike,
    Record,
    ScrollPage,
    SearchResult,
    Snapshot,
    Stats,
)
from .payload import Payload, from_payload, to_payload
from .vectors import MatrixLike, VectorLike, as_matrix, as_vector, to_array

MAX_POINTS_PER_MESSAGE = 10_000
"""The server's limit on points per BulkInsert message."""

MAX_BATCH_SEARCHES = 256
"""The server's limit on searches per BatchSearch call."""


def point(item: PointLike) -> pb.Point:
    """The protobuf ``Point`` of a :data:`PointLike` (or of a ``pb.Point``)."""
    if isinstance(item, pb.Point):
        return item
    payload: Optional[Mapping[str, Any]]
    if isinstance(item, Point):
        doc_id, vector, payload = item.doc_id, item.vector, item.payload
    elif isinstance(item, Mapping):
        doc_id, vector, payload = item["doc_id"], item["vector"], item.get("payload")
    elif isinstance(item, tuple) and len(item) in (2, 3):
        doc_id, vector = item[0], item[1]
        payload = item[2] if len(item) == 3 else None
    else:
        raise TypeError(f"not a point: {item!r} (expected Point, (doc_id, vector[, payload]) or a mapping)")
    return pb.Point(doc_id=int(doc_id), vector=as_vector(vector), payload=to_payload(payload))


def bulk_insert_calls(
    namespace: str, points: Iterable[Any], batch_size: int, batches_per_call: int
) -> Iterator[List[pb.BulkInsertRequest]]:
    """The streams of a bulk insert: messages of ``batch_size`` points,
    ``batches_per_call`` messages per call. Lazy, so that an arbitrarily long
    iterable of points is held in memory one call at a time."""
    if not 1 <= batch_size <= MAX_POINTS_PER_MESSAGE:
        raise ValueError(f"batch_size must be within 1..={MAX_POINTS_PER_MESSAGE}, got {batch_size}")
    if batches_per_call < 1:
        raise ValueError(f"batches_per_call must be at least 1, got {batches_per_call}")
    messages: List[pb.BulkInsertRequest] = []
    batch: List[pb.Point] = []
    for item in points:
        batch.append(point(item))
        if len(batch) == batch_size:
            messages.append(pb.BulkInsertRequest(namespace=namespace, points=batch))
            batch = []
            if len(messages) == batches_per_call:
                yield messages
                messages = []
    if batch:
        messages.append(pb.BulkInsertRequest(namespace=namespace, points=batch))
    if messages:
        yield messages


def points_in(messages: Sequence[pb.BulkInsertRequest]) -> int:
    """How many points a stream carries."""
    return sum(len(m.points) for m in messages)


def array_points(
    doc_ids: Iterable[int], vectors: MatrixLike, payloads: Optional[Sequence[Optional[Payload]]]
) -> Iterator[pb.Point]:
    """Points from parallel doc ids, rows of a matrix and (optional) payloads."""
    ids = [int(doc_id) for doc_id in doc_ids]
    rows = as_matrix(vectors)
    if len(ids) != len(rows):
        raise ValueError(f"{len(ids)} doc ids for {len(rows)} vectors")
    if payloads is not None and len(payloads) != len(rows):
        raise ValueError(f"{len(payloads)} payloads for {len(rows)} vectors")
    for i, (doc_id, row) in enumerate(zip(ids, rows)):
        payload = to_payload(payloads[i]) if payloads is not None else {}
        yield pb.Point(doc_id=doc_id, vector=row, payload=payload)


def insert(namespace: str, doc_id: int, vector: VectorLike, payload: Optional[Payload]) -> pb.InsertRequest:
    return pb.InsertRequest(
        namespace=namespace, doc_id=int(doc_id), vector=as_vector(vector), payload=to_payload(payload)
    )


def get(namespace: str, doc_id: int, with_vector: bool, with_payload: bool) -> pb.GetRequest:
    return pb.GetRequest(namespace=namespace, doc_id=int(doc_id), with_vector=with_vector, with_payload=with_payload)


def bulk_get(namespace: str, doc_ids: Iterable[int], with_vector: bool, with_payload: bool) -> pb.BulkGetRequest:
    return pb.BulkGetRequest(
        namespace=namespace,
        doc_ids=[int(d) for d in doc_ids],
        with_vector=with_vector,
        with_payload=with_payload,
    )


def update_payload(namespace: str, doc_id: int, payload: Payload, replace: bool) -> pb.UpdatePayloadRequest:
    return pb.UpdatePayloadRequest(
        namespace=namespace,
        doc_id=int(doc_id),
        payload=to_payload(payload),
        mode=pb.UPDATE_MODE_REPLACE if replace else pb.UPDATE_MODE_MERGE,
    )


def delete(namespace: str, doc_ids: Iterable[int]) -> pb.DeleteRequest:
    return pb.DeleteRequest(namespace=namespace, doc_ids=[int(d) for d in doc_ids])


def delete_by_filter(namespace: str, condition: FilterLike) -> pb.DeleteByFilterRequest:
    return pb.DeleteByFilterRequest(namespace=namespace, filter=as_filter(condition))


def search_many(
    namespace: str,
    vectors: MatrixLike,
    k: int,
    filter: Optional[FilterLike],
    ef: int,
    min_score: Optional[float],
    with_vector: bool,
    with_payload: bool,
) -> List[pb.BatchSearchRequest]:
    """BatchSearch requests for every row of ``vectors``, at most
    ``MAX_BATCH_SEARCHES`` per request."""
    searches = [
        search(namespace, row, k, filter, ef, min_score, with_vector, with_payload) for row in as_matrix(vectors)
    ]
    return [
        pb.BatchSearchRequest(searches=searches[i : i + MAX_BATCH_SEARCHES])
        for i in range(0, len(searches), MAX_BATCH_SEARCHES)
    ]


def search(
    namespace: str,
    vector: VectorLike,
    k: int,
    filter: Optional[FilterLike],
    ef: int,
    min_score: Optional[float],
    with_vector: bool,
    with_payload: bool,
) -> pb.SearchRequest:
    request = pb.SearchRequest(
        namespace=namespace,
        vector=as_vector(vector),
        k=k,
        ef=ef,
        with_vector=with_vector,
        with_payload=with_payload,
    )
    condition = as_filter(filter)
    if condition is not None:
        request.filter.CopyFrom(condition)
    if min_score is not None:
        request.min_score = min_score
    return request


def count(namespace: str, filter: Optional[FilterLike]) -> pb.CountRequest:
    return pb.CountRequest(namespace=namespace, filter=as_filter(filter))


def scroll(
    namespace: str,
    filter: Optional[FilterLike],
    after: Optional[int],
    limit: int,
    with_vector: bool,
    with_payload: bool,
) -> pb.ScrollRequest:
    request = pb.ScrollRequest(
        namespace=namespace, filter=as_filter(filter), limit=limit, with_vector=with_vector, with_payload=with_payload
    )
    if after is not None:
        request.after_doc_id = int(after)
    return request


# ---------------------------------------------------------------- replies


def record(message: pb.PointRecord) -> Record:
    return Record(
        doc_id=message.doc_id,
        payload=from_payload(message.payload),
        vector=to_array(message.vector) if len(message.vector) else None,
    )


def search_result(reply: pb.SearchResponse) -> SearchResult:
    hits = [
        Hit(
            doc_id=hit.doc_id,
            score=hit.score,
            distance=hit.distance,
            payload=from_payload(hit.payload),
            vector=to_array(hit.vector) if len(hit.vector) else None,
        )
        for hit in reply.hits
    ]
    return SearchResult(hits=hits, plan=reply.plan, candidates=reply.candidates, cached=reply.cached)


def bulk_get_result(reply: pb.BulkGetResponse) -> BulkGetResult:
    return BulkGetResult(points=[record(p) for p in reply.points], missing=list(reply.missing_doc_ids))


def add_bulk_insert_reply(total: BulkInsertResult, reply: pb.BulkInsertResponse, offset: int) -> None:
    """Adds one call's reply to ``total``; ``offset`` is how many points the
    earlier calls sent, so that error indexes count across the whole insert."""
    total.inserted += reply.inserted
    total.failed += reply.failed
    total.errors.extend(
        ItemError(index=offset + e.index, doc_id=e.doc_id, message=e.message) for e in reply.errors
    )


def scroll_page(reply: pb.ScrollResponse) -> ScrollPage:
    next_after = reply.next_after_doc_id if reply.HasField("next_after_doc_id") else None
    return ScrollPage(points=[record(p) for p in reply.points], next_after=next_after)


def namespaces(reply: pb.ListNamespacesResponse) -> List[NamespaceInfo]:
    return [
        NamespaceInfo(
            tenant=n.tenant,
            namespace=n.namespace,
            points=n.points,
            hot_points=n.hot_points,
            cold_segments=n.cold_segments,
            cold_bytes=n.cold_bytes,
        )
        for n in reply.namespaces
    ]


def _cache(message: pb.CacheStats) -> CacheStats:
    return CacheStats(
        hits=message.hits,
        misses=message.misses,
        insertions=message.insertions,
        evictions=message.evictions,
        rejected=message.rejected,
    )


def stats(reply: pb.StatsResponse) -> Stats:
    return Stats(
        instance=reply.instance,
        dim=reply.dim,
        metric=reply.metric,
        namespaces=reply.namespaces,
        points=reply.points,
        hot_points=reply.hot_points,
        cold_segments=reply.cold_segments,
        cold_bytes=reply.cold_bytes,
        hot_bytes=reply.hot_bytes,
        query_cache=_cache(reply.query_cache),
        point_cache=_cache(reply.point_cache),
        fsyncs=reply.fsyncs,
        synced_writes=reply.synced_writes,
        fsync_seconds=reply.fsync_seconds,
        unreachable_points=reply.unreachable_points,
    )


def instance_config(reply: pb.GetConfigResponse) -> InstanceConfig:
    return InstanceConfig(instance=reply.instance, dim=reply.dim, metric=reply.metric, config_toml=reply.config_toml)


def snapshot(reply: pb.CreateSnapshotResponse) -> Snapshot:
    return Snapshot(name=reply.name, path=reply.path)


