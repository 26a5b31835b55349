"""LLM usage accounting: records through the writer, ``/v1/usage`` and its budgets, and the
budget ledger (in-process and Redis) under concurrency and across windows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import select

from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.core.ids import new_id
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.identity.tables import ApiKeyRow
from ombud.llm.usage.budgets import BudgetExceeded, BudgetService
from ombud.llm.usage.records import UsageRecord
from ombud.llm.usage.repository import UsageRepository
from ombud.llm.usage.router import router as usage_router
from ombud.observability.metrics import Metrics

pytestmark = pytest.mark.anyio

USAGE = "/v1/usage"
BUDGETS = "/v1/usage/budgets"
T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Key:
    token: str
    id: str
    tenant_id: str
    principal_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def _key(container: Container, tenant: str, role: str) -> Key:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        created = await identity.create_api_key(
            tenant=tenant, roles=[role], principal=f"{tenant}-{role}-{uuid4().hex[:6]}"
        )
        row = (await session.scalars(select(ApiKeyRow).where(ApiKeyRow.id == created.id))).one()
    return Key(created.token, created.id, row.tenant_id, row.principal_id)


def _usage(key: Key, **changes: object) -> UsageRecord:
    record = UsageRecord(
        id=new_id("use"), request_id=new_id("req"), created_at=T0, tenant_id=key.tenant_id,
        principal_id=key.principal_id, credential_id=key.id, route="llm.chat", alias="fast",
        status="ok", deployment="gpt-a", provider="openai", region="eu", input_tokens=100,
        output_tokens=50, cost_micro_usd=1_000, attempts=1, latency_ms=12.5,
    )  # fmt: skip
    return replace(record, **changes)  # type: ignore[arg-type]


# --- /v1/usage ---------------------------------------------------------------------------


@pytest.fixture
def usage_app(app: FastAPI) -> FastAPI:
    """The app with the usage routes (included here when the app does not include them)."""
    if not any(getattr(route, "path", None) == USAGE for route in app.routes):
        app.include_router(usage_router)
    return app


@dataclass
class World:
    analyst: Key
    second: Key
    admin: Key
    reviewer: Key
    other: Key


@pytest.fixture
async def world(container: Container, usage_app: FastAPI) -> World:
    """Keys in tenants ``acme`` and ``other``, and calls of both written through the writer."""
    made = World(
        analyst=await _key(container, "acme", "analyst"),
        second=await _key(container, "acme", "service"),
        admin=await _key(container, "acme", "admin"),
        reviewer=await _key(container, "acme", "reviewer"),
        other=await _key(container, "other", "analyst"),
    )
    a, b = made.analyst, made.second
    await container.records.write(
        [
            _usage(a, subject="sub_1", feature="search"),
            _usage(a, subject="sub_1", feature="search", created_at=T0 + timedelta(hours=1),
                   cached=True, cost_micro_usd=0),
            _usage(a, subject="sub_2", feature="chat", created_at=T0 + timedelta(days=1),
                   deployment="claude-b", alias="smart", output_tokens=200,
                   cost_micro_usd=2_500_000),
            _usage(b, feature=None, route="llm.embeddings", alias="embed", deployment="emb",
                   output_tokens=0, cost_micro_usd=7, created_at=T0 + timedelta(days=2)),
            _usage(a, status="error", deployment=None, provider=None, region=None,
                   input_tokens=0, output_tokens=0, cost_micro_usd=0,
                   created_at=T0 + timedelta(days=2)),
            _usage(made.other, cost_micro_usd=999_000_000),
        ]
    )  # fmt: skip
    return made


async def _report(client: httpx.AsyncClient, who: Key, **params: str) -> dict[str, object]:
    response = await client.get(USAGE, params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _totals(body: dict[str, object]) -> dict[str, object]:
    totals = body["totals"]
    assert isinstance(totals, dict)
    return totals


def _groups(body: dict[str, object]) -> dict[str | None, dict[str, object]]:
    groups = body["groups"]
    assert isinstance(groups, list)
    return {g["key"]: g for g in groups}


async def test_usage_records_are_written_and_added_up(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    totals = _totals(await _report(client, world.analyst))
    assert totals == {
        "calls": 5, "input_tokens": 400, "output_tokens": 300, "cost_usd": "2.501007",
        "cached_calls": 1,
    }  # fmt: skip
    async with container.sessions() as session:
        first = world.analyst
        stored = await UsageRepository(session).spent(credential_id=first.id)
    assert stored == 2_501_000


async def test_another_tenants_usage_is_invisible(client: httpx.AsyncClient, world: World) -> None:
    theirs = _totals(await _report(client, world.other))
    assert theirs["calls"] == 1
    assert theirs["cost_usd"] == "999.000000"
    # Naming the other tenant's key selects nothing, rather than their calls.
    mine = _totals(await _report(client, world.analyst, key=world.other.id))
    assert mine["calls"] == 0
    assert mine["cost_usd"] == "0.000000"


@pytest.mark.parametrize(
    ("params", "calls", "cost"),
    [
        ({"from": (T0 + timedelta(hours=1)).isoformat()}, 4, "2.500007"),
        ({"to": (T0 + timedelta(days=1)).isoformat()}, 2, "0.001000"),
        ({"subject": "sub_1"}, 2, "0.001000"),
        ({"feature": "chat"}, 1, "2.500000"),
        ({"deployment": "emb"}, 1, "0.000007"),
        ({"alias": "smart"}, 1, "2.500000"),
        ({"route": "llm.embeddings"}, 1, "0.000007"),
        ({"subject": "sub_1", "from": (T0 + timedelta(minutes=1)).isoformat()}, 1, "0.000000"),
    ],
)
async def test_every_filter_narrows_the_totals(
    client: httpx.AsyncClient, world: World, params: dict[str, str], calls: int, cost: str
) -> None:
    totals = _totals(await _report(client, world.analyst, **params))
    assert (totals["calls"], totals["cost_usd"]) == (calls, cost)


async def test_the_key_filter(client: httpx.AsyncClient, world: World) -> None:
    totals = _totals(await _report(client, world.analyst, key=world.second.id))
    assert (totals["calls"], totals["cost_usd"]) == (1, "0.000007")


async def test_grouped_by_day(client: httpx.AsyncClient, world: World) -> None:
    groups = _groups(await _report(client, world.analyst, group_by="day"))
    assert list(groups) == ["2026-03-10", "2026-03-11", "2026-03-12"]
    assert groups["2026-03-10"]["calls"] == 2
    assert groups["2026-03-10"]["cached_calls"] == 1
    assert groups["2026-03-11"]["cost_usd"] == "2.500000"
    assert groups["2026-03-12"]["calls"] == 2


@pytest.mark.parametrize(
    ("group_by", "expected"),
    [
        ("deployment", {None: 1, "claude-b": 1, "emb": 1, "gpt-a": 2}),
        ("feature", {None: 2, "chat": 1, "search": 2}),
        ("subject", {None: 2, "sub_1": 2, "sub_2": 1}),
    ],
)
async def test_grouped_by_a_column(
    client: httpx.AsyncClient, world: World, group_by: str, expected: dict[str | None, int]
) -> None:
    body = await _report(client, world.analyst, group_by=group_by)
    assert body["group_by"] == group_by
    assert {key: g["calls"] for key, g in _groups(body).items()} == expected


async def test_grouped_by_key(client: httpx.AsyncClient, world: World) -> None:
    groups = _groups(await _report(client, world.analyst, group_by="key"))
    assert set(groups) == {world.analyst.id, world.second.id}
    assert groups[world.analyst.id]["output_tokens"] == 300
    assert groups[world.second.id]["output_tokens"] == 0


async def test_usage_needs_the_usage_read_permission(
    client: httpx.AsyncClient, world: World
) -> None:
    response = await client.get(USAGE, headers=world.reviewer.headers)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(USAGE)).status_code == 401
    bad = await client.get(USAGE, params={"group_by": "colour"}, headers=world.analyst.headers)
    assert bad.status_code == 422


async def test_budgets_are_managed_by_admins_only(
    client: httpx.AsyncClient, world: World, container: Container
) -> None:
    body = {"scope": "tenant", "period": "month", "hard_limit_usd": "10", "soft_limit_usd": "8"}
    refused = await client.put(BUDGETS, json=body, headers=world.analyst.headers)
    assert refused.status_code == 403
    assert (await client.get(BUDGETS, headers=world.analyst.headers)).status_code == 403

    put = await client.put(BUDGETS, json=body, headers=world.admin.headers)
    assert put.status_code == 200, put.text
    assert put.json()["scope_id"] == world.admin.tenant_id
    assert put.json()["hard_limit_usd"] == "10.000000"
    key_budget = {"scope": "key", "scope_id": world.second.id, "period": "total",
                  "hard_limit_usd": "0.5"}  # fmt: skip
    assert (await client.put(BUDGETS, json=key_budget, headers=world.admin.headers)).is_success

    listed = (await client.get(BUDGETS, headers=world.admin.headers)).json()["budgets"]
    assert {(b["scope"], b["period"], b["soft_limit_usd"]) for b in listed} == {
        ("key", "total", None), ("tenant", "month", "8.000000"),
    }  # fmt: skip
    spent = {b["scope"]: b["spent_usd"] for b in listed}
    assert spent["key"] == "0.000007"

    # Another tenant's key, or a soft limit above the hard one, is refused.
    foreign = {**key_budget, "scope_id": world.other.id}
    assert (await client.put(BUDGETS, json=foreign, headers=world.admin.headers)).status_code == 404
    upside = {**body, "soft_limit_usd": "11"}
    assert (await client.put(BUDGETS, json=upside, headers=world.admin.headers)).status_code == 422

    params = {"scope": "key", "scope_id": world.second.id, "period": "total"}
    gone = await client.delete(BUDGETS, params=params, headers=world.admin.headers)
    assert gone.status_code == 204
    again = await client.delete(BUDGETS, params=params, headers=world.admin.headers)
    assert again.status_code == 404
    assert len((await client.get(BUDGETS, headers=world.admin.headers)).json()["budgets"]) == 1


# --- budgets -----------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def shared_redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis | None]:
    """None for the in-process ledger, else a Redis client; keys are cleaned up after."""
    if request.param == "memory":
        yield None
        return
    url = request.getfixturevalue("redis_url")
    connection = Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    yield connection
    await connection.aclose()


@pytest.fixture
async def prefix(shared_redis: Redis | None) -> AsyncIterator[str]:
    namespace = f"ombud:test:budget:{uuid4().hex}:"
    yield namespace
    if shared_redis is not None:
        keys = [key async for key in shared_redis.scan_iter(match=f"{namespace}*")]
        if keys:
            await shared_redis.delete(*keys)


@dataclass
class Budgets:
    service: BudgetService
    clock: FrozenClock
    metrics: Metrics
    key: Key
    other_key: Key

    def another(self) -> BudgetService:
        """A second service (another replica) on the same database and ledger."""
        return BudgetService(
            self.service._sessions, self.clock, Metrics(),
            redis=self._redis, prefix=self._prefix,
        )  # fmt: skip

    _redis: Redis | None = None
    _prefix: str = ""


@pytest.fixture
async def budgets(container: Container, shared_redis: Redis | None, prefix: str) -> Budgets:
    clock = FrozenClock(T0)
    metrics = Metrics()
    service = BudgetService(container.sessions, clock, metrics, redis=shared_redis, prefix=prefix)
    key = await _key(container, "acme", "analyst")
    other_key = await _key(container, "acme", "service")
    return Budgets(service, clock, metrics, key, other_key, shared_redis, prefix)


def _events(metrics: Metrics, scope: str, limit: str) -> float:
    value = metrics.registry.get_sample_value(
        "ombud_llm_budget_events_total", {"scope": scope, "limit": limit}
    )
    return value or 0.0


async def test_no_budget_reserves_nothing(budgets: Budgets) -> None:
    reservation = await budgets.service.reserve(budgets.key.tenant_id, budgets.key.id, 10**12)
    assert reservation.windows == ()
    assert reservation.soft_exceeded == []
    await budgets.service.settle(reservation, 10**12)


async def test_concurrent_calls_never_overspend_a_hard_limit(budgets: Budgets) -> None:
    service, key = budgets.service, budgets.key
    await service.set_budget(key.tenant_id, "tenant", key.tenant_id, "day", 1_000)

    async def attempt() -> bool:
        try:
            await service.reserve(key.tenant_id, key.id, 100)
        except BudgetExceeded:
            return False
        return True

    outcomes = await asyncio.gather(*(attempt() for _ in range(50)))
    assert sum(outcomes) == 10
    with pytest.raises(BudgetExceeded) as caught:
        await service.reserve(key.tenant_id, key.id, 1)
    refusal = caught.value
    assert (refusal.scope, refusal.period, refusal.limit, refusal.spent) == (
        "tenant", "day", 1_000, 1_000
    )  # fmt: skip
    assert refusal.status == 402
    assert refusal.type_uri == "urn:ombud:problem:budget_exceeded"
    assert _events(budgets.metrics, "tenant", "hard") == 41


async def test_settle_charges_exactly_once_and_release_frees_the_hold(budgets: Budgets) -> None:
    service, key = budgets.service, budgets.key
    await service.set_budget(key.tenant_id, "key", key.id, "month", 1_000)
    first = await service.reserve(key.tenant_id, key.id, 600)
    with pytest.raises(BudgetExceeded):
        await service.reserve(key.tenant_id, key.id, 600)  # 600 held + 600 > 1000
    await service.settle(first, 300)
    await service.settle(first, 300)  # a retried settle charges nothing more
    await service.release(first)
    second = await service.reserve(key.tenant_id, key.id, 700)  # 300 spent + 700 = limit
    await service.release(second)
    await service.release(second)
    third = await service.reserve(key.tenant_id, key.id, 700)
    with pytest.raises(BudgetExceeded) as caught:
        await service.reserve(key.tenant_id, key.id, 1)
    assert caught.value.spent == 1_000
    await service.settle(third, 0)


async def test_spend_starts_from_the_usage_records(budgets: Budgets, container: Container) -> None:
    service, key = budgets.service, budgets.key
    await container.records.write(
        [
            _usage(key, cost_micro_usd=400),
            _usage(key, cost_micro_usd=300, created_at=T0 - timedelta(hours=1)),
            # Yesterday: outside today's window.
            _usage(key, cost_micro_usd=10_000, created_at=T0 - timedelta(days=1)),
        ]
    )
    await service.set_budget(key.tenant_id, "tenant", key.tenant_id, "day", 1_000)
    held = await service.reserve(key.tenant_id, key.id, 300)
    with pytest.raises(BudgetExceeded) as caught:
        await service.reserve(key.tenant_id, key.id, 1)
    assert caught.value.spent == 1_000
    await service.release(held)


async def test_a_soft_limit_is_reported_not_enforced(budgets: Budgets) -> None:
    service, key = budgets.service, budgets.key
    await service.set_budget(key.tenant_id, "tenant", key.tenant_id, "month", 1_000, 500)
    await service.set_budget(key.tenant_id, "key", key.id, "month", 10_000, 100)
    quiet = await service.reserve(key.tenant_id, budgets.other_key.id, 50)
    assert quiet.soft_exceeded == []
    loud = await service.reserve(key.tenant_id, key.id, 500)
    assert sorted(loud.soft_exceeded) == ["key", "tenant"]
    assert _events(budgets.metrics, "tenant", "soft") == 1
    assert _events(budgets.metrics, "key", "soft") == 1
    assert _events(budgets.metrics, "tenant", "hard") == 0


async def test_a_key_budget_applies_to_that_key_only(budgets: Budgets) -> None:
    service, key, other = budgets.service, budgets.key, budgets.other_key
    await service.set_budget(key.tenant_id, "key", key.id, "total", 100)
    with pytest.raises(BudgetExceeded) as caught:
        await service.reserve(key.tenant_id, key.id, 101)
    assert caught.value.scope == "key"
    assert _events(budgets.metrics, "key", "hard") == 1
    await service.reserve(other.tenant_id, other.id, 10_000)


@pytest.mark.parametrize(("period", "roll_over_s"), [("day", 86_400), ("month", 31 * 86_400)])
async def test_a_new_window_starts_afresh(
    budgets: Budgets, container: Container, period: str, roll_over_s: int
) -> None:
    service, key = budgets.service, budgets.key
    await service.set_budget(key.tenant_id, "tenant", key.tenant_id, period, 1_000)  # type: ignore[arg-type]
    reservation = await service.reserve(key.tenant_id, key.id, 1_000)
    await service.settle(reservation, 1_000)
    await container.records.write([_usage(key, cost_micro_usd=1_000)])
    with pytest.raises(BudgetExceeded):
        await service.reserve(key.tenant_id, key.id, 1)
    budgets.clock.advance(roll_over_s)
    fresh = await service.reserve(key.tenant_id, key.id, 1_000)
    assert fresh.windows[0].window > reservation.windows[0].window
    await service.settle(fresh, 1_000)
    with pytest.raises(BudgetExceeded):
        await service.reserve(key.tenant_id, key.id, 1)


async def test_a_total_budget_never_rolls_over(budgets: Budgets) -> None:
    service, key = budgets.service, budgets.key
    await service.set_budget(key.tenant_id, "tenant", key.tenant_id, "total", 500)
    await service.settle(await service.reserve(key.tenant_id, key.id, 500), 500)
    budgets.clock.advance(400 * 86_400)
    with pytest.raises(BudgetExceeded):
        await service.reserve(key.tenant_id, key.id, 1)


async def test_budget_changes_reach_other_replicas_within_the_cache_ttl(budgets: Budgets) -> None:
    service, key = budgets.service, budgets.key
    replica = budgets.another()
    await replica.reserve(key.tenant_id, key.id, 5_000)  # caches "no budgets"
    await service.set_budget(key.tenant_id, "tenant", key.tenant_id, "day", 1_000)
    with pytest.raises(BudgetExceeded):
        await service.reserve(key.tenant_id, key.id, 5_000)
    await replica.reserve(key.tenant_id, key.id, 5_000)  # still cached
    budgets.clock.advance(10)
    with pytest.raises(BudgetExceeded):
        await replica.reserve(key.tenant_id, key.id, 5_000)


@pytest.mark.redis
async def test_replicas_sharing_redis_see_each_others_spend(
    container: Container, redis_url: str
) -> None:
    prefix = f"ombud:test:budget:{uuid4().hex}:"
    connection = Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    clock = FrozenClock(T0)
    service = BudgetService(container.sessions, clock, Metrics(), redis=connection, prefix=prefix)
    replica = BudgetService(container.sessions, clock, Metrics(), redis=connection, prefix=prefix)
    key = await _key(container, "acme", "analyst")
    try:
        await _share(service, replica, key)
    finally:
        stale = [k async for k in connection.scan_iter(match=f"{prefix}*")]
        if stale:
            await connection.delete(*stale)
        await connection.aclose()


async def _share(service: BudgetService, replica: BudgetService, key: Key) -> None:
    await service.set_budget(key.tenant_id, "tenant", key.tenant_id, "day", 1_000)
    held = await service.reserve(key.tenant_id, key.id, 600)
    with pytest.raises(BudgetExceeded):
        await replica.reserve(key.tenant_id, key.id, 500)  # sees the other replica's hold
    await service.settle(held, 200)
    spent_elsewhere = await replica.reserve(key.tenant_id, key.id, 800)
    with pytest.raises(BudgetExceeded) as caught:
        await service.reserve(key.tenant_id, key.id, 1)
    assert caught.value.spent == 1_000

    async def attempt(on: BudgetService) -> bool:
        try:
            await on.reserve(key.tenant_id, key.id, 10)
        except BudgetExceeded:
            return False
        return True

    await replica.release(spent_elsewhere)
    outcomes = await asyncio.gather(*(attempt(s) for _ in range(40) for s in (service, replica)))
    assert sum(outcomes) == 80
