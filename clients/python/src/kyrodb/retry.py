"""Retry policy shared by the gRPC and REST clients.

A call that fails with a transient error (gRPC UNAVAILABLE, HTTP 503, a
connection that could not be made) is tried again after an exponentially
growing, jittered delay, up to ``max_attempts`` attempts in all. Each retry
is logged on the ``kyrodb`` logger at WARNING level.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Optional

__all__ = ["RetryPolicy", "NO_RETRY"]

logger = logging.getLogger("kyrodb")


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    Attributes:
        max_attempts: attempts in all, the first included (1: never retry).
        initial_backoff: seconds before the first retry.
        max_backoff: the longest wait between two attempts, in seconds.
        multiplier: how much the wait grows after each retry.
        jitter: the fraction of each wait that is randomised (0: none).
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoffs must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be within 0..=1")

    def backoff(self, retry: int, server_hint: Optional[float] = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first).

        A server's ``Retry-After`` hint is honoured when it is longer, up to
        ``max_backoff``.
        """
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        delay = base * (1 - self.jitter * random.random())
        if server_hint is not None:
            delay = max(delay, min(server_hint, self.max_backoff))
        return delay

    def log_retry(self, what: str, error: BaseException, attempt: int, delay: float) -> None:
        """Logs that ``what`` failed on ``attempt`` and is retried after ``delay``."""
        logger.warning(
            "kyrodb: %s failed (%s); retry %d of %d in %.2f s",
            what,
            error,
            attempt,
            self.max_attempts - 1,
            delay,
        )


NO_RETRY = RetryPolicy(max_attempts=1)
"""A policy that never retries."""
