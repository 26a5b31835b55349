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
from ombud.core.clock import FrozenClock
from ombud.demo.credit_model import PROFILE_VIEW, feature_specs
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

    async def applicant(
        self, *, consent: bool = True, profile: bool = True, materialized_at: datetime | None = None
    ) -> str:
        """A registered subject of the bank's tenant, with consent for credit scoring and its
        standing data materialized (at ``materialized_at``, default now) unless told not to."""
        created = await self.client.post(
            "/v1/subjects", json={"region": "eu"}, headers=self.service
        )
        assert created.status_code == 201, created.text
        subject: str = created.json()["subject_id"]
        if consent:
            await self.consent(subject, "granted")
        if profile:
            at = materialized_at or datetime.now(UTC)
            event = {
                "type": "applicant_profile", "entity_id": subject, "payload": STANDING,
                "timestamp": (at - timedelta(minutes=1)).isoformat(),
            }  # fmt: skip
            stored = await self.client.post("/v1/events", json=event, headers=self.service)
            assert stored.status_code == 201, stored.text
            await self.materialize(materialized_at)
        return subject

    async def materialize(self, at: datetime | None = None) -> None:
        """Run the materialization job (as of ``at``, default now) for every subject."""
        handler = default_registry(features=materialize_jobs(self.container)).handler(
            MATERIALIZE_JOB
        )
        clock = FrozenClock(at) if at else self.container.clock
        await handler(cast(JobContext, SimpleNamespace(payload={}, clock=clock)))

    async def consent(self, subject: str, status: str) -> None:
        body = {"purpose": SCORING, "status": status, "source": "web_form"}
        answer = await self.client.post(
            f"/v1/subjects/{subject}/consents", json=body, headers=self.service
        )
        assert answer.status_code == 201, answer.text

    async def predict(
        self, subject: str | None, features: dict[str, Any], purpose: str | None = SCORING
    ) -> httpx.Response:
        headers = dict(self.service)
        if purpose is not None:
            headers["X-Ombud-Purpose"] = purpose
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


async def test_an_input_in_the_body_is_used_as_sent_and_the_store_fills_the_rest(
    bank: Bank,
) -> None:
    subject = await bank.applicant()
    other = "ge_200" if STANDING["checking_status"] != "ge_200" else "lt_0"
    sent = {**APPLICATION_ONLY, "checking_status": other}
    mixed = await bank.predict(subject, sent)
    assert mixed.status_code == 200, mixed.text
    expected = await bank.predict(None, {**EXAMPLE_APPLICANT, "checking_status": other})
    assert mixed.json()["score"] == expected.json()["score"]
    assert mixed.json()["score"] != (await bank.predict(subject, APPLICATION_ONLY)).json()["score"]
    row = await _recorded(bank.container, mixed.json()["prediction_id"])
    assert row.feature_views == {PROFILE_VIEW.name: PROFILE_VIEW.version}


async def test_no_consent_or_a_wrong_purpose_refuses_the_call_and_a_withdrawal_applies_next(
    bank: Bank,
) -> None:
    subject = await bank.applicant()
    assert (await bank.predict(subject, APPLICATION_ONLY)).status_code == 200
    await bank.consent(subject, "withdrawn")
    refused = await bank.predict(subject, APPLICATION_ONLY)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("consent_required")
    # The data access layer audits the refused read once; the call's own denial is the other.
    events = await audit_for(bank.container, refused.headers["X-Request-Id"])
    reads = [e for e in events if e.action == "data.access"]
    assert [e.outcome.value for e in reads] == ["denied"]
    assert [e.outcome.value for e in events if e.action == "model.predict"] == ["denied"]
    wrong = await bank.predict(subject, APPLICATION_ONLY, purpose="marketing")
    assert wrong.status_code == 403
    await bank.consent(subject, "granted")
    # Without a purpose (as with another one) nothing is read: policy refuses credit-risk
    # first (it needs credit_scoring), and the data access layer would refuse the read.
    undeclared = await bank.predict(subject, APPLICATION_ONLY, purpose=None)
    assert undeclared.status_code == 403, undeclared.text
    assert undeclared.json()["type"].endswith("policy_denied")
    events = await audit_for(bank.container, undeclared.headers["X-Request-Id"])
    assert "data.access" not in [e.action for e in events]
    never = await bank.applicant(consent=False)
    assert (await bank.predict(never, APPLICATION_ONLY)).json()["type"].endswith("consent_required")
    async with bank.container.sessions() as session:
        stored = await session.scalars(
            select(PredictionRow.id).where(PredictionRow.subject.in_([subject, never]))
        )
        assert len(list(stored)) == 1  # only the call before the withdrawal


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
    # Nothing was read from the view, so the prediction does not name it.
    assert (await _recorded(bank.container, scored.json()["prediction_id"])).feature_views == {}


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


async def test_features_older_than_the_views_ttl_are_not_used(bank: Bank) -> None:
    ttl = timedelta(days=30)  # credit_applicant_profile v1: ttl_s 2592000
    subject = await bank.applicant(materialized_at=datetime.now(UTC) - ttl - timedelta(hours=1))

    refused = await bank.predict(subject, APPLICATION_ONLY)
    assert refused.status_code == 422, refused.text
    assert {e["type"] for e in refused.json()["errors"]} == {"feature_unavailable"}
    assert {e["loc"][-1] for e in refused.json()["errors"]} == set(STANDING)
    await bank.materialize(datetime.now(UTC) - ttl + timedelta(hours=1))
    assert (await bank.predict(subject, APPLICATION_ONLY)).status_code == 200


async def test_registration_checks_the_feature_view_against_the_inputs(
    client: httpx.AsyncClient, container: Container
) -> None:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant="demo", roles=["data_scientist"])).token
    headers = {"Authorization": f"Bearer {token}"}
    created = await client.post(
        "/v1/registry/models", json={"name": "scorer", "owner": "risk"}, headers=headers
    )
    assert created.status_code == 201, created.text

    async def register(source: dict[str, Any]) -> httpx.Response:
        body = {
            "artifact_uri": "file://artifacts/scorer.skops", "sha256": "ab" * 32,
            "format": "skops",
            "input_schema": [s.model_dump() for s in feature_specs()],
            "serving_config": {"feature_view": source},
        }  # fmt: skip
        return await client.post("/v1/registry/models/scorer/versions", json=body, headers=headers)

    declared = PROFILE_VIEW.model_dump()
    for bad, field in (
        ({**declared, "version": 9}, "name"),
        ({**declared, "name": "credit_applicant"}, "name"),  # aggregates, none an input
        ({**declared, "fallback": {"savings": "plenty"}}, "fallback"),
    ):
        refused = await register(bad)
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["loc"][:4] == ["body", "serving_config", "feature_view", field]
    assert (await register(declared)).status_code == 201
