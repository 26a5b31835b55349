"""Retry timing: exponential backoff with jitter. Pure functions, no I/O."""

from __future__ import annotations

import random

_RANDOM = random.Random()

# 2**62 seconds is far past any configured maximum; capping the exponent keeps the float finite.
_MAX_EXPONENT = 62


def backoff_ceiling(attempt: int, *, base_s: float, max_s: float) -> float:
    """The longest wait after failed attempt number ``attempt`` (1 for the first).

    Doubles with each attempt, starting at ``base_s``, and never exceeds ``max_s``.
    """
    exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
    return float(min(max_s, base_s * 2.0**exponent))


def backoff_delay(
    attempt: int, *, base_s: float, max_s: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retrying after failed attempt number ``attempt``.

    "Equal jitter": half of the ceiling is fixed and half is random. The random half spreads
    retries of jobs that failed together (an outage) so they do not return in a herd; the fixed
    half keeps each retry at least as late as the previous one could have been, so the waits
    grow with every attempt until they reach ``max_s``.

    Args:
        attempt: The attempt that just failed, counting from 1.
        base_s: The ceiling after the first failure.
        max_s: The largest wait ever returned.
        rng: Source of randomness; tests pass a seeded one.

    Returns:
        A delay in ``[ceiling / 2, ceiling]``, hence within ``[0, max_s]``.
    """
    ceiling = backoff_ceiling(attempt, base_s=base_s, max_s=max_s)
    return ceiling / 2 + (rng or _RANDOM).uniform(0.0, ceiling / 2)
