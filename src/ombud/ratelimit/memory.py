"""The in-process rate-limit store: the embedded default, and the fallback when Redis fails.

Limits held here are per process: N replicas each admit the full quota. Memory stays bounded by
the keys active within their burst windows, because a TAT that is not after now is the same as
no entry at all, so such entries are dropped by a sweep whose cost is amortised over writes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ombud.core.clock import Clock
from ombud.ratelimit.gcra import MICROS, GcraResult, decide_all
from ombud.ratelimit.store import Check

_MIN_SWEEP_SIZE = 1024


class MemoryRateLimitStore:
    """GCRA over a dict of TATs, on the injected monotonic clock.

    ``apply`` never awaits between reading and writing, so concurrent tasks on one event loop
    cannot interleave inside a check; the lock makes it safe from other threads as well.
    """

    def __init__(self, clock: Clock, *, sweep_interval_s: float = 60.0) -> None:
        """Build an empty store.

        Args:
            clock: Source of monotonic time.
            sweep_interval_s: Idle keys are dropped at least this often, and also whenever the
                number of keys has doubled since the last sweep.
        """
        self._clock = clock
        self._tats: dict[str, int] = {}
        self._lock = threading.Lock()
        self._sweep_every_us = int(sweep_interval_s * MICROS)
        self._next_sweep_us = self._now_us() + self._sweep_every_us
        self._next_sweep_size = _MIN_SWEEP_SIZE

    def __len__(self) -> int:
        return len(self._tats)

    def _now_us(self) -> int:
        return int(self._clock.monotonic() * MICROS)

    async def apply(
        self, checks: Sequence[Check], cost: int, *, now_us: int | None = None
    ) -> list[GcraResult]:
        """Charge ``cost`` to every key if all admit it, else to none (see ``RateLimitStore``)."""
        return self.apply_now(checks, cost, now_us=now_us)

    def apply_now(
        self, checks: Sequence[Check], cost: int, *, now_us: int | None = None
    ) -> list[GcraResult]:
        """The synchronous body of :meth:`apply`, for callers outside an event loop."""
        now = self._now_us() if now_us is None else now_us
        with self._lock:
            quotas = [(quota, self._tats.get(key, 0)) for key, quota in checks]
            results, admitted = decide_all(quotas, now, cost)
            if admitted:
                for (key, _), result in zip(checks, results, strict=True):
                    self._tats[key] = result.tat_us
                self._maybe_sweep(now)
            return results

    def sweep(self, now_us: int | None = None) -> int:
        """Drop every key whose bucket is full again; return how many were dropped."""
        now = self._now_us() if now_us is None else now_us
        with self._lock:
            return self._sweep(now)

    def _maybe_sweep(self, now_us: int) -> None:
        if len(self._tats) >= self._next_sweep_size or now_us >= self._next_sweep_us:
            self._sweep(now_us)

    def _sweep(self, now_us: int) -> int:
        idle = [key for key, tat in self._tats.items() if tat <= now_us]
        for key in idle:
            del self._tats[key]
        # Doubling the threshold keeps sweeping O(1) amortised per write even when every key
        # is live, while memory stays within twice the live set.
        self._next_sweep_size = max(_MIN_SWEEP_SIZE, 2 * len(self._tats))
        self._next_sweep_us = now_us + self._sweep_every_us
        return len(idle)
