"""Admission: ``rate_limit`` (quotas per key, tenant, client IP and model) and ``concurrency``
(calls in flight per key and per process). Both refuse before any model work is done."""

from __future__ import annotations

from ombud.core.errors import Overloaded, RateLimitUnavailable, TooManyRequests
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Outcome
from ombud.ratelimit import (
    ConcurrencyLimiter,
    ConcurrencyLimitExceeded,
    DefaultQuotas,
    DenialReason,
    Quota,
    RateLimiter,
    rate_limit_headers,
)

PROCESS_KEY = "process"


class RateLimit:
    """``rate_limit``: one atomic check of the quotas per key, tenant and model.

    The ``RateLimit-*`` headers go on every answer; a refusal is 429 with ``Retry-After``, or 503
    when the shared store is down and the configured behaviour is to fail closed.
    """

    name = "rate_limit"

    def __init__(self, limiter: RateLimiter, quotas: DefaultQuotas) -> None:
        self._limiter = limiter
        self._quotas = quotas

    async def __call__(self, call: Call) -> Outcome:
        principal = call.require_principal()
        checks = self._quotas.checks(
            principal_id=principal.credential_id, tenant_id=principal.tenant_id, model=call.target
        )
        return await _admit(self._limiter, checks, call)


class RateLimitByIp:
    """``rate_limit.ip``: the per-client-IP quota, checked before authentication so that
    floods of bad credentials are throttled before they cost a lookup and an audit record."""

    name = "rate_limit.ip"

    def __init__(self, limiter: RateLimiter, quotas: DefaultQuotas) -> None:
        self._limiter = limiter
        self._quotas = quotas

    async def __call__(self, call: Call) -> Outcome:
        if call.client_ip is None:
            return None
        return await _admit(self._limiter, self._quotas.checks(client_ip=call.client_ip), call)


async def _admit(limiter: RateLimiter, checks: list[tuple[str, Quota]], call: Call) -> Outcome:
    decision = await limiter.check(checks, cost=call.cost)
    headers = rate_limit_headers(decision)
    call.response_headers.update(headers)
    if decision.allowed:
        return None
    if decision.reason is DenialReason.BACKEND_UNAVAILABLE:
        raise RateLimitUnavailable(
            detail="the shared rate-limit store is unreachable", headers=headers
        )
    raise TooManyRequests(detail=f"{decision.limit} limit reached", headers=headers)


class Concurrency:
    """``concurrency``: a slot per key (``max_concurrent_per_key``) and per process
    (``max_in_flight``), held until the call ends."""

    name = "concurrency"

    def __init__(self, limiter: ConcurrencyLimiter, max_in_flight: int) -> None:
        self._limiter = limiter
        self._max_in_flight = max_in_flight

    async def __call__(self, call: Call) -> Outcome:
        principal = call.require_principal()
        try:
            await call.exit_stack.enter_async_context(
                self._limiter.acquire(PROCESS_KEY, limit=self._max_in_flight)
            )
        except ConcurrencyLimitExceeded:
            raise Overloaded(
                detail="too many calls in flight on this replica", headers={"Retry-After": "1"}
            ) from None
        try:
            await call.exit_stack.enter_async_context(
                self._limiter.acquire(f"key:{principal.credential_id}")
            )
        except ConcurrencyLimitExceeded as exc:
            raise TooManyRequests(
                detail=f"at most {exc.limit} calls in flight per key", headers={"Retry-After": "1"}
            ) from None
        return None
