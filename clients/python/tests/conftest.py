"""Fixtures: one kyro-server (and one gateway in front of it) per test
session, started from the real binaries in temporary directories."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import pytest

from stack import ADMIN, ALICE, Engine, Gateway

_names = itertools.count()


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """kyro-server on ephemeral ports, with the keys of ``stack.KEYS``."""
    server = Engine(tmp_path_factory.mktemp("engine")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateway(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """kyro-gateway in front of ``engine``. FREE customers may capture twice
    a minute, so that a test can reach the rate limit quickly."""
    gw = Gateway(
        tmp_path_factory.mktemp("gateway"),
        engine,
        settings=["rate_limits.free.capture_per_minute=2"],
    ).start()
    assert gw.admin_key.startswith("em_live_"), "the gateway printed no bootstrap admin key"
    yield gw
    gw.stop()


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A namespace no other test uses."""
    return f"t{next(_names)}-{request.node.name[:40]}".replace("[", "-").replace("]", "")


def pytest_report_header(config: pytest.Config) -> str:
    return f"kyrodb tests: keys admin={ADMIN.tenant}, alice={ALICE.tenant}; repo {Path(__file__).resolve().parents[3]}"
