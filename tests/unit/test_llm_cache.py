from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ombud.core.clock import FrozenClock
from ombud.llm.cache import (
    CachedAnswer,
    CacheKey,
    CacheUnavailable,
    ResponseCache,
    cache_directive,
    cache_key,
)
from ombud.llm.types import ChatRequest, EmbeddingRequest, Message
from ombud.observability.metrics import Metrics

pytestmark = pytest.mark.anyio

TTL = 60.0
PLAN = [("openai-east", "2024-08-06"), ("azure-west", "2024-08-06")]


def client(url: str) -> Redis:
    # No client-side retries: a failure must reach the cache at once.
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
    """A namespace of this test's own, emptied afterwards."""
    namespace = f"ombud:test:llmcache:{uuid4().hex}"
    yield namespace
    connection = client(redis_url)
    keys = [key async for key in connection.scan_iter(match=f"{namespace}:*")]
    if keys:
        await connection.delete(*keys)
    await connection.aclose()


def chat(**changes: Any) -> ChatRequest:
    request = ChatRequest(
        model="gpt-4o",
        messages=[Message("user", "What is the capital of France?")],
        system="Answer briefly.",
        max_tokens=50,
        temperature=0.0,
        top_p=1.0,
        stop=["\n\n"],
        seed=7,
    )
    return dataclasses.replace(request, **changes)


def key_of(
    request: ChatRequest | EmbeddingRequest,
    *,
    tenant: str = "acme",
    subject: str | None = None,
    route: str = "/v1/chat/completions",
    alias: str = "gpt-4o",
    plan: list[tuple[str, str]] | None = None,
) -> CacheKey:
    return cache_key(
        tenant_id=tenant,
        subject=subject,
        route=route,
        alias=alias,
        deployment_versions=PLAN if plan is None else plan,
        request=request,
    )


def answer(text: str = "Paris.") -> CachedAnswer:
    return CachedAnswer(
        kind="chat",
        text=text,
        finish_reason="stop",
        vectors=None,
        usage_input_tokens=12,
        usage_output_tokens=2,
        deployment="openai-east",
        model="gpt-4o-2024-08-06",
        created_at=1_767_225_600.0,
    )


def make_cache(
    clock: FrozenClock,
    metrics: Metrics,
    redis: Redis | None = None,
    prefix: str = "ombud:llmcache",
    *,
    max_entries: int = 100,
    max_entry_bytes: int = 64 * 1024,
) -> ResponseCache:
    return ResponseCache(
        clock=clock,
        metrics=metrics,
        redis=redis,
        ttl_s=TTL,
        max_entries=max_entries,
        max_entry_bytes=max_entry_bytes,
        prefix=prefix,
    )


def counted(metrics: Metrics, tier: str, result: str) -> float:
    value = metrics.registry.get_sample_value(
        "ombud_llm_cache_total", {"tier": tier, "result": result}
    )
    return value or 0.0


# Keys ------------------------------------------------------------------------------------------


def test_same_request_same_key() -> None:
    first, second = key_of(chat()), key_of(chat())
    assert first == second
    assert len(first.digest) == 64
    assert int(first.digest, 16) >= 0


def test_stream_user_and_subject_do_not_change_the_digest() -> None:
    base = key_of(chat())
    assert key_of(chat(stream=True)).digest == base.digest
    assert key_of(chat(user="end-user-42")).digest == base.digest
    assert key_of(chat(), subject="subject-1").digest == base.digest
    assert key_of(chat(), subject="subject-1").subject == "subject-1"


@pytest.mark.parametrize(
    "changes",
    [
        {"messages": [Message("user", "What is the capital of Spain?")]},
        {"messages": [Message("assistant", "What is the capital of France?")]},
        {"messages": [Message("user", "What is the capital of France? ")]},
        {"messages": [Message("user", "What is the capital of France?")] * 2},
        {"system": "Answer at length."},
        {"system": None},
        {"max_tokens": 51},
        {"max_tokens": None},
        {"temperature": 0.7},
        {"temperature": None},
        {"top_p": 0.9},
        {"stop": ["END"]},
        {"stop": []},
        {"seed": 8},
        {"seed": None},
    ],
)
def test_every_semantic_field_changes_the_key(changes: dict[str, Any]) -> None:
    assert key_of(chat(**changes)).digest != key_of(chat()).digest


