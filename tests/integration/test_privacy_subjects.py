"""``/v1/subjects`` over HTTP: subjects and their sealed vault, consents, preferences, tenant
isolation, and that a refused body changes nothing."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ombud.audit.events import Outcome
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.privacy.tables import (
    DataSubjectRow,
    SubjectConsentRow,
    SubjectPreferenceRow,
    SubjectVaultRow,
)
from ombud.storage.tables import metadata
from tests.integration.helpers import audit_for

pytestmark = pytest.mark.anyio

SUBJECTS = "/v1/subjects"
EMAIL = "ada.lovelace@example.org"
PROFILE = {
    "region": "eu",
    "name": "Ada Lovelace",
    "email": EMAIL,
    "phone": "+44 20 7946 0000",
    "address": "12 St James's Square, London",
    "date_of_birth": "1815-12-10",
    "external_id": "crm-000042",
}


async def _headers(container: Container, tenant: str, *roles: str) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=roles)).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def service(container: Container) -> dict[str, str]:
    return await _headers(container, "bank", "service")


@pytest.fixture
async def officer(container: Container) -> dict[str, str]:
    return await _headers(container, "bank", "compliance_officer")


async def _subject(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    created = await client.post(SUBJECTS, json=PROFILE, headers=headers)
    assert created.status_code == 201, created.text
    subject_id: str = created.json()["subject_id"]
    return subject_id


async def _rows(container: Container, table: Any) -> list[Any]:
    async with container.sessions() as session:
        return list((await session.scalars(select(table))).all())


async def test_a_subject_is_created_with_its_pii_only_sealed_in_the_vault(
    client: httpx.AsyncClient, container: Container, service: dict[str, str]
) -> None:
    subject_id = await _subject(client, service)
    assert re.fullmatch(r"sub_[0-9a-f]{32}", subject_id)

    [vault] = await _rows(container, SubjectVaultRow)
    assert vault.subject_id == subject_id
    assert EMAIL.encode() not in vault.sealed
    assert b"Lovelace" not in vault.sealed
    [subject] = await _rows(container, DataSubjectRow)
    assert subject.external_ref is not None
    assert "crm-000042" not in subject.external_ref
    # No table holds the email in clear.
    async with container.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                assert EMAIL not in repr(tuple(row)), table.name
                assert EMAIL.encode() not in b"".join(v for v in row if isinstance(v, bytes)), (
                    table.name
                )

    created = await client.post(SUBJECTS, json=PROFILE, headers=service)
    assert created.status_code == 409  # the same external id again


async def test_the_profile_is_read_back_only_with_a_purpose_the_layer_allows(
    client: httpx.AsyncClient, service: dict[str, str], officer: dict[str, str]
) -> None:
    subject_id = await _subject(client, service)
    url = f"{SUBJECTS}/{subject_id}"

    missing = await client.get(url, headers=officer)
    assert (missing.status_code, missing.json()["type"]) == (
        403,
        "urn:ombud:problem:purpose_required",
    )

    fraud = await client.get(url, headers={**officer, "X-Ombud-Purpose": "fraud_detection"})
    assert fraud.status_code == 200, fraud.text
    body = fraud.json()
    assert body["purpose"] == "fraud_detection"
    expected = {k: v for k, v in PROFILE.items() if k != "region"}
    assert body["profile"] == expected

    unknown = await client.get(url, headers={**officer, "X-Ombud-Purpose": "curiosity"})
    assert (unknown.status_code, unknown.json()["type"]) == (
        422,
        "urn:ombud:problem:unknown_purpose",
    )


async def test_subjects_consents_and_preferences_are_tenant_isolated(
    client: httpx.AsyncClient, container: Container, service: dict[str, str]
) -> None:
    subject_id = await _subject(client, service)
    other = await _headers(container, "other-bank", "service", "compliance_officer")
    purpose = {"X-Ombud-Purpose": "fraud_detection"}
    consent = {"purpose": "marketing", "status": "granted", "source": "web_form"}
    prefs = {"personalization_opt_out": True, "automated_decision_opt_out": True}
    answers = [
        await client.get(f"{SUBJECTS}/{subject_id}", headers={**other, **purpose}),
        await client.get(f"{SUBJECTS}/{subject_id}/consents", headers=other),
        await client.post(f"{SUBJECTS}/{subject_id}/consents", json=consent, headers=other),
        await client.get(f"{SUBJECTS}/{subject_id}/preferences", headers=other),
        await client.put(f"{SUBJECTS}/{subject_id}/preferences", json=prefs, headers=other),
    ]
    assert [a.status_code for a in answers] == [404] * 5
    assert await _rows(container, SubjectConsentRow) == []
    assert await _rows(container, SubjectPreferenceRow) == []
    unknown = await client.get(f"{SUBJECTS}/sub_{'0' * 32}/consents", headers=service)
    assert unknown.status_code == 404


async def test_roles_are_enforced(
    client: httpx.AsyncClient, container: Container, service: dict[str, str]
) -> None:
    analyst = await _headers(container, "bank", "analyst")
    assert (await client.post(SUBJECTS, json=PROFILE, headers=analyst)).status_code == 403
    subject_id = await _subject(client, service)
    read = await client.get(
        f"{SUBJECTS}/{subject_id}", headers={**analyst, "X-Ombud-Purpose": "fraud_detection"}
    )
    assert read.status_code == 403  # subject.read: compliance officers and services
    consent = {"purpose": "marketing", "status": "granted", "source": "web_form"}
    posted = await client.post(f"{SUBJECTS}/{subject_id}/consents", json=consent, headers=analyst)
    assert posted.status_code == 403
    assert (
        await client.get(f"{SUBJECTS}/{subject_id}/consents", headers=analyst)
    ).status_code == 200


async def test_consents_keep_their_history_and_the_newest_is_current(
    client: httpx.AsyncClient, container: Container, service: dict[str, str]
) -> None:
    subject_id = await _subject(client, service)
    url = f"{SUBJECTS}/{subject_id}/consents"
    granted = await client.post(
        url, json={"purpose": "marketing", "status": "granted", "source": "web_form",
                   "recorded_at": "2025-06-01T10:00:00Z"}, headers=service,
    )  # fmt: skip
    assert granted.status_code == 201, granted.text
    withdrawn = await client.post(
        url, json={"purpose": "marketing", "status": "withdrawn", "source": "call_center"},
        headers=service,
    )  # fmt: skip
    assert withdrawn.status_code == 201
    listed = (await client.get(url, headers=service)).json()
    assert [c["status"] for c in listed["history"]] == ["granted", "withdrawn"]
    assert listed["current"]["marketing"]["status"] == "withdrawn"
    assert listed["current"]["marketing"]["source"] == "call_center"

    [event] = await audit_for(container, withdrawn.headers["X-Request-Id"])
    assert (event.action, event.outcome) == ("consent.withdraw", Outcome.SUCCESS)
    assert (event.subject, event.purpose) == (subject_id, "marketing")


@pytest.mark.parametrize(
    "body",
    [
        {"purpose": "astrology", "status": "granted", "source": "web_form"},
        {"purpose": "marketing", "status": "maybe", "source": "web_form"},
        {"purpose": "marketing", "status": "granted"},
        {"purpose": "marketing", "status": "granted", "source": "web_form", "extra": 1},
        {"purpose": "marketing", "status": "granted", "source": "web_form",
         "recorded_at": "2999-01-01T00:00:00Z"},
        {"purpose": "marketing", "status": "granted", "source": "web_form",
         "recorded_at": "2025-01-01T00:00:00"},
    ],
)  # fmt: skip
async def test_a_bad_consent_is_refused_and_records_nothing(
    client: httpx.AsyncClient, container: Container, service: dict[str, str], body: Any
) -> None:
    subject_id = await _subject(client, service)
    answer = await client.post(f"{SUBJECTS}/{subject_id}/consents", json=body, headers=service)
    assert answer.status_code == 422, answer.text
    assert await _rows(container, SubjectConsentRow) == []


@pytest.mark.parametrize(
    "body",
    [
        {**PROFILE, "region": "us"},  # not in OMBUD_PRIVACY__REGIONS
        {**PROFILE, "email": "not-an-email"},
        {**PROFILE, "date_of_birth": "yesterday"},
        {**PROFILE, "ssn": "078-05-1120"},
        {"name": "no region"},
    ],
)
async def test_a_bad_subject_is_refused_and_creates_nothing(
    client: httpx.AsyncClient, container: Container, service: dict[str, str], body: Any
) -> None:
    answer = await client.post(SUBJECTS, json=body, headers=service)
    assert answer.status_code == 422, answer.text
    assert await _rows(container, DataSubjectRow) == []
    assert await _rows(container, SubjectVaultRow) == []


async def test_preferences_are_set_with_history_and_audited(
    client: httpx.AsyncClient, container: Container, service: dict[str, str]
) -> None:
    subject_id = await _subject(client, service)
    url = f"{SUBJECTS}/{subject_id}/preferences"
    initial = (await client.get(url, headers=service)).json()
    assert initial["history"] == []
    assert initial["current"]["personalization_opt_out"] is False
    assert initial["current"]["automated_decision_opt_out"] is False

    first = {"personalization_opt_out": True, "automated_decision_opt_out": False}
    second = {"personalization_opt_out": True, "automated_decision_opt_out": True}
    assert (await client.put(url, json=first, headers=service)).status_code == 200
    changed = await client.put(url, json=second, headers=service)
    assert changed.status_code == 200
    for bad in ({"personalization_opt_out": "yes", "automated_decision_opt_out": True},
                {"personalization_opt_out": True}, {**second, "profiling": False}):  # fmt: skip
        assert (await client.put(url, json=bad, headers=service)).status_code == 422

    read = (await client.get(url, headers=service)).json()
    assert [h["automated_decision_opt_out"] for h in read["history"]] == [False, True]
    assert read["current"]["automated_decision_opt_out"] is True
    [event] = await audit_for(container, changed.headers["X-Request-Id"])
    assert event.action == "subject.preferences"
    assert event.detail["before"] == first
    assert event.detail["after"] == second
