"""The feature store over HTTP and against the real offline store, on every backend: strict,
all-or-nothing, idempotent ingestion per tenant, and point-in-time-correct training sets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.app import create_app
from ombud.config import DatabaseSettings, FeatureSettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.core.errors import InvalidRequest
from ombud.core.ids import new_id
from ombud.features.definitions import FeatureView
from ombud.features.historical import historical_features
from ombud.features.repository import FeatureEventRepository, StoredEvent
from ombud.features.tables import FeatureEventRow
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.storage.database import create_engine, create_sessionmaker
from tests.conftest import empty_database
from tests.feature_support import VIEW, WINDOWED_VIEW, label_rows, payloads, reference, streams
from tests.integration.helpers import audit_for

pytestmark = pytest.mark.anyio

VIEWS_DIR = Path(__file__).resolve().parents[2] / "features"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
ALICE = "sub_" + "a" * 32
BOB = "sub_" + "b" * 32
HISTORICAL = "/v1/features/credit_applicant/historical"


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    settings = settings.model_copy(
        update={"features": FeatureSettings(views_dir=VIEWS_DIR, historical_max_events=50)}
    )
    application = create_app(settings, clock=FrozenClock(NOW))
    async with application.router.lifespan_context(application):
        yield application
        await empty_database(application.state.container)


async def _key(container: Container, tenant: str, *roles: str) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=roles)).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def producer(container: Container) -> dict[str, str]:
    return await _key(container, "acme", "service")


@pytest.fixture
async def scientist(container: Container) -> dict[str, str]:
    return await _key(container, "acme", "data_scientist")


def txn(entity: str, at: datetime, amount: float, balance: float, **extra: Any) -> dict[str, Any]:
    payload = {"amount": amount, "balance": balance, "channel": "card"}
    return {"type": "transaction", "entity_id": entity, "timestamp": at.isoformat(),
            "payload": payload, **extra}  # fmt: skip


async def _stored(container: Container) -> list[FeatureEventRow]:
    async with container.sessions() as session:
        return list(
            await session.scalars(select(FeatureEventRow).order_by(FeatureEventRow.event_ts))
        )


async def test_one_event_is_stored_and_audited_by_count(
    client: httpx.AsyncClient, container: Container, producer: dict[str, str]
) -> None:
    event = txn(ALICE, NOW - timedelta(days=1), 12.5, 100.0, event_id="t-1")
    response = await client.post("/v1/events", json=event, headers=producer)
    assert response.status_code == 201, response.text
    assert response.json() == {"received": 1, "stored": 1, "duplicates": 0}
    [row] = await _stored(container)
    assert (row.event_type, row.entity_id, row.event_id) == ("transaction", ALICE, "t-1")
    assert row.event_ts == NOW - timedelta(days=1)
    assert row.ingested_ts == NOW
    assert row.payload == event["payload"]
    [audit] = await audit_for(container, response.headers["X-Request-Id"])
    assert audit.action == "event.ingest"
    assert audit.resource == "events:transaction"
    assert audit.detail == {"received": 1, "new": 1, "duplicates": 0, "types": {"transaction": 1}}
    assert "12.5" not in str(audit.detail)  # counts, never payloads


async def test_a_bad_batch_stores_nothing_and_lists_every_problem(
    client: httpx.AsyncClient, container: Container, producer: dict[str, str]
) -> None:
    good = txn(ALICE, NOW - timedelta(hours=1), 1.0, 2.0)
    wrong = txn(ALICE, NOW, 1.0, 2.0)
    wrong["payload"] = {"amount": "12", "balance": True, "channel": "cash", "tip": 1}
    missing = txn("alice@example.com", NOW + timedelta(hours=1), 1.0, 2.0)
    del missing["payload"]["balance"]
    unknown = {**txn(BOB, NOW, 1.0, 2.0), "type": "payment"}
    body = {"events": [good, wrong, missing, unknown]}
    response = await client.post("/v1/events", json=body, headers=producer)
    assert response.status_code == 422, response.text
    problems = {tuple(e["loc"]): e["type"] for e in response.json()["errors"]}
    assert problems == {
        ("body", "events", 1, "payload", "tip"): "extra_forbidden",
        ("body", "events", 1, "payload", "amount"): "float_type",
        ("body", "events", 1, "payload", "balance"): "float_type",
        ("body", "events", 1, "payload", "channel"): "string_type",
        ("body", "events", 2, "entity_id"): "value_error",
        ("body", "events", 2, "timestamp"): "value_error",
        ("body", "events", 2, "payload", "balance"): "missing",
        ("body", "events", 3, "type"): "unknown_event_type",
    }
    assert await _stored(container) == []


@pytest.mark.parametrize(
    "body",
    [
        {"type": "transaction", "entity_id": ALICE, "timestamp": "2026-03-01T10:00:00",
         "payload": {"amount": 1, "balance": 1, "channel": "card"}},  # no timezone
        {"events": []},
        {"events": [{"type": "transaction"}]},
        {"events": [txn(ALICE, NOW, 1, 1)] * 1001},
    ],
)  # fmt: skip
async def test_malformed_bodies_are_refused(
    client: httpx.AsyncClient, container: Container, producer: dict[str, str], body: Any
) -> None:
    response = await client.post("/v1/events", json=body, headers=producer)
    assert response.status_code == 422, response.text
    assert await _stored(container) == []


async def test_event_ids_make_resending_a_no_op(
    client: httpx.AsyncClient, container: Container, producer: dict[str, str]
) -> None:
    first = [txn(ALICE, NOW - timedelta(hours=i), i, 10.0, event_id=f"e-{i}") for i in (1, 2)]
    no_id = txn(ALICE, NOW - timedelta(hours=3), 3.0, 10.0)
    response = await client.post("/v1/events", json={"events": [*first, no_id]}, headers=producer)
    assert response.json() == {"received": 3, "stored": 3, "duplicates": 0}
    again = [*first, {**first[0], "payload": {**first[0]["payload"], "amount": 999.0}}]
    response = await client.post("/v1/events", json={"events": again}, headers=producer)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 3, "stored": 0, "duplicates": 3}
    new = txn(BOB, NOW, 5.0, 1.0, event_id="e-9")
    response = await client.post("/v1/events", json={"events": [new, new]}, headers=producer)
    assert response.json() == {"received": 2, "stored": 1, "duplicates": 1}
    rows = await _stored(container)
    assert len(rows) == 4
    assert 999.0 not in [r.payload["amount"] for r in rows]  # the first sending wins


async def test_concurrent_senders_of_one_event_id_store_it_once(container: Container) -> None:
    row = {"tenant_id": "t", "event_type": "transaction", "entity_id": ALICE, "event_ts": NOW,
           "ingested_ts": NOW, "event_id": "same", "payload": {}}  # fmt: skip
    async with container.sessions.begin() as session:
        assert await FeatureEventRepository(session).append([{**row, "id": new_id("fev")}]) == 1
    async with container.sessions.begin() as session:
        # Past the existence check already (as a concurrent request would be): no error.
        assert await FeatureEventRepository(session).append([{**row, "id": new_id("fev")}]) == 0
    assert len(await _stored(container)) == 1


async def test_tenants_see_only_their_own_events(
    client: httpx.AsyncClient,
    container: Container,
    producer: dict[str, str],
    scientist: dict[str, str],
) -> None:
    other = await _key(container, "globex", "service")
    mine = txn(ALICE, NOW - timedelta(days=2), 10.0, 50.0, event_id="x")
    theirs = txn(ALICE, NOW - timedelta(days=1), 1000.0, 7.0, event_id="x")
    assert (await client.post("/v1/events", json=mine, headers=producer)).status_code == 201
    # The same event id in another tenant is another event.
    assert (await client.post("/v1/events", json=theirs, headers=other)).status_code == 201
    body = {"rows": [{"entity_id": ALICE, "label_time": NOW.isoformat()}]}
    response = await client.post(HISTORICAL, json=body, headers=scientist)
    assert response.status_code == 200, response.text
    [row] = response.json()["rows"]
    assert row["txn_count_30d"] == 1
    assert row["txn_sum_30d"] == 10.0
    assert row["last_balance"] == 50.0


async def test_a_training_set_is_point_in_time_correct_and_audited(
    client: httpx.AsyncClient,
    container: Container,
    producer: dict[str, str],
    scientist: dict[str, str],
) -> None:
    day = timedelta(days=1)
    events = [
        txn(ALICE, NOW - 40 * day, 500.0, 1.0),  # older than every window
        txn(ALICE, NOW - 10 * day, 100.0, 2.0),
        txn(ALICE, NOW - 7 * day, 70.0, 3.0),  # exactly 7d before the first label: out of 7d
        txn(ALICE, NOW - 2 * day, 20.0, 4.0),
        txn(ALICE, NOW, 1.0, 5.0),  # at the first label: in
        txn(BOB, NOW - 5 * day, 9.0, 6.0),
    ]
    assert (await client.post("/v1/events", json={"events": events}, headers=producer)).is_success
    rows = [
        {"entity_id": ALICE, "label_time": NOW.isoformat()},
        {"entity_id": ALICE, "label_time": (NOW - 3 * day).isoformat()},
        {"entity_id": BOB, "label_time": (NOW - 6 * day).isoformat()},  # before Bob's event
        {"entity_id": "sub_" + "c" * 32, "label_time": NOW.isoformat()},
    ]
    response = await client.post(HISTORICAL, json={"rows": rows}, headers=scientist)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["view"], body["version"], body["entity"]) == ("credit_applicant_v1", 1, "subject")
    assert body["excluded"] == 0
    now_row, earlier, bob, nobody = body["rows"]
    assert now_row["entity_id"] == ALICE
    assert datetime.fromisoformat(now_row["label_time"]) == NOW
    assert (now_row["txn_count_30d"], now_row["txn_sum_30d"]) == (4, 191.0)
    assert (now_row["txn_max_7d"], now_row["txn_min_7d"]) == (20.0, 1.0)
    assert (now_row["last_balance"], now_row["txn_count_1h"]) == (5.0, 1)
    assert (earlier["txn_count_30d"], earlier["txn_sum_30d"], earlier["txn_max_7d"]) == (
        2, 170.0, 70.0,
    )  # fmt: skip
    assert earlier["last_balance"] == 3.0
    assert bob["txn_count_30d"] == 0
    assert bob["last_balance"] is None
    assert nobody["txn_sum_30d"] is None
    assert list(now_row) == ["entity_id", "label_time", *body["features"]]
    [audit] = await audit_for(container, response.headers["X-Request-Id"])
    assert (audit.action, audit.resource) == (
        "feature.historical",
        "feature_view:credit_applicant_v1",
    )
    assert audit.detail["rows"] == 4


async def test_historical_refusals(
    client: httpx.AsyncClient, container: Container, scientist: dict[str, str]
) -> None:
    analyst = await _key(container, "acme", "analyst")
    row = {"entity_id": ALICE, "label_time": NOW.isoformat()}
    assert (await client.post(HISTORICAL, json={"rows": [row]}, headers=analyst)).status_code == 403
    unknown = await client.post(
        "/v1/features/nope/historical", json={"rows": [row]}, headers=scientist
    )
    assert unknown.status_code == 404
    version = await client.post(HISTORICAL, json={"rows": [row], "version": 2}, headers=scientist)
    assert version.status_code == 404
    naive = {"rows": [{"entity_id": ALICE, "label_time": "2026-03-01T00:00:00"}]}
    assert (await client.post(HISTORICAL, json=naive, headers=scientist)).status_code == 422
    too_many = {"rows": [row] * 10_001}
    assert (await client.post(HISTORICAL, json=too_many, headers=scientist)).status_code == 422
    # Ingesting needs the service role.
    event = txn(ALICE, NOW, 1.0, 1.0)
    assert (await client.post("/v1/events", json=event, headers=scientist)).status_code == 403


async def test_a_request_past_the_event_budget_is_refused_not_cut(
    client: httpx.AsyncClient, producer: dict[str, str], scientist: dict[str, str]
) -> None:
    events = [txn(ALICE, NOW - timedelta(minutes=i), 1.0, 1.0) for i in range(51)]
    assert (await client.post("/v1/events", json={"events": events}, headers=producer)).is_success
    row = {"entity_id": ALICE, "label_time": NOW.isoformat()}
    response = await client.post(HISTORICAL, json={"rows": [row]}, headers=scientist)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "rows"]


async def test_excluded_entities_are_left_out(container: Container) -> None:
    events = [
        StoredEvent(entity, NOW - timedelta(hours=2), {"amount": 3.0}) for entity in ("e1", "e2")
    ]
    tenant = await _store(container.sessions, events)
    rows = [("e1", NOW), ("e2", NOW), ("e1", NOW - timedelta(days=1))]
    async with container.sessions() as session:
        result = await historical_features(session, tenant, VIEW, rows, exclude={"e1"})
    assert [(r["entity_id"], r["last_amount"]) for r in result] == [("e2", 3.0)]


async def _store(
    sessions: async_sessionmaker[AsyncSession], events: list[StoredEvent], tenant: str | None = None
) -> str:
    """Store ``events`` (by default of a fresh tenant, so that examples never see each
    other's events); the tenant."""
    tenant = tenant or new_id("ten")
    rows = [{"id": new_id("fev"), "tenant_id": tenant, "event_type": "txn",
             "entity_id": e.entity_id, "event_ts": e.event_ts, "ingested_ts": NOW,
             "event_id": None, "payload": e.payload} for e in events]  # fmt: skip
    async with sessions.begin() as session:
        await FeatureEventRepository(session).append(rows)
    return tenant


@settings(max_examples=100, deadline=None)
@given(data=st.data(), events=streams(max_events=25), windowed=st.booleans())
def test_stored_training_sets_never_see_events_after_the_label(
    database: str, data: st.DataObject, events: list[StoredEvent], windowed: bool
) -> None:
    """Against the real store, so the query's time bounds are what is tested: its own engine
    per example (an example runs outside the fixtures' event loop), its own tenant."""
    view = WINDOWED_VIEW if windowed else VIEW
    rows = data.draw(label_rows(events))
    latest = max(label for _, label in rows)
    later = [StoredEvent(e, latest + timedelta(seconds=1), data.draw(payloads())) for e, _ in rows]
    expected = [
        {"entity_id": entity, "label_time": label, **reference(view, events, entity, label)}
        for entity, label in rows
    ]
    before, after = anyio.run(_retrieve_twice, database, view, events, rows, later)
    assert before == expected
    assert after == expected


async def _retrieve_twice(
    url: str,
    view: FeatureView,
    events: list[StoredEvent],
    rows: list[tuple[str, datetime]],
    later: list[StoredEvent],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The training set of ``rows`` over ``events``, then again once ``later`` is stored."""
    engine = create_engine(DatabaseSettings(url=SecretStr(url)))
    sessions = create_sessionmaker(engine)
    try:
        tenant = await _store(sessions, events)
        async with sessions() as session:
            before = await historical_features(session, tenant, view, rows)
        await _store(sessions, later, tenant)
        async with sessions() as session:
            after = await historical_features(session, tenant, view, rows)
        return before, after
    finally:
        await engine.dispose()


async def test_the_stored_slice_keeps_both_window_edges(container: Container) -> None:
    """An aggregates-only view reads a time slice; the earliest row's longest window must be
    in it to the microsecond, and nothing after the latest label."""
    label = NOW - timedelta(days=10)
    times = [
        label - timedelta(days=30),  # out: exactly one window old
        label - timedelta(days=30) + timedelta(microseconds=1),
        label - timedelta(days=20),
        label,
        label + timedelta(microseconds=1),  # out: after the label
    ]
    events = [StoredEvent("e1", t, {"amount": float(i)}) for i, t in enumerate(times)]
    tenant = await _store(container.sessions, events)
    rows = [("e1", label), ("e2", NOW)]
    async with container.sessions() as session:
        first, _ = await historical_features(session, tenant, WINDOWED_VIEW, rows)
    assert (first["n_30d"], first["max_30d"]) == (3, 3.0)


async def test_the_event_budget_counts_every_chunk(container: Container) -> None:
    events = [StoredEvent("e1", NOW - timedelta(minutes=i), {"amount": 1.0}) for i in range(5)]
    tenant = await _store(container.sessions, events)
    async with container.sessions() as session:
        with pytest.raises(InvalidRequest):
            await historical_features(session, tenant, VIEW, [("e1", NOW)], max_events=4)
        [row] = await historical_features(session, tenant, VIEW, [("e1", NOW)], max_events=5)
    assert row["n_1h"] == 5
