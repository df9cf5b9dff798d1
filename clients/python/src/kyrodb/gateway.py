"""``GatewayClient``: the synchronous REST client of kyro-gateway."""

from __future__ import annotations

import time
from typing import Any, Iterator, List, Mapping, Optional, Sequence, TypeVar, Union

import httpx
import numpy as np
import numpy.typing as npt

from . import _gateway_http as http
from . import _gateway_requests as routes
from .retry import RetryPolicy

__all__ = ["GatewayClient"]

JSON = routes.JSON
T = TypeVar("T")


class GatewayClient:
    """A synchronous client of the REST gateway (``docs/gateway.md``).

    ::

        with kyrodb.GatewayClient("http://127.0.0.1:8080", api_key="em_live_…") as gw:
            episode = gw.capture({"goal": "…", "tool_chain": ["pip"], …})
            decision = gw.reflect("install numpy", "pip install numpy==1.24.0", "pip")

    Answers are the gateway's JSON as dicts (fields as documented in
    ``docs/gateway.md``); errors raise :class:`~kyrodb.KyroError` subclasses
    carrying the gateway's ``code``, ``message`` and ``field``.

    Args:
        url: the gateway's base URL; default ``$KYRO_GATEWAY_URL``, else
            ``http://127.0.0.1:8080``.
        api_key: sent as ``X-API-Key``; default ``$KYRO_GATEWAY_API_KEY``.
        retry: how 503s and connection failures are retried. Requests that
            must not run twice (validate_fix, creating a customer or a key)
            are retried only when the connection could not be made.
        timeout: seconds each attempt may take.
        transport: an ``httpx`` transport (for proxies, tests…).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        *,
        retry: RetryPolicy = RetryPolicy(),
        timeout: Optional[float] = 30.0,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self.url = http.base_url(url)
        self.retry = retry
        self._key = http.api_key(api_key)
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    # ------------------------------------------------------------ plumbing

    def _send(self, request: routes.Request[T]) -> T:
        """Sends ``request``, retrying as the policy allows; returns the parsed answer."""
        what = f"{request.method} {request.path}"
        attempt = 1
        while True:
            try:
                response = self._http.request(
                    request.method,
                    request.path,
                    json=request.json,
                    params=request.params,
                    headers=http.headers(request, self._key),
                )
            except httpx.TransportError as error:
                failure = http.transport_failure(error, self.url)
                if not http.may_retry_transport(error, request) or attempt >= self.retry.max_attempts:
                    raise failure from error
                delay = self.retry.backoff(attempt)
            else:
                if not http.may_retry_response(response, request) or attempt >= self.retry.max_attempts:
                    return http.answer(request, response)
                failure = http.error_of(response)
                delay = self.retry.backoff(attempt, http.retry_after(response))
            self.retry.log_retry(what, failure, attempt, delay)
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> "GatewayClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ episodes

    def capture(
        self,
        episode: Optional[Mapping[str, Any]] = None,
        *,
        idempotency_key: Optional[str] = None,
        **fields: Any,
    ) -> JSON:
        """Records a failure episode (``POST /api/v1/capture``).

        The episode is a mapping of the documented fields (``goal``,
        ``tool_chain``, ``actions_taken``, ``error_trace``, ``error_class``,
        …), keyword arguments, or both (keywords win). numpy arrays are
        accepted (``image_embedding``).

        Every call sends an ``Idempotency-Key`` (``idempotency_key``, else a
        fresh UUID) and retries reuse it, so a retried capture is stored once.
        Pass your own key to make a later repeat of the same capture answer
        the first result. Returns ``{"episode_id", "status", …}``.
        """
        body = dict(episode or {})
        body.update(fields)
        return self._send(routes.capture(body, idempotency_key))

    def search(
        self,
        goal: str,
        *,
        k: Optional[int] = None,
        current_state: Optional[Mapping[str, Any]] = None,
        min_similarity: Optional[float] = None,
        filters: Optional[Mapping[str, Any]] = None,
        ranking_weights: Optional[Mapping[str, float]] = None,
        image_embedding: Optional[Union[Sequence[float], "npt.NDArray[Any]"]] = None,
        project: Optional[str] = None,
    ) -> JSON:
        """Episodes similar to ``goal``, ranked (``POST /api/v1/search``):
        ``{"results": [{"episode_id", "score", "components", "explanation", "episode", …}]}``."""
        request = routes.search(
            goal, k, current_state, min_similarity, filters, ranking_weights, image_embedding, project
        )
        return self._send(request)

    def reflect(
        self,
        goal: str,
        proposed_action: str,
        tool: str,
        *,
        current_state: Optional[Mapping[str, Any]] = None,
        project: Optional[str] = None,
    ) -> JSON:
        """Asks before acting (``POST /api/v1/reflect``): ``{"decision":
        "block" | "warn" | "hint" | "proceed", "confidence", "rationale",
        "matched_episodes", "suggested_action"}``."""
        return self._send(routes.reflect(goal, proposed_action, tool, current_state, project))

    def validate_fix(
        self,
        episode_id: int,
        outcome: str,
        *,
        applied_suggestion: Optional[Union[str, bool]] = None,
        notes: Optional[str] = None,
    ) -> JSON:
        """Reports whether an episode's fix worked (``outcome``: ``"success"``
        or ``"still_failed"``). Never retried once sent: each call counts."""
        return self._send(routes.validate_fix(episode_id, outcome, applied_suggestion, notes))

    def get_episode(self, episode_id: int) -> JSON:
        """One episode with its counters; :class:`~kyrodb.NotFound` when absent."""
        return self._send(routes.get_episode(episode_id))

    def list_episodes(
        self,
        *,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
        tag: Optional[str] = None,
        tool: Optional[str] = None,
        error_class: Optional[str] = None,
        project: Optional[str] = None,
        since: Optional[str] = None,
        until: Optional[str] = None,
    ) -> JSON:
        """One page of episodes in ascending id order: ``{"episodes": […],
        "next_cursor"}`` (``None`` on the last page). ``since``/``until`` are
        RFC 3339 times."""
        request = routes.list_episodes(limit, cursor, tag, tool, error_class, project, since, until)
        return self._send(request)

    def iter_episodes(
        self,
        *,
        page_size: int = 100,
        tag: Optional[str] = None,
        tool: Optional[str] = None,
        error_class: Optional[str] = None,
        project: Optional[str] = None,
        since: Optional[str] = None,
        until: Optional[str] = None,
    ) -> Iterator[JSON]:
        """Every episode (matching the filters), following the cursors."""
        cursor: Optional[str] = None
        while True:
            page = self.list_episodes(
                limit=page_size,
                cursor=cursor,
                tag=tag,
                tool=tool,
                error_class=error_class,
                project=project,
                since=since,
                until=until,
            )
            yield from page["episodes"]
            cursor = page.get("next_cursor")
            if cursor is None:
                return

    def delete_episode(self, episode_id: int) -> None:
        """Erases an episode (its vectors, then its row)."""
        self._send(routes.delete_episode(episode_id))

    def skills(self) -> List[JSON]:
        """Episodes whose fix proved itself (≥ 3 successes at ≥ 90 %)."""
        return self._send(routes.skills())

    def embed(self, texts: Union[str, Sequence[str]], *, model: Optional[str] = None) -> "npt.NDArray[np.float32]":
        """Embeddings of ``texts`` (``POST /api/v1/embeddings``) as a float32
        array with one row per text (a single string gives one row)."""
        return self._send(routes.embed(texts, model))

    # ------------------------------------------------------------ admin (admin scope)

    def create_customer(self, name: str, tier: str = "FREE") -> JSON:
        """Creates a customer (``tier``: ``FREE``, ``PRO`` or ``ENTERPRISE``);
        returns it with its ``customer_id``."""
        return self._send(routes.create_customer(name, tier))

    def get_customer(self, customer_id: str) -> JSON:
        """A customer."""
        return self._send(routes.get_customer(customer_id))

    def update_customer(self, customer_id: str, *, name: Optional[str] = None, tier: Optional[str] = None) -> JSON:
        """Renames a customer or changes its tier."""
        return self._send(routes.update_customer(customer_id, name, tier))

    def suspend_customer(self, customer_id: str) -> JSON:
        """Suspends a customer: its keys fail at once."""
        return self._send(routes.suspend_customer(customer_id))

    def activate_customer(self, customer_id: str) -> JSON:
        """Makes a suspended customer active again."""
        return self._send(routes.activate_customer(customer_id))

    def create_key(
        self,
        customer_id: str,
        scopes: Sequence[str] = ("read", "write"),
        *,
        expires_at: Optional[str] = None,
        project: Optional[str] = None,
    ) -> JSON:
        """Creates a key of a customer: ``{"key_id", "api_key", …}``; the key
        itself is shown only in this answer."""
        return self._send(routes.create_key(customer_id, scopes, expires_at, project))

    def list_keys(self, customer_id: str) -> List[JSON]:
        """A customer's keys (without the secrets)."""
        return self._send(routes.list_keys(customer_id))

    def revoke_key(self, key_id: str) -> None:
        """Revokes a key; it fails from the next request."""
        self._send(routes.revoke_key(key_id))

    def usage(self, customer_id: str) -> JSON:
        """A customer's usage per month against its quota."""
        return self._send(routes.usage(customer_id))

    def audit(
        self,
        *,
        customer_id: Optional[str] = None,
        before: Optional[Union[int, str]] = None,
        limit: Optional[int] = None,
    ) -> JSON:
        """The audit log, newest first: ``{"entries": […], "next_before"}``."""
        return self._send(routes.audit(customer_id, before, limit))

    # ------------------------------------------------------------ service

    def health(self) -> JSON:
        """``GET /health``: ``{"status": "ok" | "degraded", "checks": {…}}`` (no key needed)."""
        return self._send(routes.health())
