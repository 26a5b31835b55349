"""The request path through HTTP: tenancy, roles, group commit, outcomes, metrics."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest
from fastapi import FastAPI

from ombud.app import create_app
from ombud.audit.events import Outcome
from ombud.config import JobsSettings, Settings
from ombud.container import Container
from ombud.gateway.assembly import STAGES, ChainConfigError, Gateway, build_gateway
from ombud.gateway.call import Call
from ombud.gateway.chain import Chain
from ombud.gateway.outcome_records import OutcomeRecorder
from ombud.gateway.outcomes import Flag, SendToReview
from ombud.gateway.outcomes import Outcome as StageOutcome
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.tables import JobStatus
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer

pytestmark = pytest.mark.anyio


async def _key(container: Container, tenant: str, *roles: str) -> str:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        return (await identity.create_api_key(tenant=tenant, roles=roles)).token


async def _predict(client: httpx.AsyncClient, key: str) -> str:
    response = await client.post(PREDICT, json=applicant(), headers=bearer(key))
    assert response.status_code == 200, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


async def test_a_prediction_is_read_back_by_its_tenant_and_the_read_is_audited(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id = await _predict(client, api_key)
    response = await client.get(f"/v1/predictions/{prediction_id}", headers=bearer(api_key))
    assert response.status_code == 200
    body = response.json()
    assert body["inputs"]["credit_amount"] == 4500
    assert body["model_version"] == 1
    [event] = await audit_for(container, response.headers["X-Request-Id"])
    assert (event.action, event.outcome) == ("prediction.read", Outcome.SUCCESS)


async def test_another_tenants_prediction_is_404_like_a_missing_one_audited_and_counted(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id = await _predict(client, api_key)
    outsider = await _key(container, "other-bank", "analyst")

    foreign = await client.get(f"/v1/predictions/{prediction_id}", headers=bearer(outsider))
    missing = await client.get(f"/v1/predictions/pred_{'0' * 32}", headers=bearer(outsider))

    assert foreign.status_code == missing.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
    assert foreign.json()["type"] == missing.json()["type"] == "urn:ombud:problem:not_found"
    [event] = await audit_for(container, foreign.json()["request_id"])
    assert (event.outcome, event.reason, event.action) == (
        Outcome.REJECTED,
        "not_found",
        "prediction.read",
    )
    metrics = await client.get("/metrics")
    assert 'ombud_denials_total{reason="not_found",stage="edge"}' in metrics.text


async def test_a_principal_without_a_granted_role_is_403_audited(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    auditor = await _key(container, "demo", "auditor")
    response = await client.post(PREDICT, json=applicant(), headers=bearer(auditor))
    assert response.status_code == 403
    assert response.json()["type"] == "urn:ombud:problem:forbidden"
    [event] = await audit_for(container, response.json()["request_id"])
    assert (event.outcome, event.reason) == (Outcome.DENIED, "forbidden")
    assert event.detail["stage"] == "authorize"


async def test_concurrent_calls_share_far_fewer_commits_than_calls(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    def commits() -> float:
        return (
            container.metrics.registry.get_sample_value(
                "ombud_record_commits_total", {"outcome": "ok"}
            )
            or 0.0
        )

    before = commits()
    responses = await asyncio.gather(
        *(client.post(PREDICT, json=applicant(), headers=bearer(api_key)) for _ in range(90))
    )
    assert {r.status_code for r in responses} == {200}
    used = commits() - before
    # Group commit: far fewer transactions than calls (the exact number depends on scheduling).
    assert used <= 90 / 2, f"{used} commits for 90 calls"


class _Flagging:
    name = "guard"

    async def __call__(self, call: Call) -> StageOutcome:
        return Flag("injection", "suspicious phrasing")


class _Reviewing:
    name = "policy"

    async def __call__(self, call: Call) -> StageOutcome:
        return SendToReview(review_id="rev_123", reason="score near threshold")


def _with_stage(app: FastAPI, container: Container, extra: object, before: str) -> None:
    chain = app.state.gateway.chain("model.predict")
    stages = list(chain.stages)
    stages.insert(chain.stage_names.index(before), extra)
    denials = OutcomeRecorder(container.records, container.metrics, container.clock)
    app.state.gateway = Gateway(
        {"model.predict": Chain("model.predict", stages, outcomes=denials, timeout_s=5)}
    )


async def test_a_flagging_stage_answers_200_with_the_flag_header(
    app: FastAPI, client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    _with_stage(app, container, _Flagging(), before="model.record")
    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    assert response.status_code == 200
    assert response.headers["X-Ombud-Guard"] == "flagged"
    [event] = await audit_for(container, response.headers["X-Request-Id"])
    assert event.detail["findings"] == ["guard:injection"]


async def test_a_review_outcome_answers_202_with_the_review_id(
    app: FastAPI, client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    _with_stage(app, container, _Reviewing(), before="model.invoke")
    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    assert response.status_code == 202
    assert response.json() == {
        "status": "pending_review",
        "review_id": "rev_123",
        "reason": "score near threshold",
    }
    assert response.headers["Location"] == "/v1/reviews/rev_123"


async def test_chains_come_from_configuration_and_bad_ones_are_refused(
    container: Container,
) -> None:
    default = build_gateway(container).chain("model.predict").stage_names
    assert default[:2] == ["rate_limit.ip", "authenticate"]
    assert default[-3:] == ["model.record", "model.shadow", "policy.after"]
    assert set(default) <= set(STAGES)
    for chains, message in (
        ({"model.predict": ["authenticate", "no.such.stage"]}, "unknown stages"),
        ({"model.predict": ["context", "authenticate"]}, "may come before 'authenticate'"),
        ({"model.predict": ["context"]}, "must include 'authenticate'"),
        ({"no.such.route": ["authenticate"]}, "unknown routes"),
    ):
        settings = container.settings.model_copy(
            update={"gateway": container.settings.gateway.model_copy(update={"chains": chains})}
        )
        container.settings = settings
        with pytest.raises(ChainConfigError, match=message):
            build_gateway(container)


async def test_metrics_expose_latency_by_route_and_model(
    client: httpx.AsyncClient, api_key: str
) -> None:
    await _predict(client, api_key)
    text = (await client.get("/metrics")).text
    assert "ombud_http_request_duration_seconds_bucket" in text
    assert 'model="credit-risk:v1"' in text
    assert 'route="/v1/models/{name}/predict"' in text
    assert "ombud_record_batch_size_count" in text


async def test_the_embedded_worker_runs_jobs_inside_the_server(settings: Settings) -> None:
    embedded = settings.model_copy(
        update={"jobs": JobsSettings(embedded_worker=True, poll_interval_s=0.05)}
    )
    app = create_app(embedded)
    async with app.router.lifespan_context(app):
        container: Container = app.state.container
        job = await container.jobs.enqueue("jobs.prune", {"older_than_days": 30})
        with anyio.fail_after(20):
            while (
                current := await container.jobs.get(job.id)
            ) and current.status != JobStatus.SUCCEEDED:
                await anyio.sleep(0.05)
        await empty_database(container)


async def test_bulk_export_is_for_compliance_officers_within_their_tenant_and_audited(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    await _predict(client, api_key)
    outsider = await _key(container, "other-bank", "analyst", "compliance_officer")
    await _predict(client, outsider)
    officer = await _key(container, "demo", "compliance_officer")
    window = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
    purpose = {"X-Ombud-Purpose": "regulatory_audit"}

    refused = await client.post(
        "/v1/predictions/export", json=window, headers={**bearer(api_key), **purpose}
    )
    exported = await client.post(
        "/v1/predictions/export", json=window, headers={**bearer(officer), **purpose}
    )

    assert refused.status_code == 403
    assert exported.status_code == 200
    body = exported.json()
    assert body["count"] == 1  # the other tenant's prediction is not there
    assert body["predictions"][0]["inputs"]["credit_amount"] == 4500
    [event] = await audit_for(container, exported.headers["X-Request-Id"])
    assert (event.action, event.purpose, event.detail["count"]) == (
        "prediction.export",
        "regulatory_audit",
        1,
    )
