from __future__ import annotations

import asyncio
import json
import random
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit
from uuid import uuid4

import anyio
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ombud.config import RateLimitSettings
from ombud.core.clock import FrozenClock
from ombud.observability.metrics import Metrics
from ombud.ratelimit import DenialReason, Quota, RateLimiter, build_rate_limiter
from ombud.ratelimit.gcra import MICROS, Outcome
from ombud.ratelimit.memory import MemoryRateLimitStore
from ombud.ratelimit.redis import RedisRateLimitStore
from ombud.ratelimit.store import RateLimitStoreUnavailable

pytestmark = [pytest.mark.anyio, pytest.mark.redis]

START_US = 1_700_000_000 * MICROS


def client(url: str) -> Redis:
    # No client-side retries: the limiter decides what a failure means.
    return Redis.from_url(
        url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0)
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    connection = client(redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A namespace of this test's own, so parallel workers never share keys; emptied after."""
    namespace = f"ombud:test:rl:{uuid4().hex}:"
    yield namespace
    connection = client(redis_url)
    keys = [key async for key in connection.scan_iter(match=f"{namespace}*")]
    if keys:
        await connection.delete(*keys)
    await connection.aclose()


def failures(metrics: Metrics, behaviour: str) -> float:
    value = metrics.registry.get_sample_value(
        "ombud_ratelimit_backend_failures_total", {"behaviour": behaviour}
    )
    return value or 0.0


async def test_redis_decides_exactly_like_the_memory_store(redis: Redis, prefix: str) -> None:
    shared = RedisRateLimitStore(redis, prefix=prefix)
    local = MemoryRateLimitStore(FrozenClock())
    quotas = [Quota("fast", 20, 5), Quota("slow", 0.5, 3), Quota("odd", 3, 7)]
    rng = random.Random(7)
    now = START_US
    for _ in range(400):
        now += rng.choice([0, 0, 1, 999, 50_000, 333_333, 2 * MICROS])
        chosen = rng.sample(range(len(quotas)), rng.randint(1, len(quotas)))
        checks = [(f"k{i}", quotas[i]) for i in chosen]
        cost = rng.choice([1, 1, 1, 2, 4, 8])
        expected = await local.apply(checks, cost, now_us=now)
        assert await shared.apply(checks, cost, now_us=now) == expected


async def test_a_refusal_by_one_key_charges_no_other(redis: Redis, prefix: str) -> None:
    store = RedisRateLimitStore(redis, prefix=prefix)
    key, tenant = Quota("per-key", 10, 10), Quota("per-tenant", 1, 2)
    both = [("key:a", key), ("tenant:t", tenant)]
    outcomes = [[r.outcome for r in await store.apply(both, 1, now_us=START_US)] for _ in range(3)]
    assert outcomes[2] == [Outcome.ALLOWED, Outcome.LIMITED]
    (alone,) = await store.apply([("key:a", key)], 1, now_us=START_US)
    assert alone.remaining == 7


async def test_keys_are_namespaced_and_expire_when_full_again(redis: Redis, prefix: str) -> None:
    store = RedisRateLimitStore(redis, prefix=prefix)
    (result,) = await store.apply([("key:a", Quota("per-key", 50, 100))], 1)
    assert result.allowed
    ttl_ms = await redis.pttl(f"{prefix}key:a")
    assert 0 < ttl_ms <= 20
    stored = await redis.get(f"{prefix}key:a")
    assert stored is not None
    assert int(stored) == result.tat_us


async def test_the_script_is_loaded_again_after_a_flush(redis: Redis, prefix: str) -> None:
    store = RedisRateLimitStore(redis, prefix=prefix)
    await redis.script_flush()
    (result,) = await store.apply([("key:a", Quota("q", 1, 1))], 1)
    assert result.allowed


async def test_redis_time_is_used_when_no_time_is_given(redis: Redis, prefix: str) -> None:
    store = RedisRateLimitStore(redis, prefix=prefix)
    quota = Quota("slow", 0.001, 2)
    outcomes = [(await store.apply([("key:a", quota)], 1))[0].outcome for _ in range(3)]
    assert outcomes == [Outcome.ALLOWED, Outcome.ALLOWED, Outcome.LIMITED]


_WORKER = """
import asyncio, json, sys
from redis.asyncio import Redis
from ombud.config import RateLimitSettings
from ombud.core.clock import SystemClock
from ombud.observability.metrics import Metrics
from ombud.ratelimit import build_rate_limiter, quota_checks

async def main(url, prefix):
    redis = Redis.from_url(url)
    settings = RateLimitSettings(per_key_rate=0.001, per_key_burst=20)
    limiter = build_rate_limiter(settings, redis, SystemClock(), Metrics(), key_prefix=prefix)
    checks = quota_checks(settings, principal_id="shared")
    decisions = await asyncio.gather(*(limiter.check(checks) for _ in range(40)))
    await redis.aclose()
    print(json.dumps({
        "admitted": sum(d.allowed for d in decisions),
        "failures": sum(d.backend_failure for d in decisions),
    }))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_two_processes_share_one_limit(redis_url: str, prefix: str) -> None:
    reports: list[dict[str, int]] = []

    async def worker() -> None:
        done = await anyio.run_process([sys.executable, "-c", _WORKER, redis_url, prefix])
        reports.append(json.loads(done.stdout))

    async with anyio.create_task_group() as group:
        group.start_soon(worker)
        group.start_soon(worker)
    assert [r["failures"] for r in reports] == [0, 0]
    assert sum(r["admitted"] for r in reports) == 20


async def test_an_outage_fails_closed_and_counts(prefix: str) -> None:
    down = client("redis://127.0.0.1:1/0")
    metrics = Metrics()
    settings = RateLimitSettings(redis_failure_mode="fail_closed")
    limiter = build_rate_limiter(settings, down, FrozenClock(), metrics, key_prefix=prefix)
    decision = await limiter.check([("key:a", Quota("per-key", 1, 5))])
    await down.aclose()
    assert not decision.allowed
    assert decision.backend_failure
    assert decision.reason is DenialReason.BACKEND_UNAVAILABLE
    assert failures(metrics, "fail_closed") == 1


async def test_an_outage_falls_back_to_local_limits(prefix: str) -> None:
    down = client("redis://127.0.0.1:1/0")
    metrics = Metrics()
    settings = RateLimitSettings(redis_failure_mode="local_fallback")
    limiter = build_rate_limiter(settings, down, FrozenClock(), metrics, key_prefix=prefix)
    quota = Quota("per-key", 1, 2)
    decisions = [await limiter.check([("key:a", quota)]) for _ in range(3)]
    await down.aclose()
    assert [d.allowed for d in decisions] == [True, True, False]
    assert all(d.backend_failure for d in decisions)
    assert failures(metrics, "local") == 3


class Proxy:
    """A TCP relay to Redis that can be cut and restored, to stage an outage."""

    def __init__(self, host: str, port: int) -> None:
        self.up = True
        self._target = (host, port)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def cut(self) -> None:
        self.up = False
        for writer in self._writers:
            writer.close()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def test_the_limiter_recovers_when_redis_returns(redis_url: str, prefix: str) -> None:
    target = urlsplit(redis_url)
    proxy = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    relayed = client(f"redis://127.0.0.1:{await proxy.start()}/0")
    clock, metrics = FrozenClock(), Metrics()
    settings = RateLimitSettings(redis_failure_mode="fail_closed", redis_probe_interval_s=5)
    limiter: RateLimiter = build_rate_limiter(settings, relayed, clock, metrics, key_prefix=prefix)
    quota = Quota("per-key", 1, 100)
    try:
        assert (await limiter.check([("key:a", quota)])).allowed
        proxy.cut()
        assert not (await limiter.check([("key:a", quota)])).allowed
        proxy.up = True
        # Within the probe interval Redis is not tried again; after it, it is.
        assert (await limiter.check([("key:a", quota)])).backend_failure
        clock.advance(5)
        recovered = await limiter.check([("key:a", quota)])
        assert recovered.allowed
        assert not recovered.backend_failure
        assert recovered.states[0].remaining == 98
        assert failures(metrics, "fail_closed") == 2
    finally:
        await relayed.aclose()
        await proxy.close()


async def test_a_store_error_is_reported_as_unavailable(prefix: str) -> None:
    down = client("redis://127.0.0.1:1/0")
    store = RedisRateLimitStore(down, prefix=prefix)
    with pytest.raises(RateLimitStoreUnavailable, match="ConnectionError"):
        await store.apply([("key:a", Quota("q", 1, 1))], 1)
    await down.aclose()
