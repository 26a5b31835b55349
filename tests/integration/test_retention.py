"""Retention: the nightly ``privacy.retention`` job removes, on every store, what outlived the
retention of its data category or purpose, keeps the rest, audits what it removed, and removes
nothing more when run again."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ombud.app import create_app
from ombud.audit.repository import AuditFilter, AuditRepository
from ombud.config import PrivacySettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.demo.seed import seed_demo
from ombud.features.tables import FeatureEventRow
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.jobs.registry import JobContext
from ombud.predictions.tables import PredictionRow
from ombud.privacy.retention import RETENTION_CRON, RETENTION_JOB, RETENTION_SCHEDULE
from ombud.privacy.tables import SubjectAccessRow
from ombud.privacy.wiring import privacy_jobs
from ombud.review.tables import ReviewRow
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant
from tests.region_support import two_regions

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
FINANCIAL_DAYS = 3650
"""The shipped catalog keeps financial data (the credit_applicant view's category) and
credit-scoring records this long."""


@pytest.fixture
async def app(settings: Settings, regional_database: str) -> AsyncIterator[FastAPI]:
    application = create_app(two_regions(settings, regional_database), clock=FrozenClock(NOW))
    async with application.router.lifespan_context(application):
        yield application
        await empty_database(application.state.container)


async def _count(engine: AsyncEngine, column: Any, *where: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count(column)).where(*where))).scalar_one())


async def _purge(container: Container, at: datetime) -> None:
    handler = default_registry(privacy=privacy_jobs(container)).handler(RETENTION_JOB)
    await handler(cast(JobContext, SimpleNamespace(payload={}, clock=FrozenClock(at))))


async def test_retention_removes_only_what_outlived_its_period_on_every_store(
    client: httpx.AsyncClient, container: Container
) -> None:
    await seed_demo(container)
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant="demo", roles=["service"])).token
    headers = {"Authorization": f"Bearer {token}"}
    subjects = {}
    for region in ("eu", "us"):
        created = await client.post("/v1/subjects", json={"region": region}, headers=headers)
        subject = subjects[region] = created.json()["subject_id"]
        consent = {"purpose": "credit_scoring", "status": "granted", "source": "web_form"}
        await client.post(f"/v1/subjects/{subject}/consents", json=consent, headers=headers)
        events = [
            {"type": "transaction", "entity_id": subject, "timestamp": at.isoformat(),
             "payload": {"amount": 1.0, "balance": 2.0, "channel": "card"}}
            for at in (NOW - timedelta(days=FINANCIAL_DAYS + 50), NOW - timedelta(days=10))
        ]  # fmt: skip
        stored = await client.post("/v1/events", json={"events": events}, headers=headers)
        assert stored.status_code == 201, stored.text
        read = await client.post(
            "/v1/features/credit_applicant/online", json={"entity_ids": [subject]},
            headers={**headers, "X-Ombud-Purpose": "credit_scoring"},
        )  # fmt: skip
        assert read.status_code == 200, read.text
        scored = await client.post(
            PREDICT, json=applicant(),
            headers={**headers, "X-Ombud-Purpose": "credit_scoring", "X-Ombud-Subject": subject},
        )  # fmt: skip
        assert scored.status_code == 200, scored.text
    stores = {s.name: s.engine for s in container.regions.stores}
    assert set(stores) == {"main", "us"}

    await _purge(container, NOW)
    # Only the events older than the financial retention went, in both regions' stores.
    for engine in stores.values():
        assert await _count(engine, FeatureEventRow.id) == 1
        assert await _count(engine, SubjectAccessRow.seq) == 1
    assert await _count(stores["main"], PredictionRow.id) == 2
    await _purge(container, NOW)  # again: nothing more
    assert sum([await _count(e, FeatureEventRow.id) for e in stores.values()]) == 2

    later = NOW + timedelta(days=FINANCIAL_DAYS + 1)
    await _purge(container, later)
    for engine in stores.values():
        assert await _count(engine, FeatureEventRow.id) == 0
        assert await _count(engine, SubjectAccessRow.seq) == 0
    assert await _count(stores["main"], PredictionRow.id) == 0

    async with container.sessions() as session:
        links = await AuditRepository(session).find(AuditFilter(action=RETENTION_JOB))
    page = [link.event for link in links if link.event is not None]
    removed = [event.detail["removed"] for event in page]
    assert {"main": {"feature_events": 1}, "us": {"feature_events": 1}} in removed
    assert {} in removed
    last = next(r for r in removed if "predictions" in r.get("main", {}))
    assert last["main"] == {"feature_events": 1, "subject_access_log": 1, "predictions": 2}
    assert last["us"] == {"feature_events": 1, "subject_access_log": 1}
    cutoffs = page[0].detail["cutoffs"]
    assert "feature_events:transaction" in cutoffs
    assert "predictions:credit_scoring" in cutoffs


async def test_retention_runs_every_night(container: Container) -> None:
    registry = default_registry(privacy=privacy_jobs(container))
    [spec] = [s for s in registry.schedules if s.name == RETENTION_SCHEDULE]
    assert (spec.kind, spec.cron) == (RETENTION_JOB, RETENTION_CRON)
    assert RETENTION_SCHEDULE not in {s.name for s in default_registry().schedules}


def _review(review_id: str, status: str, decided_at: datetime | None) -> ReviewRow:
    return ReviewRow(
        id=review_id, tenant_id="demo", subject="sub_x", resource="prediction:pred_x",
        requested_by="key_a", recommendation={"decision": "decline"},
        inputs={"income": 41000.0}, explanation={"income": -0.2}, reason="adverse",
        status=status, window_s=3600, deadline_at=NOW, decision=decided_at and "approve",
        justification=decided_at and "checked", decided_by=decided_at and "key_b",
        decided_at=decided_at, appeal_count=0, version=2, created_at=NOW - timedelta(days=9000),
        updated_at=NOW,
    )  # fmt: skip


async def test_retention_blanks_the_inputs_of_reviews_decided_before_the_cutoff(
    container: Container,
) -> None:
    longest = max(p.retention_days for p in container.data_access.catalog.purposes.values())
    old, recent = NOW - timedelta(days=longest + 1), NOW - timedelta(days=longest - 1)
    async with container.sessions.begin() as session:
        session.add_all([
            _review("rev_old", "decided", old), _review("rev_recent", "decided", recent),
            _review("rev_open", "pending", None),
        ])  # fmt: skip

    await _purge(container, NOW)
    await _purge(container, NOW)  # again: nothing more
    async with container.sessions() as session:
        rows = {r.id: r for r in await session.scalars(select(ReviewRow))}
        links = await AuditRepository(session).find(AuditFilter(action=RETENTION_JOB))
    assert (rows["rev_old"].inputs, rows["rev_old"].explanation) == ({}, None)
    assert (rows["rev_old"].decision, rows["rev_old"].justification) == ("approve", "checked")
    for kept in ("rev_recent", "rev_open"):
        assert rows[kept].inputs == {"income": 41000.0}
        assert rows[kept].explanation == {"income": -0.2}
    removed = sorted((link.event.detail["removed"] for link in links if link.event), key=len)
    assert removed == [{}, {"main": {"reviews": 1}}]
    cutoff = [link.event.detail["cutoffs"] for link in links if link.event][0]
    assert cutoff["reviews:decided"] == (NOW - timedelta(days=longest)).isoformat()


async def test_retention_schedule_comes_from_the_settings(container: Container) -> None:
    privacy = container.settings.privacy.model_copy(update={"retention_cron": "0 1 * * 0"})
    changed = container.settings.model_copy(update={"privacy": privacy})
    jobs = privacy_jobs(dataclasses.replace(container, settings=changed))
    [spec] = [s for s in default_registry(privacy=jobs).schedules if s.name == RETENTION_SCHEDULE]
    assert spec.cron == "0 1 * * 0"
    with pytest.raises(ValidationError, match="cron"):
        PrivacySettings(retention_cron="every night")
