"""kyrodb.GatewayClient against a real kyro-gateway in front of a real
kyro-server (the embedding model loaded from ~/.cache/kyrodb/models)."""

from __future__ import annotations

import uuid
from typing import Any, Dict, Iterator, Tuple

import numpy as np
import pytest

import kyrodb
from stack import Gateway


def numpy_episode(**overrides: Any) -> Dict[str, Any]:
    """The README's episode."""
    episode: Dict[str, Any] = {
        "goal": "install numpy in a fresh python 3.12 virtualenv",
        "tool_chain": ["pip"],
        "actions_taken": ["pip install numpy==1.24.0"],
        "error_trace": "ModuleNotFoundError: No module named distutils",
        "error_class": "dependency_error",
        "preconditions": ["python=3.12.1"],
        "resolution": "use numpy>=1.26, the first release that supports python 3.12",
    }
    episode.update(overrides)
    return episode


def distinct_episode(topic: str) -> Dict[str, Any]:
    """An episode unlike the others (so that it is not folded into one)."""
    return numpy_episode(
        goal=f"deploy the {topic} service to the staging cluster",
        tool_chain=[f"{topic}-cli"],
        actions_taken=[f"{topic}-cli deploy --env staging"],
        error_trace=f"{topic}: connection refused while contacting the {topic} registry",
        error_class="network_error",
        preconditions=[f"{topic}=1"],
        resolution=None,
    )


@pytest.fixture(scope="module")
def admin(gateway: Gateway) -> Iterator[kyrodb.GatewayClient]:
    with kyrodb.GatewayClient(gateway.url, api_key=gateway.admin_key) as client:
        yield client


def new_customer(admin: kyrodb.GatewayClient, tier: str = "PRO", scopes: Tuple[str, ...] = ("read", "write")) -> str:
    customer = admin.create_customer(f"test-{uuid.uuid4().hex[:8]}", tier)
    return str(admin.create_key(customer["customer_id"], scopes)["api_key"])


@pytest.fixture
def customer(gateway: Gateway, admin: kyrodb.GatewayClient) -> Iterator[kyrodb.GatewayClient]:
    """A client with the key of a new PRO customer (read, write)."""
    with kyrodb.GatewayClient(gateway.url, api_key=new_customer(admin)) as client:
        yield client


def test_admin_creates_customers_and_keys(admin: kyrodb.GatewayClient) -> None:
    health = admin.health()
    assert health["status"] == "ok", health
    created = admin.create_customer("acme", "PRO")
    customer_id = created["customer_id"]
    assert customer_id.startswith("cus_") and created["tier"] == "PRO" and created["status"] == "active"
    assert admin.get_customer(customer_id)["name"] == "acme"
    assert admin.update_customer(customer_id, name="acme corp")["name"] == "acme corp"

    key = admin.create_key(customer_id, ["read"], project="acme/api")
    assert key["api_key"].startswith("em_live_")
    listed = admin.list_keys(customer_id)
    assert [k["key_id"] for k in listed] == [key["key_id"]]
    assert listed[0]["project"] == "acme/api" and "api_key" not in listed[0]

    admin.revoke_key(key["key_id"])
    assert admin.list_keys(customer_id)[0]["revoked_at"] is not None
    assert any(e["action"] == "key.revoke" for e in admin.audit(customer_id=customer_id)["entries"])


def test_capture_search_reflect_validate_fix(customer: kyrodb.GatewayClient, admin: kyrodb.GatewayClient) -> None:
    captured = customer.capture(numpy_episode())
    assert captured["status"] == "created"
    episode_id = captured["episode_id"]

    found = customer.search("numpy fails to install on python 3.12", k=3, current_state={"python": "3.12"})
    assert found["results"][0]["episode_id"] == episode_id
    assert 0 < found["results"][0]["score"] <= 1

    decision = customer.reflect(
        "install numpy in a fresh python 3.12 virtualenv", "pip install numpy==1.24.0", "pip"
    )
    assert decision["decision"] == "block"
    assert decision["suggested_action"] == numpy_episode()["resolution"]

    customer.validate_fix(episode_id, "success", applied_suggestion="numpy>=1.26")
    episode = customer.get_episode(episode_id)
    assert episode["fix_successes"] == 1 and episode["goal"] == numpy_episode()["goal"]


