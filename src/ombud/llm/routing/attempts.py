"""Running one call's attempts over a plan: timeouts, retries with backoff, breakers, fallbacks.

The order of attempts is the plan's (the alias's own deployments, then its fallbacks), cycling
back over the alias's own deployments while attempts remain. A deployment whose breaker refuses
is skipped (and recorded as ``breaker_open``) without costing an attempt.

Between attempts the runner waits a backoff with full jitter: a uniform draw from
``[0, min(backoff_max_s, backoff_base_s × 2**n))`` for the n-th retry, which spreads retries of
many failing calls instead of synchronising them. An upstream's ``Retry-After`` is honoured when
it is short (≤ ``backoff_max_s``); a longer one is not worth holding the client for, so the next
attempt goes to another deployment at once, or the call gives up when the next one would be the
same deployment again. Every retry spends from the shared :class:`RetryBudget` first.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from ombud.core.clock import Clock
from ombud.llm.catalog import DeploymentConfig, RoutingConfig
from ombud.llm.routing.breaker import CircuitBreaker
from ombud.llm.routing.budget import RetryBudget
from ombud.llm.types import UpstreamError
from ombud.observability.metrics import Metrics

T = TypeVar("T")

AttemptResult = Literal["ok", "status", "timeout", "connection", "protocol", "breaker_open"]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt (or one deployment skipped because its breaker refused)."""

    deployment: str
    result: AttemptResult
    status: int | None
    duration_s: float


@dataclass(frozen=True, slots=True)
class Attempted(Generic[T]):
    """A call's answer, with the deployment that gave it and the attempts it took."""

    value: T
    deployment: DeploymentConfig
    attempts: tuple[AttemptRecord, ...]
    fallback: bool
    """Answered by one of the plan's fallbacks rather than the alias's own deployments."""


class AllAttemptsFailed(Exception):
    """Every attempt the call was allowed failed; ``last`` is the failure to show the client."""

    def __init__(self, last: UpstreamError, attempts: list[AttemptRecord]) -> None:
        super().__init__(last.message)
        self.last = last
        self.attempts = attempts


