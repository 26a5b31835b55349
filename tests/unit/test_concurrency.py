from __future__ import annotations

import asyncio

import pytest

from ombud.config import RateLimitSettings
from ombud.observability.metrics import Metrics
from ombud.ratelimit import ConcurrencyLimiter, ConcurrencyLimitExceeded, build_concurrency_limiter

pytestmark = pytest.mark.anyio


def in_flight_gauge(metrics: Metrics, cap: str = "per-key") -> float:
    value = metrics.registry.get_sample_value("ombud_concurrency_in_flight", {"cap": cap})
    return value or 0.0


async def test_calls_past_the_cap_are_refused_and_slots_come_back() -> None:
    metrics = Metrics()
    caps = ConcurrencyLimiter("per-key", 2, metrics)
    async with caps.acquire("a"), caps.acquire("a"):
        assert caps.in_flight("a") == 2
        assert in_flight_gauge(metrics) == 2
        with pytest.raises(ConcurrencyLimitExceeded) as refused:
            async with caps.acquire("a"):
                pytest.fail("admitted past the cap")
        assert (refused.value.key, refused.value.limit) == ("a", 2)
        async with caps.acquire("b"):
            assert caps.in_flight("b") == 1
    assert caps.in_flight("a") == 0
    assert in_flight_gauge(metrics) == 0


async def test_a_slot_is_released_when_the_call_raises() -> None:
    caps = ConcurrencyLimiter("per-key", 1, Metrics())
    with pytest.raises(RuntimeError):
        async with caps.acquire("a"):
            raise RuntimeError("model failed")
    async with caps.acquire("a"):
        assert caps.in_flight("a") == 1


async def test_a_slot_is_released_when_the_call_is_cancelled() -> None:
    metrics = Metrics()
    caps = ConcurrencyLimiter("per-key", 1, metrics)
    entered = asyncio.Event()

    async def call() -> None:
        async with caps.acquire("a"):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(call())
    await entered.wait()
    assert caps.in_flight("a") == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert caps.in_flight("a") == 0
    assert in_flight_gauge(metrics) == 0


async def test_concurrent_tasks_never_exceed_the_cap() -> None:
    caps = ConcurrencyLimiter("per-key", 3, Metrics())
    peak, admitted = 0, 0
    release = asyncio.Event()

    async def call() -> None:
        nonlocal peak, admitted
        try:
            async with caps.acquire("a"):
                admitted += 1
                peak = max(peak, caps.in_flight("a"))
                await release.wait()
        except ConcurrencyLimitExceeded:
            pass

    tasks = [asyncio.create_task(call()) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)
    assert (admitted, peak, caps.in_flight("a")) == (3, 3, 0)


async def test_a_per_call_limit_overrides_the_default() -> None:
    caps = build_concurrency_limiter(RateLimitSettings(max_concurrent_per_key=1), Metrics())
    assert caps.limit == 1
    async with caps.acquire("a", limit=2), caps.acquire("a", limit=2):
        assert caps.in_flight("a") == 2
