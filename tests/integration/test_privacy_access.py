"""The data access layer: purpose, categories, consent, tenancy and policy decide every read of
subject data, over HTTP and from Python alike; refusals are audited, grants recorded."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from ombud.audit.events import Outcome
from ombud.container import Container
from ombud.core.errors import (
    ConsentRequired,
    Forbidden,
    NotFound,
    PurposeNotAllowed,
    PurposeRequired,
    UnknownPurpose,
)
from ombud.identity.principal import Principal
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.privacy.purposes import LawfulBasis
from ombud.privacy.tables import SubjectAccessRow
from tests.integration.helpers import audit_for

pytestmark = pytest.mark.anyio

SUBJECTS = "/v1/subjects"


async def _credentials(container: Container, tenant: str, *roles: str) -> tuple[str, Principal]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=roles)).token
        principal = await identity.authenticate(token)
    return token, principal


@pytest.fixture
async def service(container: Container) -> tuple[dict[str, str], Principal]:
    token, principal = await _credentials(container, "bank", "service")
    return {"Authorization": f"Bearer {token}"}, principal


@pytest.fixture
async def subject_id(client: httpx.AsyncClient, service: tuple[dict[str, str], Principal]) -> str:
    body = {"region": "eu", "name": "Grace Hopper", "email": "grace@example.org"}
    created = await client.post(SUBJECTS, json=body, headers=service[0])
    assert created.status_code == 201, created.text
    value: str = created.json()["subject_id"]
    return value


async def _consent(
    client: httpx.AsyncClient, headers: dict[str, str], subject_id: str, status: str
) -> None:
    body = {"purpose": "credit_scoring", "status": status, "source": "web_form"}
    answer = await client.post(f"{SUBJECTS}/{subject_id}/consents", json=body, headers=headers)
    assert answer.status_code == 201, answer.text


async def _accesses(container: Container) -> list[SubjectAccessRow]:
    async with container.sessions() as session:
        return list((await session.scalars(select(SubjectAccessRow))).all())


async def test_a_withdrawal_refuses_the_very_next_read_and_the_refusal_is_audited(
    client: httpx.AsyncClient,
    container: Container,
    service: tuple[dict[str, str], Principal],
    subject_id: str,
) -> None:
    headers = service[0]
    read = {**headers, "X-Ombud-Purpose": "credit_scoring"}
    url = f"{SUBJECTS}/{subject_id}"

    never = await client.get(url, headers=read)
    assert (never.status_code, never.json()["type"]) == (403, "urn:ombud:problem:consent_required")

    await _consent(client, headers, subject_id, "granted")
    allowed = await client.get(url, headers=read)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["profile"]["email"] == "grace@example.org"

    await _consent(client, headers, subject_id, "withdrawn")
    refused = await client.get(url, headers=read)
    assert (refused.status_code, refused.json()["type"]) == (
        403,
        "urn:ombud:problem:consent_required",
    )

    [event] = await audit_for(container, refused.headers["X-Request-Id"])
    assert (event.action, event.outcome, event.reason) == (
        "data.access", Outcome.DENIED, "consent_required",
    )  # fmt: skip
    assert (event.subject, event.purpose) == (subject_id, "credit_scoring")
    assert event.detail["categories"] == ["identity"]
    [granted] = await _accesses(container)
    assert (granted.purpose, granted.categories) == ("credit_scoring", ["identity"])
    assert granted.request_id == allowed.headers["X-Request-Id"]


async def test_a_purpose_may_not_read_a_category_it_does_not_list(
    client: httpx.AsyncClient,
    container: Container,
    service: tuple[dict[str, str], Principal],
    subject_id: str,
) -> None:
    # marketing reads contact and behavioural data, not identity; consent does not change that.
    consent = {"purpose": "marketing", "status": "granted", "source": "web_form"}
    await client.post(f"{SUBJECTS}/{subject_id}/consents", json=consent, headers=service[0])
    answer = await client.get(
        f"{SUBJECTS}/{subject_id}", headers={**service[0], "X-Ombud-Purpose": "marketing"}
    )
    assert (answer.status_code, answer.json()["type"]) == (
        403, "urn:ombud:problem:purpose_not_allowed",
    )  # fmt: skip
    [event] = await audit_for(container, answer.headers["X-Request-Id"])
    assert (event.outcome, event.reason) == (Outcome.DENIED, "purpose_not_allowed")
    assert await _accesses(container) == []


async def test_the_python_api_applies_the_same_rules(
    client: httpx.AsyncClient,
    container: Container,
    service: tuple[dict[str, str], Principal],
    subject_id: str,
) -> None:
    principal = service[1]
    access = container.data_access

    refusals = [
        (None, ["financial"], PurposeRequired),
        ("curiosity", ["financial"], UnknownPurpose),
        ("credit_scoring", ["contact"], PurposeNotAllowed),
        ("credit_scoring", ["financial"], ConsentRequired),
    ]
    for n, (purpose, categories, problem) in enumerate(refusals):
        with pytest.raises(problem):
            await access.check(
                principal, subject_id=subject_id, purpose=purpose, categories=categories,
                request_id=f"req_refused_{n}",
            )  # fmt: skip
        [event] = await audit_for(container, f"req_refused_{n}")
        assert (event.action, event.subject, event.purpose) == ("data.access", subject_id, purpose)
        assert event.outcome in (Outcome.DENIED, Outcome.REJECTED)

    fraud = await access.check(
        principal, subject_id=subject_id, purpose="fraud_detection",
        categories=["financial", "behavioural"],
    )  # fmt: skip
    assert fraud.lawful_basis is LawfulBasis.LEGITIMATE_INTEREST
    assert (fraud.subject_id, fraud.tenant_id) == (subject_id, principal.tenant_id)

    await _consent(client, service[0], subject_id, "granted")
    credit = await access.check(
        principal, subject_id=subject_id, purpose="credit_scoring", categories=["financial"]
    )
    await _consent(client, service[0], subject_id, "withdrawn")
    with pytest.raises(ConsentRequired):
        await access.check(
            principal, subject_id=subject_id, purpose="credit_scoring", categories=["financial"]
        )
    history = await _accesses(container)
    assert [(a.access_id, a.purpose, a.actor) for a in history] == [
        (fraud.access_id, "fraud_detection", principal.id),
        (credit.access_id, "credit_scoring", principal.id),
    ]


async def test_tenancy_and_roles_gate_the_python_api(container: Container, subject_id: str) -> None:
    _, stranger = await _credentials(container, "other-bank", "service")
    with pytest.raises(NotFound):
        await container.data_access.check(
            stranger, subject_id=subject_id, purpose="fraud_detection", categories=["financial"]
        )
    _, engineer = await _credentials(container, "bank", "ml_engineer")
    with pytest.raises(Forbidden):
        await container.data_access.check(
            engineer, subject_id=subject_id, purpose="fraud_detection", categories=["financial"]
        )
    assert await _accesses(container) == []
