"""The retry budget: retries may add only a bounded share of load on top of first attempts.

Per-call retry limits alone multiply load during an outage: every call tries ``max_attempts``
times, exactly when upstreams are least able to take it. A budget shared by all calls caps
retries at ``ratio`` × first attempts seen over a sliding window, plus a small floor
(``min_per_s`` × window) so a quiet gateway can still retry its occasional failure.

The window is kept as a ring of buckets (counts per slice of the window), so memory stays
constant whatever the request rate; the window slides one bucket at a time.
"""

from __future__ import annotations

import math

from ombud.core.clock import Clock

_BUCKETS = 10


class RetryBudget:
    """Counts first attempts and retries over a sliding window; :meth:`try_retry` spends one."""

    def __init__(
        self,
        *,
        ratio: float,
        min_per_s: float,
        window_s: float,
        clock: Clock,
    ) -> None:
        self._ratio = ratio
        self._floor = min_per_s * window_s
        self._width = window_s / _BUCKETS
        self._clock = clock
        self._stamps = [-1] * _BUCKETS
        self._firsts = [0] * _BUCKETS
        self._retries = [0] * _BUCKETS

    def _slot(self) -> int:
        """The current bucket's slot, emptied first when it last held an older slice."""
        index = math.floor(self._clock.monotonic() / self._width)
        slot = index % _BUCKETS
        if self._stamps[slot] != index:
            self._stamps[slot] = index
            self._firsts[slot] = 0
            self._retries[slot] = 0
        return slot

    def _totals(self) -> tuple[int, int]:
        newest = math.floor(self._clock.monotonic() / self._width)
        firsts = retries = 0
        for slot in range(_BUCKETS):
            if newest - _BUCKETS < self._stamps[slot] <= newest:
                firsts += self._firsts[slot]
                retries += self._retries[slot]
        return firsts, retries

    def record_first_attempt(self) -> None:
        """One new call: it earns ``ratio`` of a retry for the window."""
        self._firsts[self._slot()] += 1

    def allowance(self) -> float:
        """Retries the window allows in all (spent ones included)."""
        firsts, _ = self._totals()
        return self._ratio * firsts + self._floor

    def try_retry(self) -> bool:
        """Spend one retry if the window allows it; False (nothing spent) when it is used up."""
        firsts, retries = self._totals()
        if retries + 1 > self._ratio * firsts + self._floor:
            return False
        self._retries[self._slot()] += 1
        return True
