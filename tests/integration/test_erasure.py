"""Erasure, the parts the end-to-end scan (``test_subject_rights.py``) does not isolate: the
online stores' ``delete`` (every adapter, and across regional stores), a cascade that fails
half-way and is run again, predictions kept de-identified so monitoring still counts them, and
bad requests that change nothing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from sqlalchemy import func, select

from ombud.config import DatabaseSettings
from ombud.container import Container
from ombud.demo.seed import seed_demo
from ombud.features.online import (
    DatabaseOnlineStore,
    OnlineRecord,
    OnlineStore,
    RedisOnlineStore,
    redis_key,
)
from ombud.features.online_regional import RegionalOnlineStore
from ombud.features.tables import FeatureEventRow
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.registry import JobContext
from ombud.llm.cache import CacheUnavailable, ResponseCache
from ombud.outcomes.tables import PredictionOutcomeRow
from ombud.predictions.tables import PredictionRow
from ombud.privacy.erasure import ErasureJobs
from ombud.privacy.rights_tables import SubjectErasureRow
from ombud.privacy.tables import DataSubjectRow
from ombud.privacy.wiring import erasure_deps
from ombud.storage.database import create_engine, create_sessionmaker
from tests.integration.helpers import PREDICT, applicant

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SCORING = "credit_scoring"


def _record(value: float) -> OnlineRecord:
    return OnlineRecord({"last_balance": value}, NOW - timedelta(hours=1), NOW)


async def _delete_contract(store: OnlineStore, tenant: str) -> None:
    """``delete`` removes every view of exactly the entities named, in exactly one tenant."""
    gone, kept, lookalike, starry = "sub_gone", "sub_kept", "x:sub_gone", "a*b"
    for view in ("a_v1", "b_v2"):
        await store.write(tenant, view, {gone: _record(1.0), kept: _record(2.0)})
    await store.write(tenant, "a_v1", {lookalike: _record(3.0), starry: _record(4.0)})
    await store.write(tenant, "a_v1", {"aXb": _record(5.0)})
    await store.write(f"{tenant}-other", "a_v1", {gone: _record(6.0)})

    assert await store.delete(tenant, [gone]) == 2
    assert await store.delete(tenant, [starry]) == 1

    for view in ("a_v1", "b_v2"):
        assert set(await store.read(tenant, view, [gone, kept])) == {kept}
    left = await store.read(tenant, "a_v1", [lookalike, starry, "aXb"])
    assert set(left) == {lookalike, "aXb"}
    assert set(await store.read(f"{tenant}-other", "a_v1", [gone])) == {gone}
    assert await store.delete(tenant, [gone]) == 0  # again: nothing left, no error
    assert await store.delete(tenant, []) == 0
    assert await store.delete(tenant, [kept, lookalike]) == 3
    assert await store.read(tenant, "b_v2", [kept]) == {}


async def test_the_database_online_store_deletes_an_entity_of_one_tenant(
    container: Container,
) -> None:
    await _delete_contract(DatabaseOnlineStore(container.sessions), f"t{uuid4().hex[:12]}")


async def test_the_redis_online_store_deletes_an_entity_of_one_tenant(redis_url: str) -> None:
    tenant = f"t{uuid4().hex[:12]}"
    redis = Redis.from_url(redis_url)
    try:
        await _delete_contract(RedisOnlineStore(redis), tenant)
        assert await redis.exists(redis_key(tenant, "a_v1", "sub_gone")) == 0
    finally:
        for pattern in (f"ombud:features:{tenant}:*", f"ombud:features:{tenant}-other:*"):
            keys = [k async for k in redis.scan_iter(match=pattern)]
            if keys:
                await redis.delete(*keys)
        await redis.aclose()


async def test_the_regional_online_store_deletes_in_every_store(
    container: Container, regional_database: str
) -> None:
    engine = create_engine(DatabaseSettings(url=SecretStr(regional_database)))
    try:
        main = DatabaseOnlineStore(container.sessions)
        regional = DatabaseOnlineStore(create_sessionmaker(engine))
        stores = RegionalOnlineStore({"main": main, "us": regional}, container.regions)
        tenant = f"t{uuid4().hex[:12]}"
        # Written straight to each store: the entity has no home any more (an erasure retried).
        await main.write(tenant, "a_v1", {"sub_1": _record(1.0)})
        await regional.write(tenant, "a_v1", {"sub_1": _record(2.0)})
        await regional.write(tenant, "b_v2", {"sub_1": _record(3.0), "sub_2": _record(4.0)})

        assert await stores.delete(tenant, ["sub_1"]) == 3

        assert await main.read(tenant, "a_v1", ["sub_1"]) == {}
        assert set(await regional.read(tenant, "b_v2", ["sub_1", "sub_2"])) == {"sub_2"}
    finally:
        await engine.dispose()


class _BrokenCache:
    """An LLM response cache whose Redis is down: the erasure cannot finish."""

    async def forget_subject(self, subject: str) -> int:
        raise CacheUnavailable(f"Redis is down; {subject}'s entries may remain")


@dataclasses.dataclass
class World:
    client: httpx.AsyncClient
    container: Container
    service: dict[str, str]

    async def subject(self) -> str:
        created = await self.client.post(
            "/v1/subjects", json={"name": "Ada Lovelace", "region": "eu"}, headers=self.service
        )
        assert created.status_code == 201, created.text
        subject_id: str = created.json()["subject_id"]
        consent = {"purpose": SCORING, "status": "granted", "source": "web_form"}
        answer = await self.client.post(
            f"/v1/subjects/{subject_id}/consents", json=consent, headers=self.service
        )
        assert answer.status_code == 201, answer.text
        return subject_id

    async def run(self, jobs: ErasureJobs, erasure_id: str) -> None:
        async with self.container.sessions.begin() as session:
            context = SimpleNamespace(
                payload={"erasure_id": erasure_id}, clock=self.container.clock, session=session
            )
            await jobs.run(cast(JobContext, context))

    async def erasure(self, erasure_id: str) -> SubjectErasureRow:
        async with self.container.sessions() as session:
            row = await session.get(SubjectErasureRow, erasure_id)
        assert row is not None
        return row


@pytest.fixture
async def world(client: httpx.AsyncClient, container: Container) -> World:
    await seed_demo(container)
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant="demo", roles=("service",))).token
    return World(client, container, {"Authorization": f"Bearer {token}"})


async def _count(container: Container, stmt: object) -> int:
    async with container.sessions() as session:
        return int(await session.scalar(stmt) or 0)  # type: ignore[call-overload]


async def test_a_cascade_that_fails_half_way_finishes_when_run_again(world: World) -> None:
    container = world.container
    subject = await world.subject()
    event = {"type": "transaction", "entity_id": subject, "timestamp": NOW.isoformat(),
             "payload": {"amount": 12.5, "balance": 99.0, "channel": "card"}}  # fmt: skip
    assert (await world.client.post("/v1/events", json=event, headers=world.service)).is_success
    scoring = {**world.service, "X-Ombud-Purpose": SCORING, "X-Ombud-Subject": subject}
    predicted = await world.client.post(PREDICT, json=applicant(), headers=scoring)
    assert predicted.status_code == 200, predicted.text
    prediction_id = predicted.json()["prediction_id"]
    outcome = f"/v1/predictions/{prediction_id}/outcome"
    first = await world.client.post(outcome, json={"label": 0}, headers=world.service)
    assert first.status_code == 201, first.text
    fixed = {"label": 1, "correction": True, "reason": "Ada phoned: she repaid late"}
    assert (await world.client.post(outcome, json=fixed, headers=world.service)).is_success
    started = await world.client.post(f"/v1/subjects/{subject}/erasure", headers=world.service)
    assert started.status_code == 202, started.text
    erasure_id = started.json()["erasure_id"]

    broken = ErasureJobs(
        dataclasses.replace(erasure_deps(container), llm_cache=cast(ResponseCache, _BrokenCache()))
    )
    with pytest.raises(CacheUnavailable):
        await world.run(broken, erasure_id)

    half = await world.erasure(erasure_id)
    assert (half.status, half.subject_id) == ("pending", subject)  # the retry can find it
    assert await _count(container, select(func.count()).where(DataSubjectRow.id == subject)) == 0

    healthy = ErasureJobs(erasure_deps(container))
    await world.run(healthy, erasure_id)
    await world.run(healthy, erasure_id)  # a duplicate delivery: nothing more happens

    done = await world.erasure(erasure_id)
    assert (done.status, done.subject_id) == ("completed", None)
    assert done.completed_at is not None
    assert done.report["key_destroyed"] is True
    assert done.report["removed"]["main"]["predictions"] == 1
    events = select(func.count()).where(FeatureEventRow.entity_id == subject)
    assert await _count(container, events) == 0
    # The prediction and its outcome stay for KPIs and monitors, naming nobody.
    async with container.sessions() as session:
        prediction = await session.get(PredictionRow, prediction_id)
        kept = await session.get(PredictionOutcomeRow, prediction_id)
    assert prediction is not None
    assert prediction.subject is None
    assert prediction.outputs["decision"] == predicted.json()["decision"]
    assert kept is not None
    assert (kept.label, kept.history) == (1, [])
    shown = await world.client.get(f"/v1/predictions/{prediction_id}", headers=world.service)
    assert shown.status_code == 200, shown.text
    assert (shown.json()["inputs"], shown.json()["subject"]) == (None, None)


async def test_bad_erasure_requests_are_problems_that_change_nothing(world: World) -> None:
    subject = await world.subject()
    url = f"/v1/subjects/{subject}/erasure"
    for body in ({"reason": 5}, {"reason": "ok", "unknown": 1}, {"reason": "x" * 5000}):
        bad = await world.client.post(url, json=body, headers=world.service)
        assert bad.status_code == 422, (body, bad.text)
        assert bad.headers["content-type"].startswith("application/problem+json")
    garbled = await world.client.post(
        url, content=b"{not json", headers={**world.service, "Content-Type": "application/json"}
    )
    assert garbled.status_code == 422
    assert garbled.headers["content-type"].startswith("application/problem+json")
    assert (await world.client.get(url, headers=world.service)).status_code == 404
    assert await _count(world.container, select(func.count(SubjectErasureRow.id))) == 0
    read = await world.client.get(
        f"/v1/subjects/{subject}", headers={**world.service, "X-Ombud-Purpose": SCORING}
    )
    assert read.status_code == 200, read.text
    assert read.json()["profile"]["name"] == "Ada Lovelace"


async def test_reading_an_erasure_needs_the_permission(world: World) -> None:
    subject = await world.subject()
    started = await world.client.post(f"/v1/subjects/{subject}/erasure", headers=world.service)
    assert started.status_code == 202
    async with world.container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), world.container.api_key_pepper, world.container.clock
        )
        token = (await identity.create_api_key(tenant="demo", roles=("analyst",))).token
    analyst = {"Authorization": f"Bearer {token}"}
    refused = await world.client.get(f"/v1/subjects/{subject}/erasure", headers=analyst)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("application/problem+json")
    shown = await world.client.get(f"/v1/subjects/{subject}/erasure", headers=world.service)
    assert shown.json()["erasure_id"] == started.json()["erasure_id"]
