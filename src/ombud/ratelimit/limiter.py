"""The rate limiter: one atomic check of a request against all of its quotas.

A request is checked against every quota that applies to it (its API key, tenant, client IP and
model) in one step: it is admitted and charged to all of them, or refused and charged to none.
With Redis configured the limits are shared by every replica; when Redis fails, the configured
failure mode decides (refuse, or decide with this process's own store) until Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from redis.asyncio import Redis

from ombud.config import RateLimitSettings
from ombud.core.clock import Clock
from ombud.observability.metrics import Metrics
from ombud.ratelimit.gcra import MICROS, GcraResult, Outcome, Quota
from ombud.ratelimit.memory import MemoryRateLimitStore
from ombud.ratelimit.redis import DEFAULT_PREFIX, RedisRateLimitStore
from ombud.ratelimit.store import Check, RateLimitStore, RateLimitStoreUnavailable

log = logging.getLogger(__name__)

BACKEND_LIMIT = "backend"
"""The ``limit`` of a decision made because the shared store failed (``fail_closed``)."""

FailureMode = Literal["fail_closed", "local_fallback"]


class DenialReason(StrEnum):
    """Why a request was refused."""

    RATE_LIMITED = "rate_limited"
    COST_EXCEEDS_BURST = "cost_exceeds_burst"
    """The request weighs more than the quota's burst: it can never be admitted."""
    BACKEND_UNAVAILABLE = "backend_unavailable"
    """The shared store failed and the failure mode is ``fail_closed``."""


