from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from ombud.config import RateLimitSettings
from ombud.core.clock import FrozenClock
from ombud.observability.metrics import Metrics
from ombud.ratelimit import (
    DefaultQuotas,
    DenialReason,
    Quota,
    RateLimiter,
    build_rate_limiter,
    quota_checks,
)
from ombud.ratelimit.gcra import GcraResult, Outcome
from ombud.ratelimit.memory import MemoryRateLimitStore
from ombud.ratelimit.quotas import ip_key, token_quota
from ombud.ratelimit.store import Check, RateLimitStoreUnavailable

pytestmark = pytest.mark.anyio

KEY = Quota("per-key", 10, 10)
TENANT = Quota("per-tenant", 1, 2)


class FlakyStore:
    """A shared store that fails while ``down`` and otherwise delegates to memory."""

    def __init__(self, clock: FrozenClock) -> None:
        self.down = False
        self.calls = 0
        self._memory = MemoryRateLimitStore(clock)

    async def apply(
        self, checks: Sequence[Check], cost: int, *, now_us: int | None = None
    ) -> list[GcraResult]:
        self.calls += 1
        if self.down:
            raise RateLimitStoreUnavailable("ConnectionError: refused")
        return await self._memory.apply(checks, cost, now_us=now_us)


class HangingStore:
    async def apply(
        self, checks: Sequence[Check], cost: int, *, now_us: int | None = None
    ) -> list[GcraResult]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def limiter_with(
    store: FlakyStore | HangingStore, clock: FrozenClock, metrics: Metrics, mode: str
) -> RateLimiter:
    return RateLimiter(
        MemoryRateLimitStore(clock),
        metrics,
        clock,
        shared=store,
        failure_mode="fail_closed" if mode == "fail_closed" else "local_fallback",
        timeout_s=0.05,
        probe_interval_s=1.0,
        report_every_s=60.0,
    )


async def test_memory_store_charges_all_keys_or_none() -> None:
    store = MemoryRateLimitStore(FrozenClock())
    both = [("key:a", KEY), ("tenant:t", TENANT)]
    outcomes = [[r.outcome for r in await store.apply(both, 1)] for _ in range(3)]
    assert outcomes[2] == [Outcome.ALLOWED, Outcome.LIMITED]
    # The tenant's refusal did not spend the key's budget: 10 - 2 units are left, not 10 - 3.
    (alone,) = await store.apply([("key:a", KEY)], 1)
    assert alone.remaining == 7


async def test_memory_store_is_exact_under_concurrent_tasks() -> None:
    store = MemoryRateLimitStore(FrozenClock())
    results = await asyncio.gather(*(store.apply([("key:a", KEY)], 1) for _ in range(50)))
    assert sum(r[0].allowed for r in results) == 10


async def test_memory_store_forgets_keys_whose_bucket_is_full_again() -> None:
    clock = FrozenClock()
    store = MemoryRateLimitStore(clock, sweep_interval_s=5)
    for i in range(3000):
        await store.apply([(f"key:{i}", KEY)], 1)
    assert len(store) == 3000
    clock.advance(10)
    await store.apply([("key:new", KEY)], 1)
    assert len(store) == 1
    assert store.sweep() == 0