def backoff_delay(retry: int, *, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full-jitter backoff before retry number ``retry`` (1 for the first retry)."""
    cap = min(max_s, base_s * 2.0 ** (retry - 1))
    return rng.random() * cap


def _default_retryable(error: BaseException) -> bool:
    return isinstance(error, UpstreamError) and error.retryable


class AttemptRunner:
    """Shared state of all calls' attempts: breakers, in-flight counts and the retry budget."""

    def __init__(
        self,
        config: RoutingConfig,
        breakers: dict[str, CircuitBreaker],
        *,
        clock: Clock,
        metrics: Metrics,
        rng: random.Random,
        sleep: Sleep,
    ) -> None:
        self._config = config
        self._breakers = breakers
        self._clock = clock
        self._metrics = metrics
        self._rng = rng
        self._sleep = sleep
        self.budget = RetryBudget(
            ratio=config.retry_budget_ratio,
            min_per_s=config.retry_budget_min_per_s,
            window_s=config.retry_budget_window_s,
            clock=clock,
        )
        self.in_flight: defaultdict[str, int] = defaultdict(int)

    async def run(
        self,
        alias: str,
        order: Sequence[DeploymentConfig],
        primary: Sequence[DeploymentConfig],
        attempt: Callable[[DeploymentConfig], Awaitable[T]],
        is_retryable: Callable[[BaseException], bool] | None = None,
    ) -> Attempted[T]:
        """Try ``order`` (then ``primary`` again, cyclically) until an attempt succeeds."""
        retryable = is_retryable or _default_retryable
        fallback_ids = {d.id for d in order} - {d.id for d in primary}
        cycle = _Cycle(order, primary)
        records: list[AttemptRecord] = []
        skipped: set[str] = set()
        last: UpstreamError | None = None
        failed = ""
        self.budget.record_first_attempt()
        for number in range(self._config.max_attempts):
            if last is not None and not await self._wait_before_retry(number, last, failed, cycle):
                break
            deployment = self._next_allowed(cycle, records, skipped)
            if deployment is None:
                break
            if number > 0:
                self._metrics.llm_retries.labels(deployment=deployment.id).inc()
            try:
                value = await self._one(deployment, attempt, records, retryable)
            except _Retryable as failure:
                last, failed = failure.error, deployment.id
                continue
            fallback = deployment.id in fallback_ids
            if fallback:
                self._metrics.llm_fallbacks.labels(alias=alias).inc()
            return Attempted(value, deployment, tuple(records), fallback)
        if last is None:
            refused = ", ".join(r.deployment for r in records) or "no deployment"
            last = UpstreamError("connection", f"circuit open for {refused}")
        raise AllAttemptsFailed(last, records)

    async def _wait_before_retry(
        self, number: int, last: UpstreamError, failed: str, cycle: _Cycle
    ) -> bool:
        """Spend a retry from the budget and wait the backoff; False: stop retrying."""
        config = self._config
        delay = backoff_delay(
            number, base_s=config.backoff_base_s, max_s=config.backoff_max_s, rng=self._rng
        )
        if last.retry_after_s is not None:
            if last.retry_after_s <= config.backoff_max_s:
                delay = max(delay, last.retry_after_s)
            else:
                upcoming = cycle.peek(lambda d: self._breakers[d.id].state != "open")
                if upcoming is None or upcoming.id == failed:
                    return False
                delay = 0.0
        if not self.budget.try_retry():
            self._metrics.llm_retry_budget_exhausted.inc()
            return False
        if delay > 0:
            await self._sleep(delay)
        return True

    def _next_allowed(
        self, cycle: _Cycle, records: list[AttemptRecord], skipped: set[str]
    ) -> DeploymentConfig | None:
        """The next deployment whose breaker lets the attempt through (reserving a half-open
        probe slot); each refusing deployment is recorded once per call."""
        for _ in range(cycle.span):
            deployment = cycle.take()
            if self._breakers[deployment.id].allow():
                return deployment
            if deployment.id not in skipped:
                skipped.add(deployment.id)
                records.append(AttemptRecord(deployment.id, "breaker_open", None, 0.0))
                self._metrics.llm_upstream_attempts.labels(
                    deployment=deployment.id, result="breaker_open"
                ).inc()
        return None

    async def _one(
        self,
        deployment: DeploymentConfig,
        attempt: Callable[[DeploymentConfig], Awaitable[T]],
        records: list[AttemptRecord],
        retryable: Callable[[BaseException], bool],
    ) -> T:
        """One attempt under its timeout; raises _Retryable when it failed retryably, and a
        non-retryable error as it is."""
        breaker = self._breakers[deployment.id]
        self.in_flight[deployment.id] += 1
        started = self._clock.monotonic()
        settled = False
        try:
            try:
                # asyncio's own timeout: an anyio cancel scope here cost more CPU than the
                # rest of the attempt bookkeeping together (measured in bench/llm.py).
                async with asyncio.timeout(deployment.timeout_s):
                    value = await attempt(deployment)
            except TimeoutError:
                error: Exception = UpstreamError(
                    "timeout", f"{deployment.id} did not answer within {deployment.timeout_s:g}s"
                )
            except Exception as caught:  # noqa: BLE001 - classified below, re-raised if fatal
                error = caught
            else:
                breaker.record_success()
                settled = True
                self._record(records, deployment, "ok", None, started)
                return value
            upstream = _as_upstream(error, deployment)
            self._record(records, deployment, upstream.kind, upstream.status, started)
            if not retryable(error):
                raise error
            breaker.record_failure()
            settled = True
            raise _Retryable(upstream) from error
        finally:
            self.in_flight[deployment.id] -= 1
            if not settled:
                breaker.release()

    def _record(
        self,
        records: list[AttemptRecord],
        deployment: DeploymentConfig,
        result: AttemptResult,
        status: int | None,
        started: float,
    ) -> None:
        duration = max(0.0, self._clock.monotonic() - started)
        records.append(AttemptRecord(deployment.id, result, status, duration))
        self._metrics.llm_upstream_attempts.labels(deployment=deployment.id, result=result).inc()
        self._metrics.llm_upstream_duration.labels(deployment=deployment.id).observe(duration)


class _Retryable(Exception):
    """An attempt failed in a way another attempt may not: carries the failure to the loop."""

    def __init__(self, error: UpstreamError) -> None:
        super().__init__(error.message)
        self.error = error


def _as_upstream(error: Exception, deployment: DeploymentConfig) -> UpstreamError:
    """The error as an UpstreamError: other exceptions (a caller-declared retryable one, or an
    adapter's bug) read as a protocol failure, with a message that reveals nothing inside."""
    if isinstance(error, UpstreamError):
        return error
    return UpstreamError("protocol", f"{deployment.id}: {type(error).__name__}")


class _Cycle:
    """The attempt order: the plan's deployments once, then the alias's own ones round and round
    (or the whole plan again when the alias has none of its own)."""

    def __init__(
        self, order: Sequence[DeploymentConfig], primary: Sequence[DeploymentConfig]
    ) -> None:
        self._order = order
        self._again = primary or order
        self._position = 0
        self.span = len(order)
        """Steps that visit every deployment still reachable from any position."""

    def _at(self, position: int) -> DeploymentConfig:
        if position < len(self._order):
            return self._order[position]
        return self._again[(position - len(self._order)) % len(self._again)]

    def take(self) -> DeploymentConfig:
        deployment = self._at(self._position)
        self._position += 1
        return deployment

    def peek(self, usable: Callable[[DeploymentConfig], bool]) -> DeploymentConfig | None:
        """The next usable deployment, without moving."""
        for step in range(self.span):
            deployment = self._at(self._position + step)
            if usable(deployment):
                return deployment
        return None
