"""The Generic Cell Rate Algorithm (GCRA), as pure functions with no I/O.

A quota admits ``rate`` units per second on average and up to ``burst`` units at once. The only
state per key is the theoretical arrival time (TAT): the instant at which the key's bucket would
be full again if nothing else arrived. A request of weight ``cost`` is admitted when pushing the
TAT forward by ``cost`` emission intervals keeps it within ``burst`` intervals of now.

Time is counted in integer microseconds, never in floating-point seconds, so that the in-process
store and the Redis script (whose numbers are doubles, exact for integers below 2**53) compute
bit-for-bit the same decisions, and so that "retry after" is exact: arriving exactly then is
admitted, one microsecond earlier is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

MICROS = 1_000_000
"""Microseconds per second."""

_MAX_LIMIT_US = 2**50
"""Largest burst window we accept (about 35 years); keeps every sum exact in a double."""


class Outcome(IntEnum):
    """What GCRA decided for one key. The values are what the Redis script returns."""

    LIMITED = 0
    ALLOWED = 1
    COST_EXCEEDS_BURST = 2
    """The request weighs more than the bucket can ever hold: retrying cannot help."""


def _emission_interval_us(rate: float) -> int:
    # Rounded up, so the effective rate never exceeds ``rate``; a quotient that is an integer up
    # to floating-point noise (1e6 / (1e6 / 3)) is taken as that integer.
    exact = MICROS / rate
    nearest = round(exact)
    if nearest >= 1 and abs(exact - nearest) <= 1e-9 * exact:
        return nearest
    return max(1, math.ceil(exact))


@dataclass(frozen=True, slots=True)
class Quota:
    """One rate limit: ``rate`` units per second on average, ``burst`` units at once.

    Attributes:
        name: The policy name shown in headers and metrics (``per-key``, ``per-tenant``, ...).
        rate: Units admitted per second in the long run.
        burst: Units that may be admitted at once after a quiet period.
        unit: What a unit is: ``requests`` unless the quota counts weights such as tokens.
    """

    name: str
    rate: float
    burst: int
    unit: str = "requests"
    interval_us: int = field(init=False, repr=False, compare=False)
    """The emission interval: microseconds one unit takes to refill."""
    limit_us: int = field(init=False, repr=False, compare=False)
    """How far ahead of now the TAT may run: ``burst`` emission intervals."""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a quota needs a name")
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"quota {self.name!r}: rate must be a positive number")
        if self.burst < 1:
            raise ValueError(f"quota {self.name!r}: burst must be at least 1")
        interval = _emission_interval_us(self.rate)
        if interval * self.burst > _MAX_LIMIT_US:
            raise ValueError(f"quota {self.name!r}: burst / rate is too long a window")
        # Derived once: every decision needs them, and the dataclass is frozen.
        object.__setattr__(self, "interval_us", interval)
        object.__setattr__(self, "limit_us", interval * self.burst)

    @property
    def window_s(self) -> int:
        """Seconds in which ``burst`` units refill, rounded up: the ``w`` of the policy header."""
        return max(1, math.ceil(self.burst / self.rate))


@dataclass(frozen=True, slots=True)
class GcraResult:
    """GCRA's answer for one key.

    Attributes:
        outcome: Allowed, limited, or a cost that no wait can admit.
        tat_us: The TAT to store if the request is charged; when not, the TAT given, or 0 when
            that is not after now (a full bucket, the same state as a key never seen).
        remaining: Units that could still be admitted right now (after this request if allowed).
        reset_after_us: Microseconds until the bucket is full again.
        retry_after_us: Microseconds until this same request would be admitted; 0 when allowed,
            ``None`` when no wait can admit it.
    """

    outcome: Outcome
    tat_us: int
    remaining: int
    reset_after_us: int
    retry_after_us: int | None

    @property
    def allowed(self) -> bool:
        """Whether this key admits the request."""
        return self.outcome is Outcome.ALLOWED


def _remaining(quota: Quota, tat_us: int, now_us: int) -> int:
    # Clamped: a clock that stepped backwards can leave the TAT beyond the burst window.
    return max(0, (quota.limit_us - (tat_us - now_us)) // quota.interval_us)


def decide(quota: Quota, tat_us: int, now_us: int, cost: int = 1) -> GcraResult:
    """Decide one request of weight ``cost`` against one key's stored TAT.

    Args:
        quota: The key's quota.
        tat_us: The stored TAT in microseconds; any value not after ``now_us`` (0 for a key
            never seen) means a full bucket.
        now_us: The current time in microseconds.
        cost: The request's weight, at least 1.

    Returns:
        The decision; the caller stores ``tat_us`` only when it is allowed (and, across several
        keys, only when all of them are), so a refused request changes nothing.
    """
    if cost < 1:
        raise ValueError("cost must be at least 1")
    stored = tat_us if tat_us > now_us else 0
    tat = max(stored, now_us)
    if cost > quota.burst:
        return GcraResult(
            Outcome.COST_EXCEEDS_BURST, stored, _remaining(quota, tat, now_us), tat - now_us, None
        )
    new_tat = tat + cost * quota.interval_us
    allow_at = new_tat - quota.limit_us
    if now_us < allow_at:
        return GcraResult(
            Outcome.LIMITED,
            stored,
            _remaining(quota, tat, now_us),
            tat - now_us,
            allow_at - now_us,
        )
    return GcraResult(
        Outcome.ALLOWED, new_tat, _remaining(quota, new_tat, now_us), new_tat - now_us, 0
    )


def decide_all(
    quotas: list[tuple[Quota, int]], now_us: int, cost: int = 1
) -> tuple[list[GcraResult], bool]:
    """Decide one request against several keys at once.

    Args:
        quotas: Each key's quota and stored TAT, in order.
        now_us: The current time in microseconds.
        cost: The request's weight, charged to every key.

    Returns:
        The result per key, and whether every key admits the request (only then may any new
        TAT be stored).
    """
    results = [decide(quota, tat, now_us, cost) for quota, tat in quotas]
    return results, all(result.allowed for result in results)