async def test_the_memory_limiter_counts_each_decision_by_quota() -> None:
    clock, metrics = FrozenClock(), Metrics()
    settings = RateLimitSettings(per_key_rate=1, per_key_burst=2)
    limiter = build_rate_limiter(settings, None, clock, metrics)
    checks = quota_checks(settings, principal_id="p", tenant_id="t")
    decisions = [await limiter.check(checks) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    refused = decisions[2]
    assert refused.limit == "per-key"
    assert refused.reason is DenialReason.RATE_LIMITED
    assert refused.retry_after == pytest.approx(1.0)
    limited = sample(
        metrics, "ombud_ratelimit_decisions_total", limit="per-key", decision="limited"
    )
    assert limited == 1
    clock.advance(1)
    assert (await limiter.check(checks)).allowed


async def test_a_cost_above_every_burst_is_refused_for_good() -> None:
    limiter = build_rate_limiter(RateLimitSettings(), None, FrozenClock(), Metrics())
    decision = await limiter.check([("tokens:p", token_quota("tokens", 6000, 500))], cost=501)
    assert not decision.allowed
    assert decision.reason is DenialReason.COST_EXCEEDS_BURST
    assert decision.retry_after is None


async def test_the_most_restrictive_refusal_decides() -> None:
    limiter = build_rate_limiter(RateLimitSettings(), None, FrozenClock(), Metrics())
    slow, fast = Quota("slow", 0.1, 1), Quota("fast", 10, 1)
    checks = [("a", fast), ("b", slow)]
    await limiter.check(checks)
    decision = await limiter.check(checks)
    assert decision.limit == "slow"
    assert decision.retry_after == pytest.approx(10.0)
    assert decision.decided_by is not None
    assert decision.decided_by.key == "b"


async def test_disabled_or_empty_checks_allow_without_counting() -> None:
    metrics = Metrics()
    settings = RateLimitSettings(enabled=False)
    limiter = build_rate_limiter(settings, None, FrozenClock(), metrics)
    assert (await limiter.check(quota_checks(settings, principal_id="p"))).allowed
    assert (await limiter.check([])).allowed
    assert sample(metrics, "ombud_ratelimit_decisions_total", limit="none", decision="allowed") == 0


async def test_invalid_checks_are_refused_loudly() -> None:
    limiter = build_rate_limiter(RateLimitSettings(), None, FrozenClock(), Metrics())
    with pytest.raises(ValueError, match="once"):
        await limiter.check([("a", KEY), ("a", TENANT)])
    with pytest.raises(ValueError, match="cost"):
        await limiter.check([("a", KEY)], cost=0)


async def test_fail_closed_refuses_while_the_store_is_down_and_recovers() -> None:
    clock, metrics = FrozenClock(), Metrics()
    store = FlakyStore(clock)
    limiter = limiter_with(store, clock, metrics, "fail_closed")
    store.down = True
    first, second = await limiter.check([("a", KEY)]), await limiter.check([("a", KEY)])
    assert not first.allowed
    assert first.reason is DenialReason.BACKEND_UNAVAILABLE
    assert first.backend_failure
    assert first.limit == "backend"
    assert first.retry_after == 1.0
    # The second check did not try the store again within the probe interval.
    assert store.calls == 1
    assert second.backend_failure
    assert sample(metrics, "ombud_ratelimit_backend_failures_total", behaviour="fail_closed") == 2
    store.down = False
    clock.advance(1.0)
    recovered = await limiter.check([("a", KEY)])
    assert recovered.allowed
    assert not recovered.backend_failure


async def test_local_fallback_decides_in_process_while_the_store_is_down() -> None:
    clock, metrics = FrozenClock(), Metrics()
    store = FlakyStore(clock)
    limiter = limiter_with(store, clock, metrics, "local_fallback")
    store.down = True
    decisions = [await limiter.check([("a", TENANT)]) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert all(d.backend_failure for d in decisions)
    assert decisions[2].reason is DenialReason.RATE_LIMITED
    assert sample(metrics, "ombud_ratelimit_backend_failures_total", behaviour="local") == 3


async def test_a_store_that_does_not_answer_times_out_into_the_failure_mode() -> None:
    clock, metrics = FrozenClock(), Metrics()
    limiter = limiter_with(HangingStore(), clock, metrics, "fail_closed")
    decision = await limiter.check([("a", KEY)])
    assert decision.reason is DenialReason.BACKEND_UNAVAILABLE


async def test_an_outage_is_logged_once_then_periodically_then_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, metrics = FrozenClock(), Metrics()
    store = FlakyStore(clock)
    limiter = limiter_with(store, clock, metrics, "local_fallback")
    store.down = True
    with caplog.at_level(logging.INFO, logger="ombud.ratelimit.limiter"):
        for _ in range(150):
            await limiter.check([("a", KEY)])
            clock.advance(0.5)
        store.down = False
        clock.advance(1.0)
        await limiter.check([("a", KEY)])
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "unavailable" in messages[0]
    assert "still unavailable" in messages[1]
    assert "available again" in messages[-1]


def test_default_quotas_and_keys_come_from_settings() -> None:
    settings = RateLimitSettings()
    quotas = DefaultQuotas.from_settings(settings)
    assert (quotas.per_key.rate, quotas.per_key.burst) == (50.0, 100)
    checks = quota_checks(
        settings, principal_id="p1", tenant_id="acme", client_ip="2001:DB8::1", model="local"
    )
    assert [key for key, _ in checks] == [
        "key:p1",
        "tenant:acme",
        "ip:2001:db8::/64",
        "model:local",
    ]
    assert [q.name for _, q in checks] == ["per-key", "per-tenant", "per-ip", "per-model"]
    assert quota_checks(settings, principal_id="p1") == checks[:1]


def test_ip_keys_are_canonical() -> None:
    assert ip_key("192.0.2.7") == "192.0.2.7"
    assert ip_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert ip_key("2001:db8:0:0:1::1") == ip_key("2001:db8::ffff") == "2001:db8::/64"


async def test_only_one_check_probes_a_failed_store_at_a_time() -> None:
    clock, metrics = FrozenClock(), Metrics()
    store = FlakyStore(clock)
    limiter = limiter_with(store, clock, metrics, "local_fallback")
    store.down = True
    await limiter.check([("a", KEY)])
    clock.advance(1.0)
    decisions = await asyncio.gather(*(limiter.check([("a", KEY)]) for _ in range(5)))
    assert store.calls == 2
    assert all(d.backend_failure for d in decisions)
