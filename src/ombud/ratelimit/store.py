"""The port every rate-limit store implements: apply several keyed checks as one atomic step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ombud.ratelimit.gcra import GcraResult, Quota

Check = tuple[str, Quota]
"""A key (``key:<principal>``, ``tenant:<id>``, ...) and the quota that applies to it."""


class RateLimitStoreUnavailable(Exception):
    """The store could not be reached or did not answer in time; nothing was decided."""


class RateLimitStore(Protocol):
    """Holds one TAT per key and applies GCRA to a set of keys atomically."""

    async def apply(
        self, checks: Sequence[Check], cost: int, *, now_us: int | None = None
    ) -> list[GcraResult]:
        """Charge ``cost`` to every key if all of them admit it, else charge none.

        Args:
            checks: Distinct keys with their quotas.
            cost: The request's weight, at least 1.
            now_us: The time to decide at, in microseconds; ``None`` means the store's own
                clock. Given only by tests that compare stores under controlled time.

        Returns:
            One result per check, in order. When any is refused, no key was charged and the
            others report their state as it is.

        Raises:
            RateLimitStoreUnavailable: The store failed; nothing was charged.
        """
        ...
