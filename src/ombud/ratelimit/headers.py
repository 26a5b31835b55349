"""Response headers that tell a client its rate-limit state.

Two generations are sent, because clients understand one or the other:

- the structured fields of the IETF draft "RateLimit header fields for HTTP"
  (draft-ietf-httpapi-ratelimit-headers): ``RateLimit-Policy`` lists each quota as
  ``"name";q=<units>;w=<seconds>`` and ``RateLimit`` its state as ``"name";r=<remaining>;t=<s>``;
- the older, widely implemented triple ``RateLimit-Limit``, ``RateLimit-Remaining`` and
  ``RateLimit-Reset`` (delta seconds), for the quota that decided.

A refusal also carries ``Retry-After`` in whole seconds, rounded up so that a client that waits
exactly that long is admitted.
"""

from __future__ import annotations

import math

from ombud.ratelimit.gcra import Quota
from ombud.ratelimit.limiter import Decision, QuotaState

_DEFAULT_UNIT = "requests"


def _seconds(value: float) -> int:
    return max(0, math.ceil(value))


def _sf_string(value: str) -> str:
    # An RFC 8941 sf-string: printable ASCII, with backslash and quote escaped.
    printable = "".join(c if " " <= c <= "~" else "?" for c in value)
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _policy_item(quota: Quota) -> str:
    item = f"{_sf_string(quota.name)};q={quota.burst}"
    if quota.unit != _DEFAULT_UNIT:
        item += f";qu={_sf_string(quota.unit)}"
    return item + f";w={quota.window_s}"


def _state_item(state: QuotaState) -> str:
    return f"{_sf_string(state.quota.name)};r={state.remaining};t={_seconds(state.reset_after)}"


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The rate-limit headers for a response to a checked request.

    Args:
        decision: The limiter's decision.

    Returns:
        Header names and values; empty when nothing was checked. For example, allowed by a
        per-key quota of 100 at 50/s with 37 left::

            RateLimit-Policy: "per-key";q=100;w=2
            RateLimit: "per-key";r=37;t=2
            RateLimit-Limit: 100
            RateLimit-Remaining: 37
            RateLimit-Reset: 2
    """
    headers: dict[str, str] = {}
    if decision.states:
        headers["RateLimit-Policy"] = ", ".join(_policy_item(s.quota) for s in decision.states)
        headers["RateLimit"] = ", ".join(_state_item(s) for s in decision.states)
    decided = decision.decided_by
    if decided is not None:
        headers["RateLimit-Limit"] = str(decided.quota.burst)
        headers["RateLimit-Remaining"] = str(decided.remaining)
        headers["RateLimit-Reset"] = str(_seconds(decided.reset_after))
    if not decision.allowed and decision.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
    return headers
