"""The credit-risk predict path reads the applicant's standing data from the feature store:
through the data access layer (purpose, consent), recorded with the view's version, replaced by
non-personalized values for a subject who opted out of personalization."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select

from ombud.config import FeatureSettings, Settings
from ombud.container import Container
from ombud.demo.credit_model import PROFILE_VIEW
from ombud.demo.example import APPLICATION, EXAMPLE_APPLICANT
from ombud.features.materialize import MATERIALIZE_JOB
from ombud.features.wiring import materialize_jobs
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.jobs.registry import JobContext
from ombud.predictions.tables import PredictionRow
from tests.integration.helpers import PREDICT, audit_for

pytestmark = pytest.mark.anyio

VIEWS_DIR = Path(__file__).resolve().parents[2] / "features"
SCORING = "credit_scoring"
APPLICATION_ONLY = {k: v for k, v in EXAMPLE_APPLICANT.items() if k in APPLICATION}
STANDING = {
    k: v for k, v in EXAMPLE_APPLICANT.items() if k not in APPLICATION and k not in ("age", "sex")
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"features": FeatureSettings(views_dir=VIEWS_DIR)})


@dataclass
class Bank:
    client: httpx.AsyncClient
    container: Container
    service: dict[str, str]

    async def applicant(self, *, consent: bool = True, profile: bool = True) -> str:
        created = await self.client.post(
            "/v1/subjects", json={"region": "eu"}, headers=self.service
        )
        assert created.status_code == 201, created.text
        subject: str = created.json()["subject_id"]
        if consent:
            await self.consent(subject, "granted")
        if profile:
            event = {
                "type": "applicant_profile", "entity_id": subject, "payload": STANDING,
                "timestamp": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            }  # fmt: skip
            stored = await self.client.post("/v1/events", json=event, headers=self.service)
            assert stored.status_code == 201, stored.text
            handler = default_registry(features=materialize_jobs(self.container)).handler(
                MATERIALIZE_JOB
            )
            await handler(cast(JobContext, SimpleNamespace(payload={}, clock=self.container.clock)))
        return subject

    async def consent(self, subject: str, status: str) -> None:
        body = {"purpose": SCORING, "status": status, "source": "web_form"}
        answer = await self.client.post(
            f"/v1/subjects/{subject}/consents", json=body, headers=self.service
        )
        assert answer.status_code == 201, answer.text

    async def predict(
        self, subject: str | None, features: dict[str, Any], purpose: str = SCORING
    ) -> httpx.Response:
        headers = {**self.service, "X-Ombud-Purpose": purpose}
        if subject is not None:
            headers["X-Ombud-Subject"] = subject
        return await self.client.post(PREDICT, json={"features": features}, headers=headers)


@pytest.fixture
async def bank(client: httpx.AsyncClient, container: Container, api_key: str) -> Bank:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant="demo", roles=["service"])).token
    return Bank(client, container, {"Authorization": f"Bearer {token}"})


async def _recorded(container: Container, prediction_id: str) -> PredictionRow:
    async with container.sessions() as session:
        row = await session.get(PredictionRow, prediction_id)
    assert row is not None
    return row


async def test_the_standing_data_comes_from_the_feature_view_and_is_recorded(bank: Bank) -> None:
    subject = await bank.applicant()
    full = await bank.predict(None, EXAMPLE_APPLICANT)
    fetched = await bank.predict(subject, APPLICATION_ONLY)

    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["score"] == full.json()["score"]
    row = await _recorded(bank.container, fetched.json()["prediction_id"])
    assert row.feature_views == {PROFILE_VIEW.name: PROFILE_VIEW.version}
    events = await audit_for(bank.container, fetched.headers["X-Request-Id"])
    assert "data.access" in [e.action for e in events]
    # Everything in the body: nothing is read, nothing recorded as read.
    sent = await bank.predict(subject, EXAMPLE_APPLICANT)
    assert (await _recorded(bank.container, sent.json()["prediction_id"])).feature_views == {}


async def test_no_consent_or_a_wrong_purpose_refuses_the_call_and_a_withdrawal_applies_next(
    bank: Bank,
) -> None:
    subject = await bank.applicant()
    assert (await bank.predict(subject, APPLICATION_ONLY)).status_code == 200
    await bank.consent(subject, "withdrawn")
    refused = await bank.predict(subject, APPLICATION_ONLY)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("consent_required")
    wrong = await bank.predict(subject, APPLICATION_ONLY, purpose="marketing")
    assert wrong.status_code == 403
    never = await bank.applicant(consent=False)
    assert (await bank.predict(never, APPLICATION_ONLY)).json()["type"].endswith("consent_required")
    async with bank.container.sessions() as session:
        stored = await session.scalars(
            select(PredictionRow.id).where(PredictionRow.subject.in_([subject, never]))
        )
        assert len(list(stored)) == 1


async def test_an_opted_out_subject_is_scored_without_its_personal_features(bank: Bank) -> None:
    subject = await bank.applicant(consent=False)
    prefs = {"personalization_opt_out": True, "automated_decision_opt_out": False}
    answer = await bank.client.put(
        f"/v1/subjects/{subject}/preferences", json=prefs, headers=bank.service
    )
    assert answer.status_code == 200

    scored = await bank.predict(subject, APPLICATION_ONLY)

    # No consent was ever given: a read of its features would have been refused.
    assert scored.status_code == 200, scored.text
    events = await audit_for(bank.container, scored.headers["X-Request-Id"])
    assert "data.access" not in [e.action for e in events]
    [call] = [e for e in events if e.action == "model.predict"]
    assert "model.features:non_personalized" in call.detail["findings"]
    fallback = {**APPLICATION_ONLY, **PROFILE_VIEW.fallback}
    assert scored.json()["score"] == (await bank.predict(None, fallback)).json()["score"]


async def test_missing_features_or_subject_are_named(bank: Bank) -> None:
    unmaterialized = await bank.applicant(profile=False)
    missing = await bank.predict(unmaterialized, APPLICATION_ONLY)
    assert missing.status_code == 422, missing.text
    errors = missing.json()["errors"]
    assert {e["type"] for e in errors} == {"feature_unavailable"}
    assert {e["loc"][-1] for e in errors} == set(STANDING)
    anonymous = await bank.predict(None, APPLICATION_ONLY)
    assert anonymous.status_code == 422
    assert {e["loc"][-1] for e in anonymous.json()["errors"]} >= set(STANDING)
