"""Pieces that need no server: conversions, filters, error mapping, the
retry policy, and the REST client's retry rules over a scripted transport."""

from __future__ import annotations

from typing import List

import httpx
import numpy as np
import pytest

import kyrodb
from kyrodb import filters as f
from kyrodb import pb
from kyrodb.errors import from_http_error
from kyrodb.payload import from_payload, to_payload

FAST = kyrodb.RetryPolicy(max_attempts=4, initial_backoff=0.0, max_backoff=0.0)


def test_payload_round_trip_keeps_types() -> None:
    payload = {"s": "x", "i": np.int64(3), "f": 0.5, "b": True, "nb": np.bool_(False), "l": ["a", "b"]}
    converted = to_payload(payload)
    assert converted["b"].WhichOneof("kind") == "bool_value"  # bool is not taken for an int
    assert converted["i"].WhichOneof("kind") == "integer_value"
    assert from_payload(converted) == {"s": "x", "i": 3, "f": 0.5, "b": True, "nb": False, "l": ["a", "b"]}
    with pytest.raises(TypeError):
        to_payload({"bad": {"nested": 1}})


def test_mapping_filters() -> None:
    single = f.as_filter({"tool": "cargo"})
    assert single == pb.Filter(eq=pb.FieldEquals(key="tool", value=pb.Scalar(string_value="cargo")))
    both = f.as_filter({"tool": ["npm", "pip"], "code": 1})
    assert both is not None and len(both.all_of.conditions) == 2
    assert both.all_of.conditions[0].is_in.values[1].string_value == "pip"
    with pytest.raises(ValueError):
        f.in_range("x")


def test_vectors_must_be_one_dimensional() -> None:
    with pytest.raises(ValueError):
        kyrodb.vectors.as_vector(np.ones((2, 3)))
    assert kyrodb.vectors.as_vector(np.arange(3, dtype=np.int32)) == [0.0, 1.0, 2.0]


def test_gateway_error_bodies_map_to_classes() -> None:
    body = {"error": {"code": "validation_error", "message": "too short", "field": "goal"}}
    error = from_http_error(422, body, httpx.Headers({"x-request-id": "r1"}))
    assert isinstance(error, kyrodb.InvalidArgument)
    assert (error.code, error.message, error.field, error.status, error.request_id) == (
        "validation_error", "too short", "goal", 422, "r1",
    )  # fmt: skip
    limited = from_http_error(429, {"error": {"code": "rate_limited", "message": "m"}}, httpx.Headers({"Retry-After": "7"}))
    assert isinstance(limited, kyrodb.RateLimited) and limited.retry_after == 7.0
    quota = from_http_error(429, {"error": {"code": "quota_exceeded", "message": "m"}}, httpx.Headers())
    assert isinstance(quota, kyrodb.QuotaExceeded) and isinstance(quota, kyrodb.ResourceExhausted)
    assert isinstance(from_http_error(502, None, httpx.Headers()), kyrodb.InternalError)


def test_backoff_grows_and_is_capped() -> None:
    policy = kyrodb.RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0, jitter=0.0)
    assert [policy.backoff(n) for n in (1, 2, 3, 5, 9)] == [0.1, 0.2, 0.4, 1.0, 1.0]
    assert policy.backoff(1, server_hint=0.5) == 0.5
    with pytest.raises(ValueError):
        kyrodb.RetryPolicy(max_attempts=0)


def scripted(statuses: List[int], seen: List[httpx.Request]) -> httpx.MockTransport:
    """Answers each request with the next status (503s with an error body)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses[min(len(seen), len(statuses)) - 1]
        if status == 503:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "engine down"}})
        return httpx.Response(status, json={"episode_id": 1, "status": "created"})

    return httpx.MockTransport(handler)


def test_capture_retries_503_with_one_idempotency_key() -> None:
    seen: List[httpx.Request] = []
    client = kyrodb.GatewayClient("http://gw", api_key="k", retry=FAST, transport=scripted([503, 503, 201], seen))
    assert client.capture({"goal": "g"})["episode_id"] == 1
    keys = {request.headers["idempotency-key"] for request in seen}
    assert len(seen) == 3 and len(keys) == 1
    assert seen[0].headers["x-api-key"] == "k"
    # The next capture is another episode: another key.
    client.capture({"goal": "g"})
    assert seen[-1].headers["idempotency-key"] not in keys


def test_503_is_raised_after_the_last_attempt() -> None:
    seen: List[httpx.Request] = []
    client = kyrodb.GatewayClient("http://gw", api_key="k", retry=FAST, transport=scripted([503], seen))
    with pytest.raises(kyrodb.Unavailable) as error:
        client.search("anything at all")
    assert len(seen) == FAST.max_attempts
    assert error.value.message == "engine down" and error.value.status == 503


def test_validate_fix_is_not_resent_after_a_503() -> None:
    seen: List[httpx.Request] = []
    client = kyrodb.GatewayClient("http://gw", api_key="k", retry=FAST, transport=scripted([503, 200], seen))
    with pytest.raises(kyrodb.Unavailable):
        client.validate_fix(1, "success")
    assert len(seen) == 1


@pytest.mark.asyncio
async def test_async_capture_retries_503_with_one_idempotency_key() -> None:
    seen: List[httpx.Request] = []
    transport = scripted([503, 201], seen)
    async with kyrodb.AsyncGatewayClient("http://gw", api_key="k", retry=FAST, transport=transport) as client:
        assert (await client.capture(goal="g"))["status"] == "created"
    assert len(seen) == 2
    assert seen[0].headers["idempotency-key"] == seen[1].headers["idempotency-key"]