@dataclass(frozen=True, slots=True)
class QuotaState:
    """One quota's state after a check: what the headers report for it.

    Attributes:
        key: The checked key, e.g. ``tenant:acme``.
        quota: The quota that applies to the key.
        outcome: What GCRA decided for this key alone.
        remaining: Units that can still be admitted now.
        reset_after: Seconds until the key's bucket is full again.
        retry_after: Seconds until this request would be admitted by this key; ``None`` if no
            wait can admit it.
    """

    key: str
    quota: Quota
    outcome: Outcome
    remaining: int
    reset_after: float
    retry_after: float | None

    @classmethod
    def of(cls, check: Check, result: GcraResult) -> QuotaState:
        """The state of ``check`` from a store's result for it."""
        retry = result.retry_after_us
        return cls(
            key=check[0],
            quota=check[1],
            outcome=result.outcome,
            remaining=result.remaining,
            reset_after=result.reset_after_us / MICROS,
            retry_after=None if retry is None else retry / MICROS,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one check.

    Attributes:
        allowed: Whether the request may proceed (it has been charged to every quota).
        limit: The quota that decided: on a refusal the most restrictive refusing one, else the
            one with the fewest units left; ``backend`` when a store failure refused it.
        reason: Why it was refused; ``None`` when allowed.
        retry_after: Seconds to wait before retrying; ``None`` when allowed or when retrying
            cannot help.
        states: Every checked quota's state, in the order checked.
        backend_failure: The shared store failed for this request; the decision was made by the
            failure mode (refused, or decided by this process alone).
    """

    allowed: bool
    limit: str
    reason: DenialReason | None = None
    retry_after: float | None = None
    states: tuple[QuotaState, ...] = ()
    backend_failure: bool = False

    @property
    def decided_by(self) -> QuotaState | None:
        """The state of the deciding quota, if a quota decided."""
        return next((s for s in self.states if s.quota.name == self.limit), None)


def combine(checks: Sequence[Check], results: Sequence[GcraResult]) -> Decision:
    """Fold per-key results into one decision, naming the most restrictive quota.

    Args:
        checks: The keys and quotas, in order.
        results: The store's result for each, in the same order.

    Returns:
        Allowed when every key allowed; else refused by the quota whose refusal lasts longest
        (one that can never admit the request first).
    """
    states = tuple(QuotaState.of(c, r) for c, r in zip(checks, results, strict=True))
    refused = [s for s in states if s.outcome is not Outcome.ALLOWED]
    if not refused:
        tightest = min(states, key=lambda s: s.remaining)
        return Decision(allowed=True, limit=tightest.quota.name, states=states)
    worst = max(refused, key=lambda s: (s.retry_after is None, s.retry_after or 0.0, -s.remaining))
    reason = (
        DenialReason.COST_EXCEEDS_BURST
        if worst.outcome is Outcome.COST_EXCEEDS_BURST
        else DenialReason.RATE_LIMITED
    )
    return Decision(
        allowed=False,
        limit=worst.quota.name,
        reason=reason,
        retry_after=worst.retry_after,
        states=states,
    )


class _BackendHealth:
    """Tracks shared-store failures: when to try the store again, and when to say so in logs.

    After a failure the store is skipped for ``probe_interval_s``, so an outage costs one
    timeout per interval rather than one per request; then one check tries it again.
    Logs are one line when the store fails, one per ``report_every_s`` while it stays down,
    and one when it recovers.
    """

    def __init__(
        self, clock: Clock, mode: FailureMode, probe_interval_s: float, report_every_s: float
    ) -> None:
        self._clock = clock
        self._mode = mode
        self.probe_interval = probe_interval_s
        self._report_every = report_every_s
        self._retry_at: float | None = None
        self._reported_at = 0.0
        self._failed_since_report = 0

    def should_try(self) -> bool:
        if self._retry_at is None:
            return True
        now = self._clock.monotonic()
        if now < self._retry_at:
            return False
        # This check is the probe: the others keep to the failure mode until it has answered,
        # so a store that hangs is waited on by one request, not by all of them.
        self._retry_at = now + self.probe_interval
        return True

    def failed(self, error: str | None) -> None:
        now = self._clock.monotonic()
        self._failed_since_report += 1
        if error is not None:
            first = self._retry_at is None
            self._retry_at = now + self.probe_interval
            if first:
                log.warning("rate-limit store unavailable (%s); applying %s", error, self._mode)
                self._reported_at, self._failed_since_report = now, 0
                return
        if now - self._reported_at >= self._report_every:
            log.warning(
                "rate-limit store still unavailable; %d decisions made by %s since last report",
                self._failed_since_report,
                self._mode,
            )
            self._reported_at, self._failed_since_report = now, 0

    def succeeded(self) -> None:
        if self._retry_at is not None:
            log.info("rate-limit store available again")
            self._retry_at, self._failed_since_report = None, 0


class RateLimiter:
    """Checks requests against their quotas, atomically across all of a request's keys."""

    def __init__(
        self,
        local: MemoryRateLimitStore,
        metrics: Metrics,
        clock: Clock,
        *,
        shared: RateLimitStore | None = None,
        failure_mode: FailureMode = "local_fallback",
        timeout_s: float = 0.5,
        probe_interval_s: float = 1.0,
        report_every_s: float = 60.0,
        enabled: bool = True,
    ) -> None:
        """Build a limiter; most callers use :func:`build_rate_limiter` instead.

        Args:
            local: This process's store: the only one without ``shared``, else the fallback.
            metrics: Where decisions and store failures are counted.
            clock: Time for retrying a failed shared store and for throttling its logs.
            shared: The store shared by every replica (Redis), if any.
            failure_mode: What to do while ``shared`` fails: refuse (``fail_closed``) or decide
                with ``local`` (``local_fallback``).
            timeout_s: Longest a check waits for ``shared``.
            probe_interval_s: How long ``shared`` is skipped after it failed.
            report_every_s: At most one log line this often while ``shared`` stays down.
            enabled: When false every check is allowed and nothing is counted.
        """
        self._local = local
        self._shared = shared
        self._metrics = metrics
        self._mode = failure_mode
        self._timeout = timeout_s
        self._enabled = enabled
        self._health = _BackendHealth(clock, failure_mode, probe_interval_s, report_every_s)

    async def check(self, checks: Sequence[Check], cost: int = 1) -> Decision:
        """Admit a request of weight ``cost`` against every quota in ``checks``, or refuse it.

        Args:
            checks: Distinct keys and their quotas, e.g. from
                :func:`ombud.ratelimit.quotas.quota_checks`.
            cost: The request's weight: 1 for a request, its tokens for a token quota.

        Returns:
            The decision. When allowed, every key has been charged ``cost``; when refused, none
            has. ``backend_failure`` is set when the shared store failed for this request.
        """
        if cost < 1:
            raise ValueError("cost must be at least 1")
        if len({key for key, _ in checks}) != len(checks):
            raise ValueError("each key may be checked only once per request")
        if not self._enabled or not checks:
            return Decision(allowed=True, limit="none")
        decision = await self._decide(checks, cost)
        self._metrics.ratelimit_decisions.labels(
            limit=decision.limit, decision="allowed" if decision.allowed else "limited"
        ).inc()
        return decision

    async def _decide(self, checks: Sequence[Check], cost: int) -> Decision:
        if self._shared is None:
            return combine(checks, await self._local.apply(checks, cost))
        error: str | None = None
        if self._health.should_try():
            try:
                async with asyncio.timeout(self._timeout):
                    results = await self._shared.apply(checks, cost)
            except RateLimitStoreUnavailable as exc:
                error = str(exc)
            except TimeoutError:
                error = f"no answer within {self._timeout}s"
            else:
                self._health.succeeded()
                return combine(checks, results)
        self._health.failed(error)
        return self._fallback(checks, cost)

    def _fallback(self, checks: Sequence[Check], cost: int) -> Decision:
        if self._mode == "fail_closed":
            self._metrics.ratelimit_backend_failures.labels(behaviour="fail_closed").inc()
            return Decision(
                allowed=False,
                limit=BACKEND_LIMIT,
                reason=DenialReason.BACKEND_UNAVAILABLE,
                retry_after=max(1.0, self._health.probe_interval),
                backend_failure=True,
            )
        self._metrics.ratelimit_backend_failures.labels(behaviour="local").inc()
        decision = combine(checks, self._local.apply_now(checks, cost))
        return replace(decision, backend_failure=True)


def build_rate_limiter(
    settings: RateLimitSettings,
    redis: Redis | None,
    clock: Clock,
    metrics: Metrics,
    *,
    key_prefix: str = DEFAULT_PREFIX,
) -> RateLimiter:
    """The rate limiter the composition root builds once per process.

    Args:
        settings: ``OMBUD_RATELIMIT__*``.
        redis: The shared Redis client, or ``None`` for the embedded, per-process limiter.
        clock: Time for the in-process store and for retrying a failed Redis.
        metrics: Where decisions and Redis failures are counted.
        key_prefix: Namespace of the Redis keys.

    Returns:
        A limiter backed by Redis with the configured failure mode, or by memory alone.
    """
    shared = None if redis is None else RedisRateLimitStore(redis, prefix=key_prefix)
    return RateLimiter(
        MemoryRateLimitStore(clock),
        metrics,
        clock,
        shared=shared,
        failure_mode=settings.redis_failure_mode,
        timeout_s=settings.redis_timeout_s,
        probe_interval_s=settings.redis_probe_interval_s,
        enabled=settings.enabled,
    )
