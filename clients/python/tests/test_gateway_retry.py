"""The REST clients' retries end to end: a gateway whose kyro-server is down
answers 503; the client retries until the engine is back, and a capture
retried that way is stored once (its Idempotency-Key is reused)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterator, Tuple

import pytest

import kyrodb
from stack import Engine, Gateway, free_port
from test_gateway import distinct_episode

PATIENT = kyrodb.RetryPolicy(max_attempts=100, initial_backoff=0.05, max_backoff=0.5)


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Engine, Gateway, str]]:
    """An engine on fixed ports (so that it can come back where the gateway
    expects it), a gateway in front of it, and a customer key."""
    directory: Path = tmp_path_factory.mktemp("outage")
    engine = Engine(directory, text=f"127.0.0.1:{free_port()}", image=f"127.0.0.1:{free_port()}").start()
    gateway = Gateway(directory, engine).start()
    with kyrodb.GatewayClient(gateway.url, api_key=gateway.admin_key) as admin:
        customer = admin.create_customer("outage", "PRO")
        key = admin.create_key(customer["customer_id"], ["read", "write"])["api_key"]
    yield engine, gateway, key
    gateway.stop()
    engine.stop()


def restart_later(engine: Engine, delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        engine.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_503_without_retries(outage_stack: Tuple[Engine, Gateway, str]) -> None:
    engine, gateway, key = outage_stack
    engine.stop()
    try:
        with kyrodb.GatewayClient(gateway.url, api_key=key, retry=kyrodb.NO_RETRY) as client:
            with pytest.raises(kyrodb.Unavailable) as error:
                client.search("anything while the engine is down")
        assert error.value.status == 503 and error.value.code == "unavailable"
    finally:
        engine.start()


def test_capture_and_search_outlast_an_engine_outage(
    outage_stack: Tuple[Engine, Gateway, str], caplog: pytest.LogCaptureFixture
) -> None:
    engine, gateway, key = outage_stack
    caplog.set_level(logging.WARNING, logger="kyrodb")
    with kyrodb.GatewayClient(gateway.url, api_key=key, retry=PATIENT) as client:
        before = len(list(client.iter_episodes()))
        engine.stop()
        restarter = restart_later(engine, 1.0)
        captured = client.capture(distinct_episode("outage"))
        restarter.join()
        assert captured["status"] == "created"
        episodes = [e["episode_id"] for e in client.iter_episodes()]
        assert len(episodes) == before + 1 and captured["episode_id"] in episodes
        found = client.search("deploy the outage service to the staging cluster", k=1)
        assert found["results"][0]["episode_id"] == captured["episode_id"]
    retries = [r for r in caplog.records if r.name == "kyrodb" and "POST /api/v1/capture" in r.getMessage()]
    assert retries, "the capture was never retried"


@pytest.mark.asyncio
async def test_async_search_outlasts_an_engine_outage(
    outage_stack: Tuple[Engine, Gateway, str], caplog: pytest.LogCaptureFixture
) -> None:
    engine, gateway, key = outage_stack
    caplog.set_level(logging.WARNING, logger="kyrodb")
    async with kyrodb.AsyncGatewayClient(gateway.url, api_key=key, retry=PATIENT) as client:
        engine.stop()
        restarter = restart_later(engine, 1.0)
        decision = await client.reflect("deploy the outage service", "outage-cli deploy --env staging", "outage-cli")
        restarter.join()
        assert decision["decision"] in {"block", "warn", "hint", "proceed"}
    assert any("POST /api/v1/reflect" in r.getMessage() for r in caplog.records if r.name == "kyrodb")