def test_plan_tenant_route_and_alias_change_the_key() -> None:
    base = key_of(chat()).digest
    assert key_of(chat(), plan=[("openai-east", "2024-11-20"), PLAN[1]]).digest != base
    assert key_of(chat(), plan=[PLAN[0]]).digest != base
    assert key_of(chat(), tenant="globex").digest != base
    assert key_of(chat(), route="/v1/messages").digest != base
    assert key_of(chat(), alias="gpt-4o-mini").digest != base


def test_text_boundaries_are_part_of_the_key() -> None:
    split = chat(messages=[Message("user", "ab"), Message("user", "c")])
    moved = chat(messages=[Message("user", "a"), Message("user", "bc")])
    assert key_of(split).digest != key_of(moved).digest
    assert key_of(chat(system="")).digest != key_of(chat(system=None)).digest
    # Any text is hashable, unpaired surrogates included.
    assert key_of(chat(messages=[Message("user", "\ud800")])).digest


def test_plan_order_does_not_change_the_key() -> None:
    assert key_of(chat(), plan=list(reversed(PLAN))).digest == key_of(chat()).digest


def test_numbers_and_line_endings_are_normalised() -> None:
    base = key_of(chat()).digest
    assert key_of(chat(temperature=0, top_p=1)).digest == base
    crlf = chat(
        system="Answer\r\nbriefly.",
        messages=[Message("user", "Line one\r\nline two")],
    )
    lf = chat(system="Answer\nbriefly.", messages=[Message("user", "Line one\nline two")])
    assert key_of(crlf).digest == key_of(lf).digest
    # Only \r\n pairs are normalised: a lone \r stays as sent.
    lone_cr = chat(system="Answer\nbriefly.", messages=[Message("user", "Line one\rline two")])
    assert key_of(lone_cr).digest != key_of(lf).digest


def test_embedding_keys() -> None:
    request = EmbeddingRequest(model="embed", inputs=["alpha", "beta"], dimensions=256)
    base = key_of(request, route="/v1/embeddings").digest
    same = EmbeddingRequest(model="embed", inputs=["alpha", "beta"], dimensions=256, user="u")
    assert key_of(same, route="/v1/embeddings").digest == base
    for other in (
        EmbeddingRequest(model="embed", inputs=["alpha"], dimensions=256),
        EmbeddingRequest(model="embed", inputs=["beta", "alpha"], dimensions=256),
        EmbeddingRequest(model="embed", inputs=["alpha", "beta"], dimensions=None),
        # Embedding inputs are exact: a vector answers these bytes only.
        EmbeddingRequest(model="embed", inputs=["alpha\r\n", "beta"], dimensions=256),
    ):
        assert key_of(other, route="/v1/embeddings").digest != base


# Memory tier ----------------------------------------------------------------------------------


async def test_memory_hit_and_metrics() -> None:
    metrics = Metrics()
    cache = make_cache(FrozenClock(), metrics)
    key = key_of(chat())
    assert await cache.get(key) is None
    await cache.put(key, answer())
    assert await cache.get(key_of(chat(stream=True))) == (answer(), "memory")
    assert counted(metrics, "memory", "miss") == 1
    assert counted(metrics, "memory", "store") == 1
    assert counted(metrics, "memory", "hit") == 1
    assert counted(metrics, "redis", "miss") == 0
    cache.bypass()
    assert counted(metrics, "memory", "bypass") == 1


