"""kyrodb.Client against a real kyro-server."""

from __future__ import annotations

import numpy as np
import pytest

import kyrodb
from kyrodb import filters as f
from stack import ADMIN, ALICE, ALICE_READER, BOB, Engine

DIM = 384


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


@pytest.fixture
def alice(engine: Engine):
    with kyrodb.Client(engine.text, api_key=ALICE.key) as client:
        yield client


@pytest.fixture
def vectors() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((20, DIM)).astype(np.float32)


def test_insert_search_get_delete_with_numpy(alice: kyrodb.Client, namespace: str, vectors: np.ndarray) -> None:
    payloads = [{"tool": "cargo" if i % 2 else "npm", "i": i, "tags": ["a", f"n{i}"]} for i in range(20)]
    result = alice.bulk_insert_arrays(namespace, range(20), vectors, payloads)
    assert (result.inserted, result.failed, result.errors) == (20, 0, [])
    assert alice.count(namespace) == 20

    hits = alice.search(namespace, vectors[3], k=3)
    assert hits.doc_ids[0] == 3
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].payload == payloads[3]
    assert len(hits) == 3 and hits[0].score >= hits[1].score >= hits[2].score

    npm = alice.search(namespace, vectors[3], k=5, filter={"tool": "npm"})
    assert len(npm) == 5
    assert all(hit.payload["tool"] == "npm" for hit in npm)

    record = alice.get(namespace, 5, with_vector=True)
    assert record.doc_id == 5 and record.payload == payloads[5]
    assert record.vector is not None and record.vector.dtype == np.float32
    np.testing.assert_allclose(record.vector, unit(vectors[5]), atol=1e-5)  # cosine stores unit vectors

    # A plain list works where a numpy array does.
    assert alice.insert(namespace, 100, vectors[0].tolist(), {"tool": "pip"}) == 100
    assert alice.get(namespace, 100).payload == {"tool": "pip"}

    assert alice.delete(namespace, [3, 999]) == 1
    with pytest.raises(kyrodb.NotFound) as missing:
        alice.get(namespace, 3)
    assert missing.value.code == "NOT_FOUND"
    assert alice.count(namespace) == 20  # 20 + doc 100 - doc 3
    assert 3 not in alice.search(namespace, vectors[3], k=5).doc_ids


def test_scroll_get_many_update_and_filters(alice: kyrodb.Client, namespace: str, vectors: np.ndarray) -> None:
    points = [kyrodb.Point(i, vectors[i], {"exit_code": i}) for i in range(20)]
    assert alice.bulk_insert(namespace, iter(points), batch_size=7).inserted == 20

    first = alice.scroll(namespace, limit=8)
    assert [p.doc_id for p in first.points] == list(range(8)) and first.next_after == 7
    assert [p.doc_id for p in alice.iter_points(namespace, page_size=6)] == list(range(20))

    many = alice.get_many(namespace, [4, 50, 2], with_payload=False)
    assert [p.doc_id for p in many.points] == [4, 2] and many.missing == [50]
    assert many.points[0].payload == {}

    assert alice.count(namespace, f.in_range("exit_code", gte=15)) == 5
    assert alice.count(namespace, f.any_of(f.eq("exit_code", 1), f.is_in("exit_code", [2, 3]))) == 3

    alice.update_payload(namespace, 4, {"fix": "pin serde"})
    assert alice.get(namespace, 4).payload == {"exit_code": 4, "fix": "pin serde"}
    alice.update_payload(namespace, 4, {"fix": "other"}, replace=True)
    assert alice.get(namespace, 4).payload == {"fix": "other"}
    assert alice.count(namespace, f.exists("fix")) == 1

    assert alice.delete_by_filter(namespace, f.in_range("exit_code", lt=5)) == 4  # 0..3; doc 4 lost exit_code
    assert alice.count(namespace) == 16

    results = alice.search_many(namespace, vectors[[10, 12, 19]], k=1)
    assert [r.doc_ids for r in results] == [[10], [12], [19]]


def test_bulk_insert_reports_each_bad_point(alice: kyrodb.Client, namespace: str, vectors: np.ndarray) -> None:
    points = [(0, vectors[0]), (1, [1.0, 2.0, 3.0]), (2, vectors[2], {"ok": True})]
    result = alice.bulk_insert(namespace, points, batch_size=2)
    assert (result.inserted, result.failed) == (2, 1)
    assert [(e.index, e.doc_id) for e in result.errors] == [(1, 1)]
    assert result.errors[0].message.startswith("vector")


def test_wrong_dimension_is_invalid_argument(alice: kyrodb.Client, namespace: str) -> None:
    with pytest.raises(kyrodb.InvalidArgument) as error:
        alice.insert(namespace, 1, np.ones(3, dtype=np.float32))
    assert error.value.code == "INVALID_ARGUMENT"
    assert error.value.field == "vector"
    assert "384" in error.value.message
    with pytest.raises(kyrodb.InvalidArgument) as bad_k:
        alice.search(namespace, np.ones(DIM), k=0)
    assert bad_k.value.field == "k"


def test_unknown_key_is_unauthenticated(engine: Engine, namespace: str) -> None:
    with kyrodb.Client(engine.text, api_key="kyro_sk_not_a_key", retry=kyrodb.NO_RETRY) as client:
        with pytest.raises(kyrodb.Unauthenticated) as error:
            client.count(namespace)
    assert error.value.code == "UNAUTHENTICATED"
    assert isinstance(error.value, kyrodb.KyroError)


def test_read_key_cannot_write(engine: Engine, namespace: str) -> None:
    with kyrodb.Client(engine.text, api_key=ALICE_READER.key) as reader:
        with pytest.raises(kyrodb.PermissionDenied) as error:
            reader.insert(namespace, 1, np.ones(DIM))
    assert "write" in error.value.message


def test_tenants_do_not_see_each_other(alice: kyrodb.Client, engine: Engine, namespace: str) -> None:
    alice.insert(namespace, 1, np.ones(DIM))
    with kyrodb.Client(engine.text, api_key=BOB.key) as bob:
        with pytest.raises(kyrodb.NotFound):
            bob.search(namespace, np.ones(DIM), k=1)
        assert namespace not in [n.namespace for n in bob.namespaces()]


def test_namespaces_stats_and_drop(alice: kyrodb.Client, engine: Engine, namespace: str, vectors: np.ndarray) -> None:
    alice.bulk_insert_arrays(namespace, range(5), vectors[:5])
    info = {n.namespace: n for n in alice.namespaces()}
    assert info[namespace].points == 5 and info[namespace].tenant == ALICE.tenant

    stats = alice.stats()
    assert (stats.instance, stats.dim, stats.metric) == ("text", DIM, "cosine")
    assert stats.points >= 5

    with kyrodb.Client(engine.image, api_key=ADMIN.key) as admin_image:
        assert admin_image.stats().dim == 512
        assert admin_image.config().instance == "image"
    with kyrodb.Client(engine.text, api_key=ADMIN.key) as admin:
        everyone = admin.namespaces("*")
        assert any(n.tenant == ALICE.tenant and n.namespace == namespace for n in everyone)

    assert alice.drop_namespace(namespace) is True
    assert alice.drop_namespace(namespace) is False
    with pytest.raises(kyrodb.NotFound):
        alice.count(namespace)
