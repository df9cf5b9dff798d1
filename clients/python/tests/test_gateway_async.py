"""kyrodb.AsyncGatewayClient against a real gateway and kyro-server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

import kyrodb
from stack import Gateway
from test_gateway import distinct_episode, numpy_episode


@pytest.mark.asyncio
async def test_async_admin_capture_search_reflect(gateway: Gateway) -> None:
    async with kyrodb.AsyncGatewayClient(gateway.url, api_key=gateway.admin_key) as admin:
        created = await admin.create_customer(f"async-{uuid.uuid4().hex[:6]}", "PRO")
        key = (await admin.create_key(created["customer_id"], ["read", "write"]))["api_key"]
    async with kyrodb.AsyncGatewayClient(gateway.url, api_key=key) as client:
        numpy_id, other = await asyncio.gather(
            client.capture(numpy_episode()), client.capture(distinct_episode("postgres"))
        )
        assert numpy_id["episode_id"] != other["episode_id"]

        found = await client.search("numpy will not install on python 3.12", k=2)
        assert found["results"][0]["episode_id"] == numpy_id["episode_id"]
        decision = await client.reflect(
            "install numpy in a fresh python 3.12 virtualenv", "pip install numpy==1.24.0", "pip"
        )
        assert decision["decision"] == "block"

        await client.validate_fix(numpy_id["episode_id"], "still_failed")
        assert (await client.get_episode(numpy_id["episode_id"]))["fix_failures"] == 1
        assert sorted([e["episode_id"] async for e in client.iter_episodes(page_size=1)]) == sorted(
            [numpy_id["episode_id"], other["episode_id"]]
        )

        idem = f"async-{uuid.uuid4()}"
        first = await client.capture(distinct_episode("mysql"), idempotency_key=idem)
        again = await client.capture(distinct_episode("mysql"), idempotency_key=idem)
        assert first["episode_id"] == again["episode_id"]

        await client.delete_episode(other["episode_id"])
        with pytest.raises(kyrodb.NotFound):
            await client.get_episode(other["episode_id"])
        assert (await client.embed("hello")).shape == (1, 384)