async def test_memory_entries_expire_after_the_ttl() -> None:
    clock = FrozenClock()
    cache = make_cache(clock, Metrics())
    key = key_of(chat())
    await cache.put(key, answer())
    clock.advance(TTL - 1)
    assert await cache.get(key) is not None
    clock.advance(1)
    assert await cache.get(key) is None


async def test_least_recently_used_entry_is_evicted() -> None:
    cache = make_cache(FrozenClock(), Metrics(), max_entries=2)
    a, b, c = (key_of(chat(seed=seed)) for seed in (1, 2, 3))
    await cache.put(a, answer("a"))
    await cache.put(b, answer("b"))
    assert await cache.get(a) is not None  # a is now the most recently used
    await cache.put(c, answer("c"))
    assert await cache.get(b) is None
    assert await cache.get(a) == (answer("a"), "memory")
    assert await cache.get(c) == (answer("c"), "memory")


async def test_tenants_never_share_an_entry() -> None:
    cache = make_cache(FrozenClock(), Metrics())
    await cache.put(key_of(chat(), tenant="acme"), answer())
    assert await cache.get(key_of(chat(), tenant="globex")) is None


@pytest.mark.redis
async def test_oversize_answers_are_not_stored(redis: Redis, prefix: str) -> None:
    cache = make_cache(FrozenClock(), Metrics(), redis, prefix, max_entry_bytes=1024)
    key = key_of(chat())
    await cache.put(key, answer("x" * 2000))
    assert await cache.get(key) is None
    assert await redis.exists(f"{prefix}:{key.tenant_id}:{key.digest}") == 0
    await cache.put(key, answer("short"))
    assert await cache.get(key) == (answer("short"), "memory")


async def test_memory_only_forget_subject_and_tenant() -> None:
    cache = make_cache(FrozenClock(), Metrics())
    mine, other, theirs = (
        key_of(chat(seed=1), subject="s1"),
        key_of(chat(seed=2)),
        key_of(chat(seed=3), tenant="globex", subject="s1"),
    )
    for key in (mine, other, theirs):
        await cache.put(key, answer())
    assert await cache.forget_subject("s1") == 2
    assert await cache.get(mine) is None
    assert await cache.get(theirs) is None
    assert await cache.get(other) is not None
    assert await cache.forget_tenant("acme") == 1
    assert await cache.get(other) is None
    assert await cache.forget_subject("s1") == 0


# Redis tier -----------------------------------------------------------------------------------


@pytest.mark.redis
async def test_another_replica_sees_the_entry_and_promotes_it(redis: Redis, prefix: str) -> None:
    clock, metrics = FrozenClock(), Metrics()
    writer = make_cache(clock, Metrics(), redis, prefix)
    reader = make_cache(clock, metrics, redis, prefix)
    key = key_of(chat())
    await writer.put(key, answer())
    ttl_ms = await redis.pttl(f"{prefix}:{key.tenant_id}:{key.digest}")
    assert TTL * 1000 - 5000 < ttl_ms <= TTL * 1000
    assert await reader.get(key) == (answer(), "redis")
    assert await reader.get(key) == (answer(), "memory")
    assert counted(metrics, "memory", "miss") == 1
    assert counted(metrics, "redis", "hit") == 1
    assert counted(metrics, "memory", "hit") == 1


@pytest.mark.redis
async def test_redis_only_when_the_memory_tier_is_off(redis: Redis, prefix: str) -> None:
    metrics = Metrics()
    cache = make_cache(FrozenClock(), metrics, redis, prefix, max_entries=0)
    key = key_of(chat())
    assert await cache.get(key) is None
    await cache.put(key, answer())
    assert await cache.get(key) == (answer(), "redis")
    assert await cache.get(key) == (answer(), "redis")
    assert counted(metrics, "memory", "miss") == 0
    assert counted(metrics, "redis", "miss") == 1
    assert counted(metrics, "redis", "store") == 1


