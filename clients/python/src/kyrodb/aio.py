"""``AsyncClient``: the asyncio gRPC client of kyro-server (``grpc.aio``)."""

from __future__ import annotations

import functools
import asyncio
from typing import Any, AsyncIterator, Callable, Iterable, List, Optional, Sequence, Union

import grpc
import grpc.aio

from . import _messages as msg
from ._grpc_common import ChannelOptions, channel_options, default_target, metadata
from ._proto.kyro.v1 import kyro_pb2 as pb
from ._proto.kyro.v1 import kyro_pb2_grpc
from .client import DocIds, _doc_ids
from .errors import from_grpc_error
from .filters import FilterLike
from .models import (
    BulkGetResult,
    BulkInsertResult,
    InstanceConfig,
    NamespaceInfo,
    PointLike,
    Record,
    ScrollPage,
    SearchResult,
    Snapshot,
    Stats,
)
from .payload import Payload
from .retry import RetryPolicy
from .vectors import MatrixLike, VectorLike

__all__ = ["AsyncClient"]


class AsyncClient:
    """An asyncio client of one kyro-server instance (one port); the same
    methods as :class:`~kyrodb.Client`, as coroutines.

    ::

        async with kyrodb.AsyncClient("localhost:50051", api_key="kyro_sk_…") as db:
            await db.insert("episodes", 1, vector, {"tool": "cargo"})
            for hit in await db.search("episodes", vector, k=3):
                print(hit.doc_id, hit.score, hit.payload)

    Create it inside the event loop that uses it.

    Args:
        target: ``host:port`` of the instance (``unix:/path`` for a Unix
            socket); default ``$KYRO_ADDR``, else ``localhost:50051``.
        api_key: sent as ``authorization: Bearer …``; default
            ``$KYRO_API_KEY``.
        tenant: for a ``service`` key, the tenant it acts for
            (``x-kyro-tenant``).
        retry: how calls failing with UNAVAILABLE are retried.
        timeout: seconds each attempt may take (``None``: the server's
            default deadline).
        credentials: TLS channel credentials (``grpc.ssl_channel_credentials``);
            plaintext when ``None``.
        options: extra gRPC channel options.
    """

    def __init__(
        self,
        target: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        tenant: Optional[str] = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: Optional[float] = 30.0,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: ChannelOptions = (),
    ) -> None:
        self.target = default_target(target)
        self.retry = retry
        self.timeout = timeout
        self._metadata = metadata(api_key, tenant)
        opts = channel_options(options)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=opts)
        else:
            self._channel = grpc.aio.secure_channel(self.target, credentials, options=opts)
        self._stub = kyro_pb2_grpc.KyroStub(self._channel)

    # ------------------------------------------------------------ plumbing

    async def _call(self, rpc: str, request: Union[Any, Callable[[], Any]]) -> Any:
        """Calls ``rpc``; retries UNAVAILABLE as the policy says and raises
        the matching :class:`~kyrodb.KyroError` otherwise. ``request`` may be
        a factory (for a stream, which must be recreated for every attempt)."""
        method = getattr(self._stub, rpc)
        attempt = 1
        while True:
            message = request() if callable(request) else request
            try:
                return await method(message, metadata=self._metadata, timeout=self.timeout)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE or attempt >= self.retry.max_attempts:
                    raise from_grpc_error(error) from error
                delay = self.retry.backoff(attempt)
                self.retry.log_retry(rpc, from_grpc_error(error), attempt, delay)
                await asyncio.sleep(delay)
                attempt += 1

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ writes

    async def insert(self, namespace: str, doc_id: int, vector: VectorLike, payload: Optional[Payload] = None) -> int:
        """Upserts one point (replacing any with the same ``doc_id``); the
        namespace is created by its first write. Returns the doc id."""
        reply = await self._call("Insert", msg.insert(namespace, doc_id, vector, payload))
        return int(reply.doc_id)

    async def bulk_insert(
        self,
        namespace: str,
        points: Iterable[PointLike],
        *,
        batch_size: int = 1000,
        batches_per_call: int = 100,
    ) -> BulkInsertResult:
        """Upserts many points through the BulkInsert stream.

        ``points`` holds :class:`~kyrodb.Point` objects, ``(doc_id, vector[,
        payload])`` tuples or mappings; it may be a generator. Points go in
        messages of ``batch_size``, ``batches_per_call`` messages per stream.
        A bad point does not fail the others: it is counted in ``failed`` and
        listed in ``errors`` with its position in ``points``.
        """
        total = BulkInsertResult(inserted=0, failed=0, errors=[])
        offset = 0
        for messages in msg.bulk_insert_calls(namespace, points, batch_size, batches_per_call):
            reply = await self._call("BulkInsert", functools.partial(iter, messages))
            msg.add_bulk_insert_reply(total, reply, offset)
            offset += msg.points_in(messages)
        return total

    async def bulk_insert_arrays(
        self,
        namespace: str,
        doc_ids: Iterable[int],
        vectors: MatrixLike,
        payloads: Optional[Sequence[Optional[Payload]]] = None,
        *,
        batch_size: int = 1000,
    ) -> BulkInsertResult:
        """Upserts the rows of ``vectors`` (a 2-D array) with the given doc
        ids and, optionally, one payload per row."""
        return await self.bulk_insert(namespace, msg.array_points(doc_ids, vectors, payloads), batch_size=batch_size)

    async def update_payload(self, namespace: str, doc_id: int, payload: Payload, *, replace: bool = False) -> None:
        """Sets the given payload keys of a point (keeping the others), or
        with ``replace=True`` replaces its whole payload."""
        await self._call("UpdatePayload", msg.update_payload(namespace, doc_id, payload, replace))

    async def delete(self, namespace: str, doc_ids: DocIds) -> int:
        """Deletes points by doc id; returns how many existed."""
        return int((await self._call("Delete", msg.delete(namespace, _doc_ids(doc_ids)))).deleted)

    async def delete_by_filter(self, namespace: str, filter: FilterLike) -> int:
        """Deletes every point whose payload matches; returns how many."""
        return int((await self._call("DeleteByFilter", msg.delete_by_filter(namespace, filter))).deleted)

    # ------------------------------------------------------------ reads

    async def get(self, namespace: str, doc_id: int, *, with_vector: bool = False, with_payload: bool = True) -> Record:
        """Reads one point; raises :class:`~kyrodb.NotFound` when it does not exist."""
        reply = await self._call("Get", msg.get(namespace, doc_id, with_vector, with_payload))
        return msg.record(reply.point)

    async def get_many(
        self, namespace: str, doc_ids: Iterable[int], *, with_vector: bool = False, with_payload: bool = True
    ) -> BulkGetResult:
        """Reads many points: those that exist in request order, and the missing doc ids."""
        reply = await self._call("BulkGet", msg.bulk_get(namespace, doc_ids, with_vector, with_payload))
        return msg.bulk_get_result(reply)

    async def search(
        self,
        namespace: str,
        vector: VectorLike,
        k: int = 10,
        *,
        filter: Optional[FilterLike] = None,
        ef: int = 0,
        min_score: Optional[float] = None,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> SearchResult:
        """The ``k`` nearest points to ``vector``, best first.

        Args:
            filter: only points whose payload matches (see :mod:`kyrodb.filters`).
            ef: search breadth (0: the instance default).
            min_score: drop hits scoring below this.
            with_vector: return the hits' vectors.
            with_payload: return the hits' payloads.
        """
        request = msg.search(namespace, vector, k, filter, ef, min_score, with_vector, with_payload)
        return msg.search_result(await self._call("Search", request))

    async def search_many(
        self,
        namespace: str,
        vectors: MatrixLike,
        k: int = 10,
        *,
        filter: Optional[FilterLike] = None,
        ef: int = 0,
        min_score: Optional[float] = None,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> List[SearchResult]:
        """One search per row of ``vectors`` (through BatchSearch, 256 per
        call), answered in order."""
        results: List[SearchResult] = []
        for request in msg.search_many(namespace, vectors, k, filter, ef, min_score, with_vector, with_payload):
            reply = await self._call("BatchSearch", request)
            results.extend(msg.search_result(r) for r in reply.results)
        return results

    async def count(self, namespace: str, filter: Optional[FilterLike] = None) -> int:
        """How many points the namespace holds (matching ``filter``, if given)."""
        return int((await self._call("Count", msg.count(namespace, filter))).count)

    async def scroll(
        self,
        namespace: str,
        *,
        filter: Optional[FilterLike] = None,
        after: Optional[int] = None,
        limit: int = 100,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> ScrollPage:
        """One page of points in ascending doc id order, starting after the
        doc id ``after``; pass the page's ``next_after`` for the next one."""
        request = msg.scroll(namespace, filter, after, limit, with_vector, with_payload)
        return msg.scroll_page(await self._call("Scroll", request))

    async def iter_points(
        self,
        namespace: str,
        *,
        filter: Optional[FilterLike] = None,
        page_size: int = 1000,
        with_vector: bool = False,
        with_payload: bool = True,
    ) -> AsyncIterator[Record]:
        """Every point (matching ``filter``), in ascending doc id order,
        fetched ``page_size`` at a time."""
        after: Optional[int] = None
        while True:
            page = await self.scroll(
                namespace,
                filter=filter,
                after=after,
                limit=page_size,
                with_vector=with_vector,
                with_payload=with_payload,
            )
            for point in page.points:
                yield point
            if page.next_after is None:
                return
            after = page.next_after

    # ------------------------------------------------------------ namespaces and operations

    async def namespaces(self, tenant: str = "") -> List[NamespaceInfo]:
        """The caller's namespaces; an admin may name another tenant, or ``"*"`` for all."""
        return msg.namespaces(await self._call("ListNamespaces", pb.ListNamespacesRequest(tenant=tenant)))

    async def drop_namespace(self, namespace: str, tenant: str = "") -> bool:
        """Drops a namespace and its data; ``False`` when it did not exist."""
        reply = await self._call("DropNamespace", pb.DropNamespaceRequest(namespace=namespace, tenant=tenant))
        return bool(reply.dropped)

    async def flush(self, namespace: str = "", tenant: str = "") -> int:
        """Seals hot tiers into cold segments (admin); returns segments written."""
        reply = await self._call("Flush", pb.FlushRequest(namespace=namespace, tenant=tenant))
        return int(reply.segments_sealed)

    async def create_snapshot(self, name: str = "") -> Snapshot:
        """Writes a snapshot of the instance on the server (admin); an empty
        name picks a timestamped one."""
        return msg.snapshot(await self._call("CreateSnapshot", pb.CreateSnapshotRequest(name=name)))

    async def stats(self) -> Stats:
        """The instance's sizes (instance-wide figures for admin keys)."""
        return msg.stats(await self._call("Stats", pb.StatsRequest()))

    async def config(self) -> InstanceConfig:
        """The instance's effective configuration (admin)."""
        return msg.instance_config(await self._call("GetConfig", pb.GetConfigRequest()))
