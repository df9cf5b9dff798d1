"""Connection settings shared by ``Client`` and ``AsyncClient``."""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""kyro-server's default ``limits.max_message_bytes``."""

ChannelOptions = Sequence[Tuple[str, object]]


def channel_options(extra: ChannelOptions = ()) -> List[Tuple[str, object]]:
    """gRPC channel options: 64 MiB messages both ways, and reconnect
    attempts every 0.1–2 s rather than grpc's default 1–120 s, so that a
    retried call finds a restarted server soon after it is back."""
    options: List[Tuple[str, object]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]
    overridden = {name for name, _ in extra}
    return [o for o in options if o[0] not in overridden] + list(extra)


def metadata(api_key: Optional[str], tenant: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """The call metadata: the key as a Bearer token (``api_key``, else
    ``$KYRO_API_KEY``) and, for a ``service`` key, the tenant it acts for."""
    key = api_key if api_key is not None else os.environ.get("KYRO_API_KEY")
    entries: List[Tuple[str, str]] = []
    if key:
        entries.append(("authorization", f"Bearer {key}"))
    if tenant:
        entries.append(("x-kyro-tenant", tenant))
    return tuple(entries)


def default_target(target: Optional[str]) -> str:
    """``target``, else ``$KYRO_ADDR``, else the text instance on localhost."""
    return target or os.environ.get("KYRO_ADDR") or "localhost:50051"