@pytest.mark.redis
async def test_vectors_survive_redis(redis: Redis, prefix: str) -> None:
    clock = FrozenClock()
    request = EmbeddingRequest(model="embed", inputs=["alpha", "beta"])
    key = key_of(request, route="/v1/embeddings")
    vectors = [[0.5, -0.25, 1.0], [0.125, 0.0, -2.0]]
    embedding = CachedAnswer(
        kind="embedding",
        text=None,
        finish_reason=None,
        vectors=vectors,
        usage_input_tokens=4,
        usage_output_tokens=0,
        deployment="embed-east",
        model="text-embedding-3-small",
        created_at=1.5,
    )
    await make_cache(clock, Metrics(), redis, prefix).put(key, embedding)
    assert await make_cache(clock, Metrics(), redis, prefix).get(key) == (embedding, "redis")


@pytest.mark.redis
async def test_unreadable_redis_value_is_a_miss(redis: Redis, prefix: str) -> None:
    metrics = Metrics()
    key = key_of(chat())
    await redis.set(f"{prefix}:{key.tenant_id}:{key.digest}", b"{not json", ex=60)
    cache = make_cache(FrozenClock(), metrics, redis, prefix)
    assert await cache.get(key) is None
    assert counted(metrics, "redis", "error") == 1


@pytest.mark.redis
async def test_promoted_entry_expires_with_the_redis_entry(redis: Redis, prefix: str) -> None:
    clock = FrozenClock()
    key = key_of(chat())
    name = f"{prefix}:{key.tenant_id}:{key.digest}"
    await make_cache(clock, Metrics(), redis, prefix).put(key, answer())
    await redis.pexpire(name, 10_000)
    reader = make_cache(clock, Metrics(), redis, prefix)
    assert await reader.get(key) is not None
    await redis.delete(name)  # gone in Redis: only the memory copy is left
    clock.advance(9)
    assert await reader.get(key) == (answer(), "memory")
    clock.advance(1)
    assert await reader.get(key) is None


@pytest.mark.redis
async def test_forget_subject_removes_both_tiers_and_other_replicas_copies(
    redis: Redis, prefix: str
) -> None:
    clock = FrozenClock()
    here = make_cache(clock, Metrics(), redis, prefix)
    there = make_cache(clock, Metrics(), redis, prefix)
    mine = key_of(chat(seed=1), subject="s1")
    other = key_of(chat(seed=2), subject="s2")
    anonymous = key_of(chat(seed=3))
    for key in (mine, other, anonymous):
        await here.put(key, answer())
    # The other replica holds its own memory copy of the subject's entry.
    assert await there.get(mine) == (answer(), "redis")
    assert await there.get(mine) == (answer(), "memory")

    assert await here.forget_subject("s1") == 1
    assert await redis.exists(f"{prefix}:acme:{mine.digest}") == 0
    assert await redis.exists(f"{prefix}:subject:s1") == 0
    assert await here.get(mine) is None
    # Its memory copy is confirmed against Redis before it is served, so it is gone too.
    assert await there.get(mine) is None
    assert await here.get(other) is not None
    assert await there.get(anonymous) is not None
    assert await here.forget_subject("s1") == 0


@pytest.mark.redis
async def test_an_entry_served_to_a_subject_is_erased_with_that_subject(
    redis: Redis, prefix: str
) -> None:
    clock = FrozenClock()
    writer = make_cache(clock, Metrics(), redis, prefix)
    reader = make_cache(clock, Metrics(), redis, prefix)
    stored = key_of(chat(), subject="s1")
    await writer.put(stored, answer())
    served = key_of(chat(), subject="s2")
    assert await reader.get(served) == (answer(), "redis")
    assert await writer.get(served) == (answer(), "memory")
    assert await writer.forget_subject("s2") == 1
    assert await writer.get(stored) is None
    assert await reader.get(stored) is None