def test_idempotent_capture_returns_the_same_episode(customer: kyrodb.GatewayClient) -> None:
    key = f"test-{uuid.uuid4()}"
    first = customer.capture(distinct_episode("alpha"), idempotency_key=key)
    again = customer.capture(distinct_episode("alpha"), idempotency_key=key)
    assert again["episode_id"] == first["episode_id"]
    assert [e["episode_id"] for e in customer.iter_episodes()] == [first["episode_id"]]
    with pytest.raises(kyrodb.Conflict) as error:
        customer.capture(distinct_episode("beta"), idempotency_key=key)
    assert error.value.status == 409 and error.value.code == "conflict"


def test_episodes_list_page_and_delete(customer: kyrodb.GatewayClient) -> None:
    ids = [customer.capture(distinct_episode(topic))["episode_id"] for topic in ("kafka", "redis", "nginx")]
    page = customer.list_episodes(limit=2)
    assert [e["episode_id"] for e in page["episodes"]] == ids[:2] and page["next_cursor"] is not None
    assert [e["episode_id"] for e in customer.iter_episodes(page_size=2)] == ids
    assert [e["episode_id"] for e in customer.iter_episodes(tool="redis-cli")] == [ids[1]]

    customer.delete_episode(ids[1])
    with pytest.raises(kyrodb.NotFound) as error:
        customer.get_episode(ids[1])
    assert error.value.status == 404
    assert [e["episode_id"] for e in customer.iter_episodes()] == [ids[0], ids[2]]


def test_skills_and_usage(gateway: Gateway, admin: kyrodb.GatewayClient) -> None:
    created = admin.create_customer("skilled", "PRO")
    key = admin.create_key(created["customer_id"], ["read", "write"])["api_key"]
    with kyrodb.GatewayClient(gateway.url, api_key=key) as client:
        episode_id = client.capture(numpy_episode())["episode_id"]
        assert client.skills() == []
        for _ in range(3):
            client.validate_fix(episode_id, "success", applied_suggestion=True)
        skills = client.skills()
    assert [s["episode_id"] for s in skills] == [episode_id]
    assert skills[0]["fix_successes"] == 3
    months = admin.usage(created["customer_id"])["months"]
    assert sum(m["captures"] for m in months) == 1


def test_embeddings_are_numpy_rows(customer: kyrodb.GatewayClient) -> None:
    rows = customer.embed(["pip cannot build numpy", "numpy fails to install with pip", "the cat sat on the mat"])
    assert rows.shape == (3, 384) and rows.dtype == np.float32
    norms = np.linalg.norm(rows, axis=1)
    cosine = rows @ rows.T / np.outer(norms, norms)
    assert cosine[0, 1] > cosine[0, 2]
    assert customer.embed("one text").shape == (1, 384)


def test_gateway_errors(gateway: Gateway, admin: kyrodb.GatewayClient, customer: kyrodb.GatewayClient) -> None:
    with kyrodb.GatewayClient(gateway.url, api_key="em_live_0000000000000000_" + "0" * 48) as stranger:
        with pytest.raises(kyrodb.Unauthenticated) as unauthenticated:
            stranger.search("anything at all")
    assert unauthenticated.value.status == 401 and unauthenticated.value.code == "unauthenticated"

    with pytest.raises(kyrodb.InvalidArgument) as invalid:
        customer.capture(numpy_episode(goal="short"))
    assert (invalid.value.status, invalid.value.code, invalid.value.field) == (422, "validation_error", "goal")
    assert invalid.value.request_id

    with pytest.raises(kyrodb.NotFound):
        customer.get_episode(987654)

    with kyrodb.GatewayClient(gateway.url, api_key=new_customer(admin, scopes=("read",))) as reader:
        with pytest.raises(kyrodb.PermissionDenied) as forbidden:
            reader.capture(numpy_episode())
    assert forbidden.value.status == 403

    with pytest.raises(kyrodb.PermissionDenied):
        customer.create_customer("not an admin")


def test_rate_limited_carries_retry_after(gateway: Gateway, admin: kyrodb.GatewayClient) -> None:
    # The session gateway lets FREE customers capture twice a minute.
    with kyrodb.GatewayClient(gateway.url, api_key=new_customer(admin, tier="FREE")) as free:
        free.capture(distinct_episode("one"))
        free.capture(distinct_episode("two"))
        with pytest.raises(kyrodb.RateLimited) as limited:
            free.capture(distinct_episode("three"))
    assert limited.value.status == 429 and limited.value.code == "rate_limited"
    assert limited.value.retry_after is not None and limited.value.retry_after > 0
