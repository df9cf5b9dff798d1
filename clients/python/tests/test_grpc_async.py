"""kyrodb.AsyncClient against a real kyro-server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import kyrodb
from stack import ALICE, Engine

DIM = 384


@pytest.mark.asyncio
async def test_async_insert_search_get_delete(engine: Engine, namespace: str) -> None:
    vectors = np.random.default_rng(11).standard_normal((12, DIM)).astype(np.float32)
    async with kyrodb.AsyncClient(engine.text, api_key=ALICE.key) as db:
        # Concurrent single inserts, then a bulk insert of the rest.
        await asyncio.gather(*(db.insert(namespace, i, vectors[i], {"i": i}) for i in range(4)))
        result = await db.bulk_insert_arrays(namespace, range(4, 12), vectors[4:], batch_size=3)
        assert result.inserted == 8 and result.failed == 0
        assert await db.count(namespace) == 12

        hits = await db.search(namespace, vectors[9], k=2, filter=kyrodb.filters.in_range("i", gte=0))
        # Only doc ids 0..3 carry "i": the filter keeps those.
        assert len(hits) == 2 and all(h.doc_id < 4 for h in hits)
        best = await db.search(namespace, vectors[9], k=1)
        assert best.doc_ids == [9]

        assert [p.doc_id async for p in db.iter_points(namespace, page_size=5)] == list(range(12))
        assert (await db.get(namespace, 2)).payload == {"i": 2}
        assert await db.delete(namespace, 2) == 1
        with pytest.raises(kyrodb.NotFound):
            await db.get(namespace, 2)
        results = await db.search_many(namespace, vectors[[5, 6]], k=1)
        assert [r.doc_ids for r in results] == [[5], [6]]


@pytest.mark.asyncio
async def test_async_errors(engine: Engine, namespace: str) -> None:
    async with kyrodb.AsyncClient(engine.text, api_key=ALICE.key) as db:
        with pytest.raises(kyrodb.InvalidArgument) as error:
            await db.insert(namespace, 1, [0.5, 0.5])
        assert error.value.field == "vector"
    async with kyrodb.AsyncClient(engine.text, api_key="wrong", retry=kyrodb.NO_RETRY) as stranger:
        with pytest.raises(kyrodb.Unauthenticated):
            await stranger.stats()
