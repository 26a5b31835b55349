"""The governed prediction, end to end through the ASGI app, on every storage backend."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import create_async_engine

from ombud.app import create_app
from ombud.audit.events import Outcome
from ombud.audit.tables import AuditEventRow
from ombud.audit.verify import verify_database
from ombud.config import DatabaseSettings, Settings
from ombud.container import Container
from ombud.demo.credit_model import EXAMPLE_APPLICANT
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.predictions.repository import PredictionRepository
from ombud.predictions.sealing import unseal
from ombud.predictions.tables import PredictionRow
from ombud.serving.stages import record_digest
from ombud.storage.database import create_sessionmaker
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer, prediction_count

pytestmark = pytest.mark.anyio


async def test_prediction_is_answered_recorded_and_audited(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.post(
        PREDICT,
        json=applicant(),
        headers={
            **bearer(api_key),
            "X-Ombud-Purpose": "credit_scoring",
            "X-Ombud-Subject": "subj-42",
            "X-Request-Id": "req-test-1",
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "credit-risk"
    assert body["model_version"] == 1
    assert 0.0 <= body["score"] <= 1.0
    assert body["decision"] == ("decline" if body["score"] >= body["threshold"] else "approve")
    request_id = response.headers["X-Request-Id"]
    assert request_id.startswith("req_")
    assert response.headers["X-Client-Request-Id"] == "req-test-1"

    async with container.sessions() as session:
        record = await PredictionRepository(session).get(body["prediction_id"])
    assert record is not None
    assert set(record.inputs) == {"sealed", "scope"}  # encrypted at rest, under the subject's key
    assert record.inputs["scope"] == "subject"
    inputs = await unseal(container.keys, record.inputs, prediction_id=record.id)
    assert inputs is not None
    assert inputs["credit_amount"] == 4500
    assert inputs["sex"] == "female"  # protected attribute kept for fairness work
    assert record.outputs["score"] == pytest.approx(body["score"])
    assert (record.subject, record.purpose, record.model_version) == (
        "subj-42",
        "credit_scoring",
        1,
    )
    assert record.latency_ms > 0

    [event] = await audit_for(container, request_id)
    assert await audit_for(container, "req-test-1") == []
    assert event.action == "model.predict"
    assert event.outcome is Outcome.SUCCESS
    assert event.actor == record.principal_id
    assert event.resource == "model:credit-risk:v1"
    assert (event.purpose, event.subject) == ("credit_scoring", "subj-42")
    assert event.detail["prediction_id"] == body["prediction_id"]


async def test_score_depends_on_the_inputs_and_adverse_decisions_go_to_review(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    safe = applicant(checking_status="none", credit_history="critical", duration_months=6,
                     credit_amount=800, savings="ge_1000")  # fmt: skip
    risky = applicant(checking_status="lt_0", credit_history="no_credits", duration_months=60,
                      credit_amount=15000, savings="lt_100")  # fmt: skip
    approved = await client.post(PREDICT, json=safe, headers=bearer(api_key))
    held = await client.post(PREDICT, json=risky, headers=bearer(api_key))

    assert approved.status_code == 200
    assert approved.json()["score"] < 0.5
    # The default policy sends adverse credit decisions to a human (202 with the review id).
    assert held.status_code == 202
    review_id = held.json()["review_id"]
    assert held.headers["Location"] == f"/v1/reviews/{review_id}"
    # The caller sees the review's status, but not the machine's answer before a human decides.
    polled = await client.get(f"/v1/reviews/{review_id}", headers=bearer(api_key))
    assert polled.status_code == 200
    assert polled.json()["status"] == "pending"
    assert polled.json()["recommendation"] == {}
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        reviewer = (await identity.create_api_key(tenant="demo", roles=["reviewer"])).token
    review = await client.get(f"/v1/reviews/{review_id}", headers=bearer(reviewer))
    recommendation = review.json()["recommendation"]
    assert recommendation["decision"] == "decline"
    assert recommendation["score"] > 0.5
    assert await prediction_count(container) == 2  # the model's recommendation is recorded


async def test_protected_attributes_do_not_change_the_score(
    client: httpx.AsyncClient, api_key: str
) -> None:
    scores = set()
    for sex, age in (("female", 22), ("male", 67)):
        response = await client.post(
            PREDICT, json=applicant(sex=sex, age=age), headers=bearer(api_key)
        )
        scores.add(response.json()["score"])
    assert len(scores) == 1


async def test_x_api_key_header_is_accepted(client: httpx.AsyncClient, api_key: str) -> None:
    response = await client.post(
        PREDICT,
        json=applicant(),
        headers={"x-api-key": api_key, "X-Ombud-Purpose": "credit_scoring"},
    )
    assert response.status_code == 200


async def test_unknown_model_is_404_problem_audited_and_not_recorded(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.post(
        "/v1/models/no-such-model/predict", json=applicant(), headers=bearer(api_key)
    )

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:ombud:problem:model_not_found"
    assert problem["status"] == 404
    assert problem["request_id"] == response.headers["X-Request-Id"]
    assert await prediction_count(container) == 0
    [event] = await audit_for(container, problem["request_id"])
    assert (event.outcome, event.reason) == (Outcome.REJECTED, "model_not_found")
    assert event.tenant_id is not None


@pytest.mark.parametrize(
    ("features", "expected"),
    [
        (applicant(colour="blue")["features"], {"colour": "extra_forbidden"}),
        ({k: v for k, v in EXAMPLE_APPLICANT.items() if k != "savings"}, {"savings": "missing"}),
        (applicant(credit_amount="4500")["features"], {"credit_amount": "int_type"}),
        (applicant(duration_months=12.5)["features"], {"duration_months": "int_type"}),
        (applicant(installment_rate=True)["features"], {"installment_rate": "int_type"}),
        (applicant(purpose="yacht")["features"], {"purpose": "literal_error"}),
        (applicant(age=-3)["features"], {"age": "greater_than_equal"}),
        (
            {**applicant(housing=1)["features"], "extra_one": 1},
            {"housing": "literal_error", "extra_one": "extra_forbidden"},
        ),
    ],
    ids=["unknown", "missing", "string-for-int", "float-for-int", "bool-for-int", "bad-category",
         "below-minimum", "several"],
)  # fmt: skip
async def test_wrong_features_are_422_listing_each_field(
    client: httpx.AsyncClient,
    container: Container,
    api_key: str,
    features: dict[str, object],
    expected: dict[str, str],
) -> None:
    response = await client.post(PREDICT, json={"features": features}, headers=bearer(api_key))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:ombud:problem:validation_error"
    listed = {e["loc"][-1]: e["type"] for e in problem["errors"]}
    assert listed == expected
    assert all(e["loc"][:2] == ["body", "features"] for e in problem["errors"])
    assert await prediction_count(container) == 0
    [event] = await audit_for(container, problem["request_id"])
    assert (event.outcome, event.reason, event.action) == (
        Outcome.REJECTED,
        "validation_error",
        "model.predict",
    )


async def test_malformed_envelope_is_422_problem(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.post(
        PREDICT,
        content=b'{"features": [1, 2]',
        headers={**bearer(api_key), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"]
    assert await prediction_count(container) == 0
    [event] = await audit_for(container, response.json()["request_id"])
    assert event.outcome is Outcome.REJECTED


async def test_invalid_context_header_is_422_naming_the_header(
    client: httpx.AsyncClient, api_key: str
) -> None:
    response = await client.post(
        PREDICT, json=applicant(), headers={**bearer(api_key), "X-Ombud-Purpose": "Not A Purpose!"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "x-ombud-purpose"]


async def test_oversized_body_is_413_problem(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    padding = "x" * (1024 * 1024 + 1)
    response = await client.post(
        PREDICT, json={"features": {"note": padding}}, headers=bearer(api_key)
    )
    assert response.status_code == 413
    assert response.json()["type"] == "urn:ombud:problem:payload_too_large"
    assert await prediction_count(container) == 0


async def test_tampered_artifact_is_refused_and_audited(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    from ombud.registry.repository import RegistryRepository
    from ombud.registry.service import RegistryService

    async with container.sessions() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        version = await registry.serving_version("credit-risk")
    path = container.settings.serving.artifact_dir / version.artifact_uri.removeprefix("local:")
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    finally:
        path.write_bytes(original)

    assert response.status_code == 503
    assert response.json()["type"] == "urn:ombud:problem:model_unavailable"
    assert await prediction_count(container) == 0
    [event] = await audit_for(container, response.json()["request_id"])
    assert (event.outcome, event.reason) == (Outcome.ERROR, "model_unavailable")


async def test_concurrent_calls_do_not_starve_the_connection_pool(
    settings: Settings, api_key: str
) -> None:
    """Each request holds a connection while its records commit; with a pool of one connection
    and no overflow, forty concurrent calls must still all be answered and recorded."""
    tight = settings.model_copy(
        update={
            "database": DatabaseSettings(url=settings.database.url, pool_size=1, max_overflow=0)
        }
    )
    app = create_app(tight)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            with anyio.fail_after(60):
                responses = await asyncio.gather(
                    *(
                        http.post(PREDICT, json=applicant(), headers=bearer(api_key))
                        for _ in range(40)
                    )
                )
        assert [r.status_code for r in responses] == [200] * 40
        assert await prediction_count(app.state.container) == 40


async def test_no_answer_is_given_when_its_records_cannot_be_written(
    client: httpx.AsyncClient, container: Container, api_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = create_async_engine("postgresql+asyncpg://ombud@127.0.0.1:1/ombud")
    # The records database goes away; the request path's own database stays up.
    monkeypatch.setattr(container.records, "_sessions", create_sessionmaker(unreachable))
    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:ombud:problem:records_unavailable"
    assert "prediction_id" not in response.json()
    await unreachable.dispose()


async def test_the_audit_event_commits_to_the_prediction_by_digest(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    [event] = await audit_for(container, response.headers["X-Request-Id"])
    async with container.sessions() as session:
        record = await PredictionRepository(session).get(response.json()["prediction_id"])
    assert record is not None
    assert event.detail["record_digest"] == record_digest(record)
    # No personal input values in the trail itself (hex digests may spell any digits).
    values = [v for k, v in event.detail.items() if not k.endswith(("digest", "_id"))]
    assert "4500" not in str(values)
    assert "credit_amount" not in str(event.detail)


async def test_inputs_are_unreadable_once_the_subject_is_erased_and_the_trail_still_verifies(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    headers = {**bearer(api_key), "X-Ombud-Subject": "subj-erase-me"}
    response = await client.post(PREDICT, json=applicant(credit_amount=9876543), headers=headers)
    assert response.status_code in (200, 202)  # a large amount may well go to review
    async with container.sessions() as session:
        prediction_id = await session.scalar(
            select(PredictionRow.id).where(PredictionRow.subject == "subj-erase-me")
        )
    values: list[str] = []
    async with container.sessions() as session:
        # Predictions and the audit trail (review items keep their own copy: see docs/review.md).
        for table in (PredictionRow.__table__, AuditEventRow.__table__):
            for row in (await session.execute(select(table))).all():
                values.extend(str(value) for value in row)
    dumped = " ".join(values)
    assert "9876543" not in dumped  # the input values are not stored in clear

    assert await container.keys.destroy(scope="subject", owner="subj-erase-me")
    read = await client.get(f"/v1/predictions/{prediction_id}", headers=bearer(api_key))
    assert read.status_code == 200
    assert read.json()["inputs"] is None
    assert (await verify_database(container.sessions)).ok
