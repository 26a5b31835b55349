"""The online store and consent-checked online reads, on every backend and both adapters:
materialization writes exactly what the point-in-time code computes at the same time, values
past the view's ttl are served as missing, and no subject's features leave without a purpose,
a lawful basis and the caller's own tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import quote
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import select

from ombud.app import create_app
from ombud.config import FeatureSettings, RedisSettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.core.errors import ConsentRequired, NotFound, PurposeNotAllowed
from ombud.features.historical import historical_features
from ombud.features.materialize import MATERIALIZE_JOB
from ombud.features.online import (
    DatabaseOnlineStore,
    OnlineRecord,
    OnlineStore,
    RedisOnlineStore,
    redis_key,
)
from ombud.features.tables import FeatureEventRow
from ombud.features.wiring import materialize_jobs
from ombud.identity.principal import Principal
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.jobs.registry import JobContext
from tests.conftest import empty_database
from tests.integration.helpers import audit_for

pytestmark = pytest.mark.anyio

VIEWS_DIR = Path(__file__).resolve().parents[2] / "features"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
VIEW = "credit_applicant_v1"
ONLINE = "/v1/features/credit_applicant/online"
SCORING = "credit_scoring"


@pytest.fixture(params=["database", "redis"])
def online_store(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def app(
    settings: Settings, online_store: str, request: pytest.FixtureRequest
) -> AsyncIterator[FastAPI]:
    update: dict[str, Any] = {
        "features": FeatureSettings(views_dir=VIEWS_DIR, online_store=online_store)  # type: ignore[arg-type]
    }
    if online_store == "redis":
        url = request.getfixturevalue("redis_url")
        update["redis"] = RedisSettings(url=SecretStr(url))
    application = create_app(settings.model_copy(update=update), clock=FrozenClock(NOW))
    async with application.router.lifespan_context(application):
        yield application
        container: Container = application.state.container
        if container.redis is not None:
            # Only this test's tenants: tests on other workers share the Redis.
            async with container.sessions() as session:
                tenants = set(await session.scalars(select(FeatureEventRow.tenant_id)))
            for tenant in tenants:
                pattern = f"ombud:features:{quote(tenant, safe='')}:*"
                keys = [k async for k in container.redis.scan_iter(match=pattern)]
                if keys:
                    await container.redis.delete(*keys)
        await empty_database(container)


async def _key(container: Container, tenant: str, *roles: str) -> tuple[dict[str, str], Principal]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=roles)).token
        principal = await identity.authenticate(token)
    return {"Authorization": f"Bearer {token}"}, principal


@pytest.fixture
def tenant() -> str:
    """A tenant name of this test alone."""
    return f"t{uuid4().hex[:12]}"


@pytest.fixture
async def service(container: Container, tenant: str) -> tuple[dict[str, str], Principal]:
    return await _key(container, tenant, "service")


async def _subject(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    body = {"region": "eu", "name": "Ada Lovelace", "email": "ada@example.org"}
    created = await client.post("/v1/subjects", json=body, headers=headers)
    assert created.status_code == 201, created.text
    value: str = created.json()["subject_id"]
    return value


async def _consent(
    client: httpx.AsyncClient, headers: dict[str, str], subject_id: str, status: str
) -> None:
    body = {"purpose": SCORING, "status": status, "source": "web_form"}
    answer = await client.post(f"/v1/subjects/{subject_id}/consents", json=body, headers=headers)
    assert answer.status_code == 201, answer.text


def _txn(entity: str, at: datetime, amount: float, balance: float) -> dict[str, Any]:
    payload = {"amount": amount, "balance": balance, "channel": "card"}
    return {"type": "transaction", "entity_id": entity, "timestamp": at.isoformat(),
            "payload": payload}  # fmt: skip


async def _ingest(client: httpx.AsyncClient, headers: dict[str, str], subject: str) -> None:
    events = [
        _txn(subject, NOW - timedelta(days=40), 500.0, 900.0),
        _txn(subject, NOW - timedelta(days=10), 100.0, 800.0),
        _txn(subject, NOW - timedelta(days=2), 20.0, 780.0),
        _txn(subject, NOW - timedelta(minutes=5), 1.5, 778.5),
    ]
    answer = await client.post("/v1/events", json={"events": events}, headers=headers)
    assert answer.status_code == 201, answer.text


async def _materialize(container: Container, payload: dict[str, object] | None = None) -> None:
    """Runs the registered ``features.materialize`` handler directly, as a worker would."""
    handler = default_registry(features=materialize_jobs(container)).handler(MATERIALIZE_JOB)
    context = SimpleNamespace(payload=payload or {}, clock=container.clock)
    await handler(cast(JobContext, context))


def _read(headers: dict[str, str], purpose: str | None = SCORING) -> dict[str, str]:
    return headers if purpose is None else {**headers, "X-Ombud-Purpose": purpose}


async def test_materialized_values_equal_the_point_in_time_values_at_the_same_time(
    client: httpx.AsyncClient,
    container: Container,
    service: tuple[dict[str, str], Principal],
) -> None:
    headers, principal = service
    subject = await _subject(client, headers)
    await _ingest(client, headers, subject)
    await _consent(client, headers, subject, "granted")
    await _materialize(container, {"view": VIEW, "tenant": principal.tenant_id})
    await _materialize(container)  # a second run (every tenant) changes nothing

    answer = await client.post(ONLINE, json={"entity_ids": [subject]}, headers=_read(headers))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["view"], body["entity"]) == (VIEW, "subject")
    [row] = body["rows"]
    view = container.online_features.catalog.view("credit_applicant")
    async with container.sessions() as session:
        [expected] = await historical_features(session, principal.tenant_id, view, [(subject, NOW)])
    assert row["values"] == {f.name: expected[f.name] for f in view.features}
    assert row["values"]["txn_count_30d"] == 3
    assert row["values"]["last_balance"] == 778.5
    assert (row["stale"], row["found"]) == (False, True)
    assert datetime.fromisoformat(row["event_ts"]) == NOW - timedelta(minutes=5)
    assert datetime.fromisoformat(row["materialized_at"]) == NOW

    [audit] = await audit_for(container, answer.headers["X-Request-Id"])
    assert (audit.action, audit.subject, audit.purpose) == ("data.access", subject, SCORING)
    assert audit.detail["categories"] == ["financial"]


async def test_values_older_than_the_ttl_are_served_as_missing(
    client: httpx.AsyncClient,
    container: Container,
    service: tuple[dict[str, str], Principal],
) -> None:
    headers, _ = service
    subject, unknown = await _subject(client, headers), await _subject(client, headers)
    await _ingest(client, headers, subject)
    for who in (subject, unknown):
        await _consent(client, headers, who, "granted")
    await _materialize(container)
    clock = cast(FrozenClock, container.clock)

    clock.advance(86400)  # exactly the ttl: still fresh
    fresh = await client.post(ONLINE, json={"entity_ids": [subject]}, headers=_read(headers))
    assert fresh.json()["rows"][0]["stale"] is False

    clock.advance(1)
    body = {"entity_ids": [subject, unknown, subject]}
    answer = await client.post(ONLINE, json=body, headers=_read(headers))
    assert answer.status_code == 200, answer.text
    stale, missing = answer.json()["rows"]
    assert (stale["entity_id"], stale["stale"], stale["found"]) == (subject, True, True)
    assert set(stale["values"].values()) == {None}
    assert (missing["entity_id"], missing["stale"], missing["found"]) == (unknown, False, False)
    assert missing["event_ts"] is None
    assert set(missing["values"].values()) == {None}


async def test_consent_and_purpose_decide_every_read_over_http_and_from_python(
    client: httpx.AsyncClient,
    container: Container,
    service: tuple[dict[str, str], Principal],
) -> None:
    headers, principal = service
    subject = await _subject(client, headers)
    await _ingest(client, headers, subject)
    await _materialize(container)
    body = {"entity_ids": [subject]}
    online = container.online_features

    never = await client.post(ONLINE, json=body, headers=_read(headers))
    assert (never.status_code, never.json()["type"]) == (403, "urn:ombud:problem:consent_required")
    with pytest.raises(ConsentRequired):
        await online.get_features(VIEW, [subject], SCORING, principal=principal)

    await _consent(client, headers, subject, "granted")
    allowed = await client.post(ONLINE, json=body, headers=_read(headers))
    assert allowed.status_code == 200, allowed.text
    rows = await online.get_features(VIEW, [subject], SCORING, principal=principal)
    assert rows[subject].values == allowed.json()["rows"][0]["values"]

    # marketing may not read financial data, whatever the subject consented to.
    wrong = await client.post(ONLINE, json=body, headers=_read(headers, "marketing"))
    assert (wrong.status_code, wrong.json()["type"]) == (
        403, "urn:ombud:problem:purpose_not_allowed",
    )  # fmt: skip
    with pytest.raises(PurposeNotAllowed):
        await online.get_features(VIEW, [subject], "marketing", principal=principal)
    none = await client.post(ONLINE, json=body, headers=_read(headers, None))
    assert (none.status_code, none.json()["type"]) == (403, "urn:ombud:problem:purpose_required")

    await _consent(client, headers, subject, "withdrawn")
    withdrawn = await client.post(ONLINE, json=body, headers=_read(headers))
    assert (withdrawn.status_code, withdrawn.json()["type"]) == (
        403, "urn:ombud:problem:consent_required",
    )  # fmt: skip
    with pytest.raises(ConsentRequired):
        await online.get_features(VIEW, [subject], SCORING, principal=principal)
    [refusal] = await audit_for(container, withdrawn.headers["X-Request-Id"])
    assert (refusal.action, refusal.reason) == ("data.access", "consent_required")


async def test_one_refused_subject_refuses_the_whole_read(
    client: httpx.AsyncClient,
    container: Container,
    service: tuple[dict[str, str], Principal],
) -> None:
    headers, _ = service
    granted, refused = await _subject(client, headers), await _subject(client, headers)
    await _consent(client, headers, granted, "granted")
    body = {"entity_ids": [granted, refused]}
    answer = await client.post(ONLINE, json=body, headers=_read(headers))
    assert answer.status_code == 403, answer.text


async def test_another_tenant_reads_nothing(
    client: httpx.AsyncClient,
    container: Container,
    service: tuple[dict[str, str], Principal],
    tenant: str,
) -> None:
    headers, _ = service
    subject = await _subject(client, headers)
    await _ingest(client, headers, subject)
    await _consent(client, headers, subject, "granted")
    await _materialize(container)
    other_headers, other = await _key(container, f"{tenant}x", "service")

    answer = await client.post(ONLINE, json={"entity_ids": [subject]}, headers=_read(other_headers))
    assert answer.status_code == 404, answer.text
    with pytest.raises(NotFound):
        await container.online_features.get_features(VIEW, [subject], SCORING, principal=other)
    # Nor does the store hand it out under the other tenant.
    assert await container.online_features.store.read(other.tenant_id, VIEW, [subject]) == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"entity_ids": []}, 422),
        ({"entity_ids": ["sub_" + "a" * 32] * 101}, 422),
        ({"entity_ids": ["alice"]}, 422),
    ],
)
async def test_bad_requests_are_refused(
    client: httpx.AsyncClient,
    service: tuple[dict[str, str], Principal],
    body: dict[str, Any],
    status: int,
) -> None:
    answer = await client.post(ONLINE, json=body, headers=_read(service[0]))
    assert answer.status_code == status, answer.text


async def test_reading_needs_feature_read(
    client: httpx.AsyncClient, container: Container, tenant: str
) -> None:
    headers, _ = await _key(container, tenant, "reviewer")
    body = {"entity_ids": ["sub_" + "a" * 32]}
    answer = await client.post(ONLINE, json=body, headers=_read(headers))
    assert answer.status_code == 403, answer.text
    unknown = await client.post(
        "/v1/features/nope/online",
        json=body,
        headers=_read((await _key(container, tenant, "service"))[0]),
    )
    assert unknown.status_code == 404


def _record(value: float, at: datetime) -> OnlineRecord:
    return OnlineRecord(
        values={"txn_sum_30d": value, "last_channel": "card", "txn_count_1h": None},
        event_ts=at - timedelta(hours=1),
        materialized_at=at,
    )


async def _round_trip(store: OnlineStore, tenant: str) -> None:
    a, b, c = "acct:1", "acct:2", "acct:3"
    await store.write(tenant, VIEW, {a: _record(1.5, NOW), b: _record(2.0, NOW)})
    await store.write(tenant, VIEW, {a: _record(3.25, NOW + timedelta(minutes=5))})  # replaces
    found = await store.read(tenant, VIEW, [a, b, c, a])
    assert set(found) == {a, b}
    assert found[a] == _record(3.25, NOW + timedelta(minutes=5))
    assert found[b] == _record(2.0, NOW)
    assert await store.read(f"{tenant}:{VIEW}", VIEW, [a]) == {}
    assert await store.read(tenant, "other_v1", [a]) == {}
    assert await store.read(tenant, VIEW, []) == {}


async def test_the_database_adapter_round_trips_within_a_tenant(
    container: Container, tenant: str
) -> None:
    await _round_trip(DatabaseOnlineStore(container.sessions), tenant)


async def test_the_redis_adapter_round_trips_within_a_tenant(redis_url: str, tenant: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        await _round_trip(RedisOnlineStore(redis), tenant)
        assert await redis.exists(redis_key(tenant, VIEW, "acct:1")) == 1
        assert redis_key(tenant, VIEW, "acct:1").startswith("ombud:features:")
    finally:
        keys = [k async for k in redis.scan_iter(match=f"ombud:features:{tenant}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
