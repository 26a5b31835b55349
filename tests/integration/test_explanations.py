"""``GET /v1/predictions/{id}/explanation`` over HTTP, on every storage backend."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import select

from ombud.audit.events import Outcome
from ombud.container import Container
from ombud.demo import credit_model
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.predictions.explanations import ExplanationRepository, PredictionExplanationRow
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ArtifactFormat, VersionStatus
from ombud.registry.service import RegistryService
from ombud.serving.stages import record_digest
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer

pytestmark = pytest.mark.anyio

RISKY_CHECKING = applicant(checking_status="lt_0", credit_history="critical", savings="ge_1000")
"""An applicant the model approves, with one strong factor each way."""


def explanation_url(prediction_id: str) -> str:
    return f"/v1/predictions/{prediction_id}/explanation"


async def _key(container: Container, tenant: str, *roles: str) -> str:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        return (await identity.create_api_key(tenant=tenant, roles=roles)).token


async def _predict(
    client: httpx.AsyncClient, key: str, body: dict[str, Any], url: str = PREDICT, **headers: str
) -> str:
    response = await client.post(url, json=body, headers={**bearer(key), **headers})
    assert response.status_code == 200, response.text
    prediction_id: str = response.json()["prediction_id"]
    return prediction_id


async def _linear_contributions(container: Container, row: dict[str, Any]) -> dict[str, float]:
    """Independently of shap: coef * (column - background mean), summed per input."""
    async with container.sessions() as session:
        version = await RegistryService(
            RegistryRepository(session), container.clock
        ).serving_version(credit_model.MODEL_NAME)
    pipeline: Any = (await container.runtime.get(version)).classifier
    encode, classify = pipeline[:-1], pipeline[-1]
    names = credit_model.INPUTS
    background = np.array(
        [[r[n] for n in names] for r in version.serving.explanation_background or []],
        dtype=object,
    )
    mean = encode.transform(background).toarray().mean(axis=0)
    columns = encode.transform(np.array([[row[n] for n in names]], dtype=object)).toarray()[0]
    per_column = classify.coef_[0] * (columns - mean)
    out = encode[0].get_feature_names_out(list(names))
    return {
        name: float(sum(v for v, col in zip(per_column, out, strict=True) if f"__{name}" in col))
        for name in names
    }


async def test_the_demo_models_prediction_is_explained_in_plain_language(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id = await _predict(client, api_key, RISKY_CHECKING)

    response = await client.get(explanation_url(prediction_id), headers=bearer(api_key))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model"], body["model_version"]) == ("credit-risk", 1)
    assert (body["method"], body["output_space"]) == ("linear", "log-odds")
    contributions = body["contributions"]
    assert {c["feature"] for c in contributions} == set(credit_model.INPUTS)
    total = body["base_value"] + sum(c["contribution"] for c in contributions)
    assert total == pytest.approx(body["model_output"], abs=1e-6)
    assert 1 / (1 + math.exp(-body["model_output"])) == pytest.approx(body["score"])

    expected = await _linear_contributions(container, RISKY_CHECKING["features"])
    top_up = max(expected, key=lambda name: expected[name])
    top_down = min(expected, key=lambda name: expected[name])
    assert top_up == "checking_status"
    raising = [c for c in contributions if c["direction"] == "raises"]
    assert raising[0]["feature"] == top_up
    assert raising[0]["contribution"] == pytest.approx(expected[top_up], abs=1e-6)
    value = RISKY_CHECKING["features"][top_up]
    sentence = (
        f"The largest factor raising the score was {top_up} = {value} "
        f"({expected[top_up]:+.2f} log-odds)."
    )
    assert sentence in body["summary"]
    down_value = RISKY_CHECKING["features"][top_down]
    assert any(
        s.startswith(f"The largest factor lowering the score was {top_down} = {down_value} ")
        for s in body["summary"]
    )

    [event] = await audit_for(container, response.headers["X-Request-Id"])
    assert (event.action, event.outcome) == ("prediction.explain", Outcome.SUCCESS)
    assert prediction_id in event.resource


async def test_explanation_is_sealed_at_rest(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    body = applicant(checking_status="none", credit_amount=1357, purpose="retraining")
    prediction_id = await _predict(client, api_key, body, **{"X-Ombud-Subject": "subj-sealed"})
    async with container.sessions() as session:
        row = await session.scalar(
            select(PredictionExplanationRow).where(
                PredictionExplanationRow.prediction_id == prediction_id
            )
        )
    assert row is not None
    assert set(row.contributions) == {"sealed", "scope"}
    assert row.contributions["scope"] == "subject"
    stored = " ".join(str(getattr(row, c.key)) for c in PredictionExplanationRow.__table__.c)
    for plain in ("1357", "retraining", "checking_status", "credit_amount"):
        assert plain not in stored


async def test_an_erased_subjects_explanation_is_gone(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id = await _predict(
        client, api_key, applicant(), **{"X-Ombud-Subject": "subj-erased"}
    )
    assert await container.keys.destroy(scope="subject", owner="subj-erased")

    response = await client.get(explanation_url(prediction_id), headers=bearer(api_key))

    assert response.status_code == 410, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("subject_erased")


async def test_another_tenant_cannot_read_the_explanation(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id = await _predict(client, api_key, applicant())
    outsider = await _key(container, "elsewhere", "analyst")
    response = await client.get(explanation_url(prediction_id), headers=bearer(outsider))
    assert response.status_code == 404
    missing = await client.get(explanation_url("pred_" + "0" * 32), headers=bearer(api_key))
    assert missing.status_code == 404


async def test_explaining_needs_its_permission(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    prediction_id = await _predict(client, api_key, applicant())
    engineer = await _key(container, "demo", "ml_engineer")
    response = await client.get(explanation_url(prediction_id), headers=bearer(engineer))
    assert response.status_code == 403


async def test_a_model_that_does_not_explain_answers_404(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    async with container.sessions.begin() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        demo = await registry.serving_version(credit_model.MODEL_NAME)
        await registry.register_version(
            model="plain-model", artifact_uri=demo.artifact_uri, sha256=demo.sha256,
            artifact_format=ArtifactFormat.SKOPS, features=demo.features,
            serving=credit_model.serving_config(), status=VersionStatus.APPROVED,
        )  # fmt: skip
    prediction_id = await _predict(
        client, api_key, applicant(), url="/v1/models/plain-model/predict"
    )

    response = await client.get(explanation_url(prediction_id), headers=bearer(api_key))

    assert response.status_code == 404
    assert "does not explain its predictions" in response.json()["detail"]


async def test_the_audit_trail_commits_to_the_explanation(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.post(PREDICT, json=RISKY_CHECKING, headers=bearer(api_key))
    assert response.status_code == 200, response.text
    prediction_id = response.json()["prediction_id"]
    async with container.sessions() as session:
        stored = await ExplanationRepository(session).get(prediction_id)
    assert stored is not None
    [event] = [e for e in await audit_for(container, response.headers["x-request-id"])
               if e.detail.get("prediction_id") == prediction_id]  # fmt: skip
    assert event.detail["explanation_digest"] == record_digest(stored)
    # Any change to the stored explanation, even to a field kept in clear, no longer matches.
    altered = dataclasses.replace(stored, base_value=stored.base_value + 1.0)
    assert record_digest(altered) != event.detail["explanation_digest"]


async def test_a_failing_explainer_does_not_fail_the_scored_call(
    client: httpx.AsyncClient,
    container: Container,
    api_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def failing(model: Any, features: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("the explanation did not come back in time")

    monkeypatch.setattr(container.runtime, "explain", failing)
    response = await client.post(PREDICT, json=RISKY_CHECKING, headers=bearer(api_key))
    assert response.status_code == 200, response.text
    prediction_id = response.json()["prediction_id"]
    events = await audit_for(container, response.headers["x-request-id"])
    findings = [f for e in events for f in e.detail.get("findings", [])]
    assert "model.explain:explanation_failed" in findings
    missing = await client.get(explanation_url(prediction_id), headers=bearer(api_key))
    assert missing.status_code == 404
