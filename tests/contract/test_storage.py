"""Storage behaviour that must hold on every backend: schema, time, append order, identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import SecretStr
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ombud.audit.events import AuditEvent, Outcome
from ombud.audit.repository import AuditRepository
from ombud.config import DatabaseSettings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.core.errors import NotFound, RecordsUnavailable
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.predictions.records import PredictionRecord
from ombud.predictions.repository import PredictionRepository
from ombud.storage import migrate
from ombud.storage.database import create_engine
from ombud.storage.tables import metadata

pytestmark = pytest.mark.anyio


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_models(container: Container) -> None:
    async with container.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_migrations_downgrade_and_upgrade_cleanly(database: str) -> None:
    engine = create_engine(DatabaseSettings(url=SecretStr(database)))
    try:
        await migrate.downgrade(engine, "base")
        await migrate.upgrade(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


def _event(n: int, at: datetime) -> AuditEvent:
    return AuditEvent(
        event_id=f"evt_{n}", occurred_at=at, actor="prn_x", action="test.act",
        resource="thing:1", outcome=Outcome.SUCCESS, request_id="req_same",
        detail={"n": n, "nested": {"ok": True}},
    )  # fmt: skip


async def test_records_are_written_atomically_in_order_with_utc_times(container: Container) -> None:
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    prediction = PredictionRecord(
        id="pred_1", request_id="req_same", tenant_id="ten_1", principal_id="prn_x",
        model_name="m", model_version=3, inputs={"a": 1}, outputs={"score": 0.25},
        latency_ms=1.5, created_at=at + timedelta(hours=1),
    )  # fmt: skip
    await container.records.write(
        [prediction, *(_event(n, at + timedelta(seconds=n)) for n in range(5))]
    )

    async with container.sessions() as session:
        events = await AuditRepository(session).by_request("req_same")
        stored = await PredictionRepository(session).get("pred_1")
    assert [e.detail["n"] for e in events] == [0, 1, 2, 3, 4]
    assert events[0].occurred_at == at
    assert events[0].occurred_at.tzinfo is not None
    assert events[0].detail["nested"] == {"ok": True}
    assert stored == prediction


async def test_a_failed_record_batch_writes_nothing(container: Container) -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    writer = container.records
    await writer.write([_event(1, at)])
    with pytest.raises(RecordsUnavailable) as caught:
        await writer.write([_event(2, at), _event(1, at)])
    assert isinstance(caught.value.__cause__, IntegrityError)
    async with container.sessions() as session:
        assert await AuditRepository(session).count() == 1


async def test_api_key_lifecycle(container: Container) -> None:
    clock = FrozenClock()
    async with container.sessions.begin() as session:
        identity = IdentityService(IdentityRepository(session), b"pepper", clock)
        created = await identity.create_api_key(tenant="acme", roles=["analyst"], principal="bob")
        second = await identity.create_api_key(tenant="acme", roles=["reviewer"], principal="bob")
        await identity.create_api_key(tenant="other", roles=["analyst"])
    async with container.sessions.begin() as session:
        identity = IdentityService(IdentityRepository(session), b"pepper", clock)
        principal = await identity.authenticate(created.token)
        listed = await identity.list_api_keys("acme")
        clock.advance(60)
        await identity.revoke_api_key(second.prefix)
        with pytest.raises(NotFound):
            await identity.revoke_api_key(second.prefix)
    assert principal.roles == {"analyst", "reviewer"}
    assert principal.tenant_slug == "acme"
    assert {k.prefix for k in listed} == {created.prefix, second.prefix}
    async with container.sessions() as session:
        keys = await IdentityService(IdentityRepository(session), b"pepper", clock).list_api_keys()
    revoked = {k.prefix: k.revoked_at for k in keys}
    assert revoked[second.prefix] == clock.now()
    assert revoked[created.prefix] is None
    assert len(keys) == 3
