"""Outcomes and KPIs over HTTP, on every storage backend: predictions scored by the demo model
through the real predict endpoint, labels posted, numbers checked against scikit-learn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sqlalchemy import select, update

from ombud.app import create_app
from ombud.audit.events import Outcome
from ombud.config import JobsSettings, OutcomeSettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.jobs.worker import build_worker
from ombud.outcomes.tables import PredictionOutcomeRow
from ombud.outcomes.wiring import kpi_jobs
from ombud.predictions.tables import PredictionRow
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer

pytestmark = pytest.mark.anyio

KPIS = "/v1/registry/models/credit-risk/kpis"
CHECKING = ("lt_0", "0_to_200", "ge_200", "none")
DURATIONS = (6, 12, 24, 36, 48, 60)
LABELS = [1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1]
"""Known ground truth for the first twenty predictions (the last four stay unlabelled)."""


def outcome_url(prediction_id: str) -> str:
    return f"/v1/predictions/{prediction_id}/outcome"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def max_rows() -> int:
    return 100_000


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock, max_rows: int) -> AsyncIterator[FastAPI]:
    settings = settings.model_copy(
        update={"outcomes": OutcomeSettings(kpi_max_rows=max_rows, kpi_windows=["1h", "7d"])}
    )
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application
        await empty_database(application.state.container)


async def _key(container: Container, tenant: str, *roles: str) -> str:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        return (await identity.create_api_key(tenant=tenant, roles=roles)).token


async def _predict(
    client: httpx.AsyncClient, container: Container, key: str, **features: Any
) -> tuple[str, float]:
    """A scored prediction's id and score, as recorded (declines and scores near the threshold
    go to human review, 202, but are recorded all the same)."""
    response = await client.post(PREDICT, json=applicant(**features), headers=bearer(key))
    assert response.status_code in (200, 202), response.text
    request_id = response.headers["X-Request-Id"]
    async with container.sessions() as session:
        row = await session.scalar(
            select(PredictionRow).where(PredictionRow.request_id == request_id)
        )
    assert row is not None
    return row.id, float(row.outputs["score"])


async def _scored(
    client: httpx.AsyncClient, container: Container, key: str
) -> list[tuple[str, float]]:
    """Twenty-four predictions with scores spread by checking account and duration."""
    return [
        await _predict(client, container, key, checking_status=checking, duration_months=months)
        for checking in CHECKING
        for months in DURATIONS
    ]


async def _post(
    client: httpx.AsyncClient, key: str, prediction_id: str, **body: Any
) -> httpx.Response:
    return await client.post(outcome_url(prediction_id), json=body, headers=bearer(key))


async def _kpis(client: httpx.AsyncClient, key: str, **query: Any) -> dict[str, Any]:
    response = await client.get(KPIS, params=query, headers=bearer(key))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _expected_ece(labels: list[int], scores: list[float]) -> float:
    observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    counts, _ = np.histogram(scores, bins=10, range=(0.0, 1.0))
    weights = counts[counts > 0] / len(scores)
    return float(np.sum(weights * np.abs(observed - predicted)))


async def test_kpis_from_posted_outcomes_equal_scikit_learn(
    client: httpx.AsyncClient, container: Container, api_key: str, clock: FrozenClock
) -> None:
    predictions = await _scored(client, container, api_key)
    for (prediction_id, _), label in zip(predictions, LABELS, strict=False):
        response = await _post(client, api_key, prediction_id, label=label, source="collections")
        assert response.status_code == 201, response.text

    clock.advance(1)
    body = await _kpis(client, api_key, window="1h")

    scores = [score for _, score in predictions[: len(LABELS)]]
    decided = [int(s >= 0.5) for s in scores]
    assert len(set(decided)) == 2, "the applicants must get both decisions"
    assert (body["model"], body["window"], body["truncated"]) == ("credit-risk", "1h", False)
    [version] = body["versions"]
    kpis = version["kpis"]
    assert (version["version"], version["arms"]) == (1, [])
    assert (kpis["predictions"], kpis["labelled"], kpis["scored"]) == (24, 20, 20)
    assert kpis["positives"] == sum(LABELS)
    assert kpis["label_coverage"] == pytest.approx(20 / 24)
    assert kpis["auc"] == pytest.approx(roc_auc_score(LABELS, scores))
    assert kpis["precision"] == pytest.approx(precision_score(LABELS, decided))
    assert kpis["recall"] == pytest.approx(recall_score(LABELS, decided))
    assert kpis["f1"] == pytest.approx(f1_score(LABELS, decided))
    assert kpis["brier"] == pytest.approx(brier_score_loss(LABELS, scores))
    assert kpis["ece"] == pytest.approx(_expected_ece(LABELS, scores))
    observed, predicted = calibration_curve(LABELS, scores, n_bins=10, strategy="uniform")
    filled = [b for b in kpis["reliability"] if b["count"]]
    assert [b["observed_rate"] for b in filled] == pytest.approx(list(observed))
    assert [b["mean_predicted"] for b in filled] == pytest.approx(list(predicted))

    only_v1 = await _kpis(client, api_key, window="1h", version=1)
    assert only_v1["versions"] == body["versions"]
    assert (await _kpis(client, api_key, window="1h", version=2))["versions"] == []


async def test_recording_is_audited_with_what_it_copied_from_the_prediction(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id, score = await _predict(client, container, api_key)

    response = await _post(client, api_key, prediction_id, label=1, source="collections")

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["model"], body["model_version"], body["label"]) == ("credit-risk", 1, 1)
    assert (body["revision"], body["history"], body["source"]) == (1, [], "collections")
    [event] = await audit_for(container, response.headers["X-Request-Id"])
    assert (event.action, event.outcome) == ("prediction.outcome", Outcome.SUCCESS)
    assert event.resource == f"prediction:{prediction_id}"
    assert event.detail["result"] == "recorded"
    async with container.sessions() as session:
        row = await session.get(PredictionOutcomeRow, prediction_id)
        prediction = await session.get(PredictionRow, prediction_id)
    assert row is not None
    assert prediction is not None
    assert row.score == pytest.approx(score)
    assert row.threshold == 0.5
    assert (row.tenant_id, row.predicted_at) == (prediction.tenant_id, prediction.created_at)
    read = await client.get(outcome_url(prediction_id), headers=bearer(api_key))
    assert read.status_code == 200
    assert read.json() == body


async def test_a_repeat_is_idempotent_and_a_different_label_needs_a_correction(
    client: httpx.AsyncClient, container: Container, api_key: str, clock: FrozenClock
) -> None:
    prediction_id, _ = await _predict(client, container, api_key)
    first = await _post(client, api_key, prediction_id, label=1, source="collections")
    assert first.status_code == 201
    clock.advance(60)

    again = await _post(client, api_key, prediction_id, label=1, source="another system")
    assert again.status_code == 200
    assert again.json() == first.json()

    conflict = await _post(client, api_key, prediction_id, label=0)
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    unreasoned = await _post(client, api_key, prediction_id, label=0, correction=True)
    assert unreasoned.status_code == 422
    read = await client.get(outcome_url(prediction_id), headers=bearer(api_key))
    assert read.json() == first.json()

    corrected = await _post(
        client, api_key, prediction_id, label=0, correction=True, reason="repaid in full late",
        source="collections review",
    )  # fmt: skip

    assert corrected.status_code == 200, corrected.text
    body = corrected.json()
    assert (body["label"], body["revision"], body["source"]) == (0, 2, "collections review")
    [previous] = body["history"]
    assert (previous["label"], previous["source"]) == (1, "collections")
    assert previous["reason"] == "repaid in full late"
    assert previous["recorded_at"] == first.json()["recorded_at"]
    read = await client.get(outcome_url(prediction_id), headers=bearer(api_key))
    assert read.json() == body
    [event] = await audit_for(container, corrected.headers["X-Request-Id"])
    assert (event.detail["result"], event.detail["previous"]) == ("corrected", 1)
    assert event.reason == "repaid in full late"
    [refusal] = await audit_for(container, conflict.headers["X-Request-Id"])
    assert (refusal.outcome, refusal.reason) == (Outcome.for_status(409), "conflict")
    clock.advance(1)
    kpis = (await _kpis(client, api_key, window="1h"))["versions"][0]["kpis"]
    assert (kpis["labelled"], kpis["positives"]) == (1, 0)


async def test_outcome_windows_select_on_the_predictions_time(
    client: httpx.AsyncClient, container: Container, api_key: str, clock: FrozenClock
) -> None:
    start = clock.now()
    early, _ = await _predict(client, container, api_key, checking_status="lt_0")
    clock.advance(2 * 3600)
    late, _ = await _predict(client, container, api_key, checking_status="none")
    for prediction_id, label in ((early, 1), (late, 0)):
        assert (await _post(client, api_key, prediction_id, label=label)).status_code == 201

    def counts(body: dict[str, Any]) -> tuple[int, int]:
        kpis = body["versions"][0]["kpis"] if body["versions"] else None
        return (kpis["predictions"], kpis["labelled"]) if kpis else (0, 0)

    clock.advance(1)  # now: two hours and a second after the early prediction

    assert counts(await _kpis(client, api_key, window="1h")) == (1, 1)
    assert counts(await _kpis(client, api_key, window="120m")) == (1, 1)  # since: start + 1s
    assert counts(await _kpis(client, api_key, window="121m")) == (2, 2)
    assert counts(await _kpis(client, api_key, window="3h")) == (2, 2)
    exact = {"since": start.isoformat(), "until": (start + timedelta(hours=2)).isoformat()}
    body = await _kpis(client, api_key, **exact)
    assert (counts(body), body["window"]) == ((1, 1), None)
    assert body["versions"][0]["kpis"]["positives"] == 1
    before = {"since": (start - timedelta(hours=1)).isoformat(), "until": start.isoformat()}
    assert counts(await _kpis(client, api_key, **before)) == (0, 0)


@pytest.mark.parametrize("max_rows", [3])
async def test_a_window_past_the_row_cap_says_so(
    client: httpx.AsyncClient,
    container: Container,
    api_key: str,
    clock: FrozenClock,
    max_rows: int,
) -> None:
    predictions = [
        await _predict(client, container, api_key, duration_months=m) for m in DURATIONS[:5]
    ]
    for (prediction_id, _), label in zip(predictions, [1, 0, 1, 0, 1], strict=True):
        assert (await _post(client, api_key, prediction_id, label=label)).status_code == 201

    clock.advance(1)
    body = await _kpis(client, api_key, window="1h")

    assert (body["truncated"], body["row_cap"]) == (True, 3)
    kpis = body["versions"][0]["kpis"]
    assert (kpis["labelled"], kpis["positives"], kpis["scored"]) == (5, 3, 3)


async def test_kpis_are_split_by_the_arm_that_served(
    client: httpx.AsyncClient, container: Container, api_key: str, clock: FrozenClock
) -> None:
    predictions = await _scored(client, container, api_key)
    canary = [p for p, _ in predictions[::2]]
    async with container.sessions.begin() as session:
        await session.execute(
            update(PredictionRow).where(PredictionRow.id.in_(canary)).values(arm="canary")
        )
    for (prediction_id, _), label in zip(predictions, LABELS, strict=False):
        assert (await _post(client, api_key, prediction_id, label=label)).status_code == 201

    clock.advance(1)
    [version] = (await _kpis(client, api_key, window="1h"))["versions"]

    arms = {a["arm"]: a["kpis"] for a in version["arms"]}
    assert set(arms) == {None, "canary"}
    assert (arms["canary"]["predictions"], arms["canary"]["labelled"]) == (12, 10)
    canary_pairs = [(s, y) for (p, s), y in zip(predictions, LABELS, strict=False) if p in canary]
    assert arms["canary"]["brier"] == pytest.approx(
        brier_score_loss([y for _, y in canary_pairs], [s for s, _ in canary_pairs])
    )
    assert version["kpis"]["labelled"] == 20


async def test_another_tenants_prediction_is_not_found(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id, _ = await _predict(client, container, api_key)
    stranger = await _key(container, "other-tenant", "analyst")

    posted = await _post(client, stranger, prediction_id, label=1)
    read = await client.get(outcome_url(prediction_id), headers=bearer(stranger))
    missing = await _post(client, stranger, "pred_" + "0" * 32, label=1)

    assert (posted.status_code, read.status_code, missing.status_code) == (404, 404, 404)
    assert posted.json()["detail"] == missing.json()["detail"].replace("0" * 32, prediction_id[5:])
    assert (
        await client.get(outcome_url(prediction_id), headers=bearer(api_key))
    ).status_code == 404
    await _post(client, api_key, prediction_id, label=1)
    assert (await _kpis(client, stranger, window="1h"))["versions"] == []


async def test_without_the_permission_the_answer_is_403(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id, _ = await _predict(client, container, api_key)
    officer = await _key(container, "demo", "compliance_officer")  # reads, never labels
    engineer = await _key(container, "demo", "ml_engineer")  # no registry.read

    assert (await _post(client, officer, prediction_id, label=1)).status_code == 403
    assert (await client.get(KPIS, headers=bearer(engineer))).status_code == 403
    assert (
        await client.get(outcome_url(prediction_id), headers=bearer(api_key))
    ).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"label": 2},
        {"label": -1},
        {"label": "1"},
        {"label": True},
        {"label": 1.0},
        {},
        {"label": 1, "observed_at": "2026-01-01T00:00:00"},  # no offset
        {"label": 1, "source": ""},
        {"label": 1, "correction": True},
    ],
)
async def test_a_bad_outcome_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, container: Container, api_key: str, body: dict[str, Any]
) -> None:
    prediction_id, _ = await _predict(client, container, api_key)

    response = await client.post(outcome_url(prediction_id), json=body, headers=bearer(api_key))

    assert response.status_code == 422, response.text
    assert (
        await client.get(outcome_url(prediction_id), headers=bearer(api_key))
    ).status_code == 404


async def test_an_outcome_observed_in_the_future_is_refused(
    client: httpx.AsyncClient, container: Container, api_key: str, clock: FrozenClock
) -> None:
    prediction_id, _ = await _predict(client, container, api_key)
    future = (clock.now() + timedelta(minutes=1)).isoformat()

    response = await _post(client, api_key, prediction_id, label=1, observed_at=future)

    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "observed_at"]
    past = (clock.now() - timedelta(days=3)).isoformat()
    recorded = await _post(client, api_key, prediction_id, label=1, observed_at=past)
    assert recorded.status_code == 201
    assert datetime.fromisoformat(recorded.json()["observed_at"]) == clock.now() - timedelta(days=3)


@pytest.mark.parametrize(
    "query",
    [{"window": "1w"}, {"window": "1h", "since": "2026-01-01T00:00:00Z"},
     {"until": "2026-01-01T00:00:00Z"}, {"version": 0}],
)  # fmt: skip
async def test_bad_kpi_queries_are_422(
    client: httpx.AsyncClient, api_key: str, query: dict[str, Any]
) -> None:
    response = await client.get(KPIS, params=query, headers=bearer(api_key))
    assert response.status_code == 422, response.text


async def test_kpis_of_an_unknown_model_are_404(client: httpx.AsyncClient, api_key: str) -> None:
    response = await client.get("/v1/registry/models/no-such-model/kpis", headers=bearer(api_key))
    assert response.status_code == 404


async def test_the_job_exports_kpis_as_gauges(
    client: httpx.AsyncClient, container: Container, api_key: str, clock: FrozenClock
) -> None:
    predictions = await _scored(client, container, api_key)
    for (prediction_id, _), label in zip(predictions, LABELS, strict=False):
        assert (await _post(client, api_key, prediction_id, label=label)).status_code == 201
    other = await _key(container, "other-tenant", "analyst")
    extra, extra_score = await _predict(client, container, other, checking_status="lt_0")
    assert (await _post(client, other, extra, label=1)).status_code == 201
    worker = build_worker(
        sessions=container.sessions, clock=clock, metrics=container.metrics,
        settings=JobsSettings(embedded_worker=False, poll_interval_s=0.01),
        registry=default_registry(outcomes=kpi_jobs(container)),
    )  # fmt: skip
    registry = container.metrics.registry

    def gauge(kpi: str, window: str = "1h") -> float | None:
        labels = {"model": "credit-risk", "version": "1", "kpi": kpi, "window": window}
        return registry.get_sample_value("ombud_model_kpi", labels)

    await worker.run_once()  # declares the schedule: the first run is at the next 5 minutes
    assert gauge("auc") is None
    clock.advance(300)
    assert await worker.run_once() >= 1

    # Every tenant's labelled predictions: the demo tenant's twenty and the other one.
    labels = [*LABELS, 1]
    scores = [s for _, s in predictions[: len(LABELS)]] + [extra_score]
    assert gauge("auc") == pytest.approx(roc_auc_score(labels, scores))
    assert gauge("brier") == pytest.approx(brier_score_loss(labels, scores))
    assert gauge("ece") == pytest.approx(_expected_ece(labels, scores))
    assert (gauge("predictions"), gauge("labelled")) == (25, 21)
    assert gauge("positives") == sum(labels)
    assert gauge("label_coverage", window="7d") == pytest.approx(21 / 25)
    received = registry.get_sample_value(
        "ombud_outcomes_received_total", {"model": "credit-risk", "result": "recorded"}
    )
    assert received == 21

    # An hour on, the predictions leave the 1h window: its gauges go, the 7d ones stay.
    clock.advance(3600)
    assert await worker.run_once() >= 1
    assert (gauge("auc"), gauge("predictions")) == (None, None)
    assert gauge("auc", window="7d") == pytest.approx(roc_auc_score(labels, scores))


async def test_concurrent_first_recordings_leave_one_outcome(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id, _ = await _predict(client, container, api_key)
    statuses: list[int] = []

    async def post() -> None:
        statuses.append((await _post(client, api_key, prediction_id, label=1)).status_code)

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(post)

    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}, statuses
    read = await client.get(outcome_url(prediction_id), headers=bearer(api_key))
    assert (read.json()["label"], read.json()["revision"]) == (1, 1)
