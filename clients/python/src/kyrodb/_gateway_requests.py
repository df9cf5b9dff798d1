"""The gateway's routes as request descriptions, shared by ``GatewayClient``
and ``AsyncGatewayClient``: each function returns what to send and how to
read the answer; the clients only do the I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, Sequence, TypeVar, Union

import numpy as np
import numpy.typing as npt

from .errors import InternalError

T = TypeVar("T")

JSON = Dict[str, Any]
"""A JSON object as the gateway sends it."""


@dataclass
class Request(Generic[T]):
    """One HTTP request to the gateway, and how to read its answer.

    ``parse`` turns the decoded JSON body (``None`` for an empty one) into
    the result. ``idempotent`` says whether the request may be sent again
    when the answer is lost or is a 503 (a connection that was never made is
    retried for every request, since nothing reached the gateway).
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    params: Dict[str, Any] = field(default_factory=dict)
    headers: Dict[str, str] = field(default_factory=dict)
    idempotent: bool = True
    authenticated: bool = True


def _object(body: Any) -> JSON:
    if not isinstance(body, dict):
        raise InternalError(f"expected a JSON object from the gateway, got {type(body).__name__}", code="bad_answer")
    return body


def _nothing(body: Any) -> None:
    return None


def _list_in(key: str) -> Callable[[Any], List[JSON]]:
    def parse(body: Any) -> List[JSON]:
        items = _object(body).get(key)
        if not isinstance(items, list):
            raise InternalError(f"expected a list in {key!r} from the gateway", code="bad_answer")
        return items

    return parse


def jsonable(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into JSON types, and
    ``None`` entries of mappings dropped (the gateway treats absent and
    null alike; absent is what its docs show)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _body(**fields: Any) -> Dict[str, Any]:
    result: Dict[str, Any] = jsonable(fields)
    return result


def _params(**fields: Any) -> Dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# ---------------------------------------------------------------- episodes


def capture(episode: Mapping[str, Any], idempotency_key: Optional[str]) -> Request[JSON]:
    key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
    return Request(
        "POST",
        "/api/v1/capture",
        _object,
        json=jsonable(episode),
        headers={"Idempotency-Key": key},
        # The key makes a repeat answer the first result instead of storing twice.
        idempotent=True,
    )


def search(
    goal: str,
    k: Optional[int],
    current_state: Optional[Mapping[str, Any]],
    min_similarity: Optional[float],
    filters: Optional[Mapping[str, Any]],
    ranking_weights: Optional[Mapping[str, float]],
    image_embedding: Optional[Any],
    project: Optional[str],
) -> Request[JSON]:
    return Request(
        "POST",
        "/api/v1/search",
        _object,
        json=_body(
            goal=goal,
            k=k,
            current_state=current_state,
            min_similarity=min_similarity,
            filters=filters,
            ranking_weights=ranking_weights,
            image_embedding=image_embedding,
            project=project,
        ),
    )


def reflect(
    goal: str, proposed_action: str, tool: str, current_state: Optional[Mapping[str, Any]], project: Optional[str]
) -> Request[JSON]:
    return Request(
        "POST",
        "/api/v1/reflect",
        _object,
        json=_body(
            goal=goal, proposed_action=proposed_action, tool=tool, current_state=current_state, project=project
        ),
    )


def validate_fix(
    episode_id: int, outcome: str, applied_suggestion: Optional[Union[str, bool]], notes: Optional[str]
) -> Request[JSON]:
    return Request(
        "POST",
        "/api/v1/validate_fix",
        _object,
        json=_body(episode_id=episode_id, outcome=outcome, applied_suggestion=applied_suggestion, notes=notes),
        # Each call records one more outcome: never sent twice.
        idempotent=False,
    )


def get_episode(episode_id: int) -> Request[JSON]:
    return Request("GET", f"/api/v1/episodes/{int(episode_id)}", _object)


def list_episodes(
    limit: Optional[int],
    cursor: Optional[str],
    tag: Optional[str],
    tool: Optional[str],
    error_class: Optional[str],
    project: Optional[str],
    since: Optional[str],
    until: Optional[str],
) -> Request[JSON]:
    return Request(
        "GET",
        "/api/v1/episodes",
        _object,
        params=_params(
            limit=limit,
            cursor=cursor,
            tag=tag,
            tool=tool,
            error_class=error_class,
            project=project,
            since=since,
            until=until,
        ),
    )


def delete_episode(episode_id: int) -> Request[None]:
    return Request("DELETE", f"/api/v1/episodes/{int(episode_id)}", _nothing)


def skills() -> Request[List[JSON]]:
    return Request("GET", "/api/v1/skills", _list_in("skills"))


def _embeddings(body: Any) -> "npt.NDArray[np.float32]":
    try:
        rows = sorted(body["data"], key=lambda item: item["index"])
        return np.asarray([row["embedding"] for row in rows], dtype=np.float32)
    except (KeyError, TypeError) as error:
        raise InternalError(f"unexpected embeddings answer: {error!r}", code="bad_answer") from error


def embed(texts: Union[str, Sequence[str]], model: Optional[str]) -> Request["npt.NDArray[np.float32]"]:
    inputs: List[str] = [texts] if isinstance(texts, str) else list(texts)
    return Request("POST", "/api/v1/embeddings", _embeddings, json=_body(input=inputs, model=model))


# ---------------------------------------------------------------- admin


def create_customer(name: str, tier: str) -> Request[JSON]:
    # Not idempotent: a repeat would create a second customer.
    return Request("POST", "/api/v1/customers", _object, json=_body(name=name, tier=tier), idempotent=False)


def get_customer(customer_id: str) -> Request[JSON]:
    return Request("GET", f"/api/v1/customers/{customer_id}", _object)


def update_customer(customer_id: str, name: Optional[str], tier: Optional[str]) -> Request[JSON]:
    return Request("PATCH", f"/api/v1/customers/{customer_id}", _object, json=_body(name=name, tier=tier))


def suspend_customer(customer_id: str) -> Request[JSON]:
    return Request("POST", f"/api/v1/customers/{customer_id}/suspend", _object)


def activate_customer(customer_id: str) -> Request[JSON]:
    return Request("POST", f"/api/v1/customers/{customer_id}/activate", _object)


def create_key(
    customer_id: str, scopes: Sequence[str], expires_at: Optional[str], project: Optional[str]
) -> Request[JSON]:
    # Not idempotent: a repeat would create a second key.
    return Request(
        "POST",
        f"/api/v1/customers/{customer_id}/keys",
        _object,
        json=_body(scopes=list(scopes), expires_at=expires_at, project=project),
        idempotent=False,
    )


def list_keys(customer_id: str) -> Request[List[JSON]]:
    return Request("GET", f"/api/v1/customers/{customer_id}/keys", _list_in("keys"))


def revoke_key(key_id: str) -> Request[None]:
    return Request("DELETE", f"/api/v1/keys/{key_id}", _nothing)


def usage(customer_id: str) -> Request[JSON]:
    return Request("GET", f"/api/v1/customers/{customer_id}/usage", _object)


def audit(customer_id: Optional[str], before: Optional[Union[int, str]], limit: Optional[int]) -> Request[JSON]:
    return Request("GET", "/api/v1/audit", _object, params=_params(customer_id=customer_id, before=before, limit=limit))


# ---------------------------------------------------------------- service


def health() -> Request[JSON]:
    return Request("GET", "/health", _object, authenticated=False)
