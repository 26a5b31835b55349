"""Concurrency caps: how many calls one key may have in flight at once.

Rate limits bound how often calls start; a cap bounds how many run at the same time, which is
what protects a slow model or provider from one client's parallel requests.

Caps are counted in this process only: with N replicas a key may have N times the cap in flight
overall. A cap is a guard against one client crowding a replica, not a global quota; global
limits are the rate limiter's job.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ombud.config import RateLimitSettings
from ombud.observability.metrics import Metrics

PER_KEY_CAP = "per-key"


class ConcurrencyLimitExceeded(Exception):
    """A key already has as many calls in flight as its cap allows.

    Attributes:
        cap: The cap's name, e.g. ``per-key``.
        key: The key that is at its cap.
        limit: The cap that applied.
    """

    def __init__(self, cap: str, key: str, limit: int) -> None:
        super().__init__(f"{cap} concurrency cap of {limit} reached for {key}")
        self.cap = cap
        self.key = key
        self.limit = limit


class ConcurrencyLimiter:
    """Counts calls in flight per key and refuses those past the cap.

    Admission never waits: a call past the cap is refused at once, so the caller can answer 429
    instead of holding a connection open. Counting is synchronous, so tasks on one event loop
    cannot both take the last slot.
    """

    def __init__(self, name: str, limit: int, metrics: Metrics) -> None:
        """Build a cap.

        Args:
            name: The cap's name, the ``cap`` label of ``ombud_concurrency_in_flight``.
            limit: Calls in flight allowed per key unless a call names its own limit.
            metrics: Where the number in flight (all keys together) is published.
        """
        if limit < 1:
            raise ValueError("a concurrency cap must allow at least one call")
        self.name = name
        self.limit = limit
        self._in_flight: dict[str, int] = {}
        self._gauge = metrics.concurrency_in_flight.labels(cap=name)

    def in_flight(self, key: str) -> int:
        """Calls now in flight for ``key``."""
        return self._in_flight.get(key, 0)

    @asynccontextmanager
    async def acquire(self, key: str, limit: int | None = None) -> AsyncIterator[None]:
        """Hold one of ``key``'s slots for the body of an ``async with``.

        The slot is given back however the body ends: normally, by an exception, or by
        cancellation.

        Args:
            key: Whose slots, e.g. the principal id.
            limit: This key's cap, overriding the default (e.g. a per-key setting).

        Raises:
            ConcurrencyLimitExceeded: The key's slots are all taken; nothing was held.
        """
        cap = self.limit if limit is None else limit
        count = self._in_flight.get(key, 0)
        if count >= cap:
            raise ConcurrencyLimitExceeded(self.name, key, cap)
        self._in_flight[key] = count + 1
        self._gauge.inc()
        try:
            yield
        finally:
            self._release(key)

    def _release(self, key: str) -> None:
        left = self._in_flight[key] - 1
        if left:
            self._in_flight[key] = left
        else:
            # Idle keys are forgotten, so memory follows the keys with calls in flight.
            del self._in_flight[key]
        self._gauge.dec()


def build_concurrency_limiter(settings: RateLimitSettings, metrics: Metrics) -> ConcurrencyLimiter:
    """The per-key cap from ``OMBUD_RATELIMIT__MAX_CONCURRENT_PER_KEY``."""
    return ConcurrencyLimiter(PER_KEY_CAP, settings.max_concurrent_per_key, metrics)