@pytest.mark.redis
async def test_a_memory_copy_served_to_a_new_subject_is_confirmed(
    redis: Redis, prefix: str
) -> None:
    clock = FrozenClock()
    here = make_cache(clock, Metrics(), redis, prefix)
    there = make_cache(clock, Metrics(), redis, prefix)
    anonymous = key_of(chat())
    await here.put(anonymous, answer())
    assert await there.get(anonymous) == (answer(), "redis")
    # Served to s1 from here's memory: indexed under s1 in Redis, so there erases it.
    assert await here.get(key_of(chat(), subject="s1")) == (answer(), "memory")
    assert await there.forget_subject("s1") == 1
    assert await here.get(key_of(chat(), subject="s1")) is None


@pytest.mark.redis
async def test_forget_tenant(redis: Redis, prefix: str) -> None:
    clock = FrozenClock()
    cache = make_cache(clock, Metrics(), redis, prefix)
    other = make_cache(clock, Metrics(), redis, prefix)
    acme = [key_of(chat(seed=seed)) for seed in range(3)]
    globex = key_of(chat(), tenant="globex")
    for key in [*acme, globex]:
        await cache.put(key, answer())
    assert await other.forget_tenant("acme") == 3
    assert await redis.exists(*(f"{prefix}:acme:{key.digest}" for key in acme)) == 0
    assert await other.get(acme[0]) is None
    assert await cache.forget_tenant("acme") == 3  # its own memory copies
    assert await cache.get(globex) == (answer(), "memory")


@pytest.mark.redis
async def test_indexes_drop_members_long_expired(redis: Redis, prefix: str) -> None:
    clock = FrozenClock()
    cache = make_cache(clock, Metrics(), redis, prefix)
    await cache.put(key_of(chat(seed=1), subject="s1"), answer())
    clock.advance(3 * TTL)
    await cache.put(key_of(chat(seed=2), subject="s1"), answer())
    assert await redis.zcard(f"{prefix}:subject:s1") == 1
    assert await redis.zcard(f"{prefix}:tenant:acme") == 1


async def test_redis_down_means_misses_and_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    clock, metrics = FrozenClock(), Metrics()
    down = client("redis://127.0.0.1:1/0")
    cache = make_cache(clock, metrics, down, max_entries=0)
    key = key_of(chat(), subject="s1")
    with caplog.at_level(logging.WARNING, logger="ombud.llm.cache"):
        for _ in range(3):
            assert await cache.get(key) is None
            await cache.put(key, answer())
    assert counted(metrics, "redis", "error") == 6
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    # After the retry interval Redis is probed again (and fails again, quietly).
    clock.advance(10)
    assert await cache.get(key) is None
    assert counted(metrics, "redis", "error") == 7
    with pytest.raises(CacheUnavailable):
        await cache.forget_subject("s1")
    await down.aclose()


async def test_memory_tier_serves_while_redis_is_down() -> None:
    metrics = Metrics()
    down = client("redis://127.0.0.1:1/0")
    cache = make_cache(FrozenClock(), metrics, down)
    key = key_of(chat(), subject="s1")
    await cache.put(key, answer())
    assert await cache.get(key) == (answer(), "memory")
    assert counted(metrics, "memory", "hit") == 1
    assert counted(metrics, "redis", "error") == 2
    await down.aclose()


# Directives -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "use"),
        ({"Content-Type": "application/json"}, "use"),
        ({"Cache-Control": "no-cache"}, "refresh"),
        ({"cache-control": "max-age=0, No-Cache"}, "refresh"),
        ({"Cache-Control": "no-store"}, "off"),
        ({"Cache-Control": "no-cache, no-store"}, "off"),
        ({"X-Ombud-Cache": "off"}, "off"),
        ({"x-ombud-cache": " OFF "}, "off"),
        ({"X-Ombud-Cache": "refresh"}, "refresh"),
        ({"X-Ombud-Cache": "on"}, "use"),
        ({"Cache-Control": "no-cache", "X-Ombud-Cache": "off"}, "off"),
        ({"Cache-Control": "max-age=60"}, "use"),
    ],
)
def test_cache_directive(headers: dict[str, str], expected: str) -> None:
    assert cache_directive(headers) == expected
