"""Residency of data: a subject's rows are only in its region's store.

Two regions, ``eu`` in the main database and ``us`` in a database of its own (a second SQLite
file, or a second PostgreSQL database). Subjects of both regions are created, given consents
and preferences, read through the data access layer, fed events, materialized and read online;
then every table of both databases (enumerated from the schema metadata) is scanned for each
subject's id: it is found in its own store's subject-data tables and in no table of the other
store but the control plane's (the audit trail, the key registry).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from ombud.app import create_app
from ombud.config import Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.features.materialize import MATERIALIZE_JOB
from ombud.features.wiring import materialize_jobs
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.jobs.registry import JobContext
from ombud.privacy.tables import SubjectAccessRow
from tests.conftest import empty_database
from tests.region_support import tables_naming, two_regions

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
SCORING = "credit_scoring"
SUBJECT_TABLES = {
    "data_subjects",
    "subject_vault",
    "subject_consents",
    "subject_preferences",
    "subject_access_log",
    "feature_events",
    "online_features",
}
"""Where a subject's own data is kept: only ever in its home store."""
CONTROL_PLANE = {"audit_events", "data_keys"}
"""Tables of the main database that name subjects of every region by pseudonymous id only:
the audit trail and the key registry (the subject's data key, wrapped)."""


@pytest.fixture
async def app(settings: Settings, regional_database: str) -> AsyncIterator[FastAPI]:
    application = create_app(two_regions(settings, regional_database), clock=FrozenClock(NOW))
    async with application.router.lifespan_context(application):
        yield application
        await empty_database(application.state.container)


async def _headers(container: Container, tenant: str, role: str = "service") -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=(role,))).token
    return {"Authorization": f"Bearer {token}"}


async def _populate(client: httpx.AsyncClient, headers: dict[str, str], region: str) -> str:
    body = {"region": region, "name": f"Resident of {region}", "email": f"{region}@example.org"}
    created = await client.post("/v1/subjects", json=body, headers=headers)
    assert created.status_code == 201, created.text
    subject: str = created.json()["subject_id"]
    consent = {"purpose": SCORING, "status": "granted", "source": "web_form"}
    answer = await client.post(f"/v1/subjects/{subject}/consents", json=consent, headers=headers)
    assert answer.status_code == 201, answer.text
    prefs = {"personalization_opt_out": False, "automated_decision_opt_out": True}
    answer = await client.put(f"/v1/subjects/{subject}/preferences", json=prefs, headers=headers)
    assert answer.status_code == 200, answer.text
    event = {
        "type": "transaction", "entity_id": subject, "event_id": f"ev-{subject}",
        "timestamp": (NOW - timedelta(days=1)).isoformat(),
        "payload": {"amount": 12.5, "balance": 100.0, "channel": "card"},
    }  # fmt: skip
    answer = await client.post("/v1/events", json=event, headers=headers)
    assert answer.status_code == 201, answer.text
    return subject


async def _materialize(container: Container) -> None:
    handler = default_registry(features=materialize_jobs(container)).handler(MATERIALIZE_JOB)
    await handler(cast(JobContext, SimpleNamespace(payload={}, clock=container.clock)))


async def test_each_subjects_rows_are_only_in_its_regions_store(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers = await _headers(container, f"t{uuid4().hex[:12]}")
    eu = await _populate(client, headers, "eu")
    us = await _populate(client, headers, "us")
    for subject in (eu, us):
        container.regions.forget(subject)  # a cold lookup: ask the stores themselves
    await _materialize(container)
    for subject in (eu, us):
        read = await client.get(
            f"/v1/subjects/{subject}", headers={**headers, "X-Ombud-Purpose": SCORING}
        )
        assert read.status_code == 200, read.text
        online = await client.post(
            "/v1/features/credit_applicant/online",
            json={"entity_ids": [subject]}, headers={**headers, "X-Ombud-Purpose": SCORING},
        )  # fmt: skip
        assert online.status_code == 200, online.text
        assert online.json()["rows"][0]["values"]["txn_count_30d"] == 1

    main, regional = container.regions.main.engine, container.regions.for_region("us").engine
    assert await tables_naming(main, eu) >= SUBJECT_TABLES
    assert await tables_naming(regional, us) >= SUBJECT_TABLES
    assert await tables_naming(regional, eu) == set()
    assert await tables_naming(main, us) <= CONTROL_PLANE


async def test_training_sets_and_batched_reads_span_regions(
    client: httpx.AsyncClient, container: Container
) -> None:
    tenant = f"t{uuid4().hex[:12]}"
    headers = await _headers(container, tenant)
    eu = await _populate(client, headers, "eu")
    us = await _populate(client, headers, "us")
    await _materialize(container)
    online = await client.post(
        "/v1/features/credit_applicant/online",
        json={"entity_ids": [us, eu]}, headers={**headers, "X-Ombud-Purpose": SCORING},
    )  # fmt: skip
    assert online.status_code == 200, online.text
    assert [r["entity_id"] for r in online.json()["rows"]] == [us, eu]
    assert all(r["values"]["txn_sum_30d"] == 12.5 for r in online.json()["rows"])

    scientist = await _headers(container, tenant, "data_scientist")
    rows = [{"entity_id": s, "label_time": NOW.isoformat()} for s in (us, eu, us)]
    built = await client.post(
        "/v1/features/credit_applicant/historical", json={"rows": rows}, headers=scientist
    )
    assert built.status_code == 200, built.text
    answer: list[dict[str, Any]] = built.json()["rows"]
    assert [r["entity_id"] for r in answer] == [us, eu, us]
    assert [r["txn_count_30d"] for r in answer] == [1, 1, 1]


async def test_an_unknown_region_is_refused_and_stores_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers = await _headers(container, f"t{uuid4().hex[:12]}")
    body = {"region": "apac", "name": "Nobody", "email": "nobody@example.org"}
    answer = await client.post("/v1/subjects", json=body, headers=headers)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    for store in container.regions.stores:
        assert await tables_naming(store.engine, "nobody@example.org") == set()


async def test_an_external_id_names_one_subject_across_regions(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers = await _headers(container, f"t{uuid4().hex[:12]}")
    first = await client.post(
        "/v1/subjects", json={"region": "eu", "external_id": "cust-1"}, headers=headers
    )
    assert first.status_code == 201, first.text
    again = await client.post(
        "/v1/subjects", json={"region": "us", "external_id": "cust-1"}, headers=headers
    )
    assert again.status_code == 409, again.text
    racing = await asyncio.gather(*(
        client.post("/v1/subjects", json={"region": r, "external_id": "cust-2"}, headers=headers)
        for r in ("eu", "us")
    ))  # fmt: skip
    assert sorted(r.status_code for r in racing) == [201, 409]


async def test_a_batched_read_across_regions_is_all_or_nothing(
    client: httpx.AsyncClient, container: Container
) -> None:
    headers = await _headers(container, f"t{uuid4().hex[:12]}")
    eu = await _populate(client, headers, "eu")
    us = await _populate(client, headers, "us")
    withdrawn = {"purpose": SCORING, "status": "withdrawn", "source": "web_form"}
    answer = await client.post(f"/v1/subjects/{us}/consents", json=withdrawn, headers=headers)
    assert answer.status_code == 201
    for subject in (eu, us):
        container.regions.forget(subject)
    refused = await client.post(
        "/v1/features/credit_applicant/online",
        json={"entity_ids": [eu, us]}, headers={**headers, "X-Ombud-Purpose": SCORING},
    )  # fmt: skip
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("consent_required")
    for store in container.regions.stores:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(select(SubjectAccessRow.seq))).all()
        assert rows == [], store.name
