"""Circuit breaker per deployment: stop sending calls to an upstream that keeps failing.

``closed`` lets every call through and counts consecutive retryable failures; at
``failure_threshold`` it turns ``open`` and refuses everything for ``cooldown_s`` (measured on the
injected clock's monotonic time), so a broken upstream costs no timeouts and recovers without
being hammered. After the cooldown it is ``half_open``: at most ``half_open_probes`` calls at once
are let through as probes. A probe's success closes the breaker, a probe's failure opens it again
for another cooldown.

Only failures that say something about the upstream count (timeouts, connection and protocol
errors, 408/409/429/5xx). A non-retryable 4xx is the request's own fault: the caller reports it
with :meth:`CircuitBreaker.release`, which neither counts it nor resets the count.

The open → half-open change happens lazily, when the state is next read: no timer runs.
"""

from __future__ import annotations

from typing import Literal

from ombud.core.clock import Clock
from ombud.llm.catalog import BreakerConfig
from ombud.observability.metrics import Metrics

BreakerState = Literal["closed", "half_open", "open"]

_GAUGE: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}


class CircuitBreaker:
    """One deployment's breaker. Not thread-safe: it lives on one event loop."""

    def __init__(
        self, deployment: str, config: BreakerConfig, *, clock: Clock, metrics: Metrics
    ) -> None:
        self.deployment = deployment
        self._config = config
        self._clock = clock
        self._metrics = metrics
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        metrics.llm_breaker_state.labels(deployment=deployment).set(0)

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose cooldown is over reads as half-open."""
        if (
            self._state == "open"
            and self._clock.monotonic() - self._opened_at >= self._config.cooldown_s
        ):
            self._probes = 0
            self._move("half_open")
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def retry_in_s(self) -> float:
        """Seconds until an open breaker lets probes through (0 unless open)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self._opened_at + self._config.cooldown_s - self._clock.monotonic())

    def allow(self) -> bool:
        """Whether a call may go to the deployment now; half-open, this reserves a probe slot,
        which the call's outcome (:meth:`record_success`, :meth:`record_failure` or
        :meth:`release`) gives back."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probes >= self._config.half_open_probes:
            return False
        self._probes += 1
        return True

    def record_success(self) -> None:
        """The upstream answered: the failure count restarts; a half-open breaker closes."""
        state = self.state
        if state == "open":
            # A call let through before the breaker opened: the probes decide, not it.
            return
        self._failures = 0
        if state == "half_open":
            self._probes = 0
            self._move("closed")

    def record_failure(self) -> None:
        """A retryable failure: counts toward opening; a half-open breaker opens again."""
        state = self.state
        if state == "open":
            return
        if state == "half_open":
            self._probes = 0
            self._open()
            return
        self._failures += 1
        if self._failures >= self._config.failure_threshold:
            self._open()

    def release(self) -> None:
        """A call that ended without a verdict on the upstream (the request's own fault, or
        cancelled): give back its probe slot, if any, and count nothing."""
        if self.state == "half_open" and self._probes > 0:
            self._probes -= 1

    def _open(self) -> None:
        self._opened_at = self._clock.monotonic()
        self._failures = 0
        self._move("open")

    def _move(self, state: BreakerState) -> None:
        self._state = state
        self._metrics.llm_breaker_state.labels(deployment=self.deployment).set(_GAUGE[state])
        self._metrics.llm_breaker_transitions.labels(deployment=self.deployment, state=state).inc()
