"""Retries on UNAVAILABLE against a real kyro-server that starts late or
restarts (its own server on fixed ports, not the session one)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import kyrodb
from stack import ALICE, Engine, free_port

PATIENT = kyrodb.RetryPolicy(max_attempts=100, initial_backoff=0.05, max_backoff=0.5)
"""Enough attempts to outlast a server start (tens of seconds)."""

VECTOR = np.linspace(-1.0, 1.0, 384, dtype=np.float32)


@pytest.fixture
def fixed_ports_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine that is not started yet, on ports chosen now, so that a
    client can be pointed at it before it exists and after it restarts."""
    engine = Engine(tmp_path, text=f"127.0.0.1:{free_port()}", image=f"127.0.0.1:{free_port()}")
    yield engine
    engine.stop()


def start_later(engine: Engine, delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        engine.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def retries_logged(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if r.name == "kyrodb" and "UNAVAILABLE" in r.getMessage())


def test_without_retries_a_missing_server_is_unavailable(fixed_ports_engine: Engine) -> None:
    with kyrodb.Client(fixed_ports_engine.text_listen, api_key=ALICE.key, retry=kyrodb.NO_RETRY) as client:
        with pytest.raises(kyrodb.Unavailable) as error:
            client.count("anything")
    assert error.value.code == "UNAVAILABLE"


def test_retries_until_the_server_starts(fixed_ports_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="kyrodb")
    with kyrodb.Client(fixed_ports_engine.text_listen, api_key=ALICE.key, retry=PATIENT) as client:
        starter = start_later(fixed_ports_engine, 1.0)
        assert client.insert("late", 1, VECTOR, {"attempt": "first"}) == 1
        starter.join()
        assert client.get("late", 1).payload == {"attempt": "first"}
    assert retries_logged(caplog) >= 1


def test_retries_across_a_restart(fixed_ports_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    fixed_ports_engine.start()
    with kyrodb.Client(fixed_ports_engine.text_listen, api_key=ALICE.key, retry=PATIENT) as client:
        client.insert("restart", 7, VECTOR, {"kept": True})
        fixed_ports_engine.stop()
        caplog.set_level(logging.WARNING, logger="kyrodb")
        starter = start_later(fixed_ports_engine, 1.0)
        # The point survived the restart, and the call outlasted the outage.
        assert client.get("restart", 7).payload == {"kept": True}
        starter.join()
    assert retries_logged(caplog) >= 1


@pytest.mark.asyncio
async def test_async_retries_until_the_server_starts(
    fixed_ports_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kyrodb")
    async with kyrodb.AsyncClient(fixed_ports_engine.text_listen, api_key=ALICE.key, retry=PATIENT) as client:
        starter = start_later(fixed_ports_engine, 1.0)
        assert await client.insert("late", 2, VECTOR) == 2
        starter.join()
        assert await client.count("late") == 1
    assert retries_logged(caplog) >= 1
