"""The inference server's app in process: scoring many rows, explaining, refusing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ombud.config import Environment, SecuritySettings, Settings
from ombud.container import Container
from ombud.demo import credit_model
from ombud.demo.seed import seed_demo
from ombud.registry.schemas import ModelVersion
from ombud.serving.inference_app import InferenceConfigError, create_inference_app
from tests.integration.helpers import applicant

pytestmark = pytest.mark.anyio

TOKEN = "inference-token-for-tests-" + "1" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def inference(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    serving = settings.serving.model_copy(update={"inference_token": SecretStr(TOKEN)})
    application = create_inference_app(settings.model_copy(update={"serving": serving}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://inference") as http:
            yield http


def body(version: ModelVersion, **extra: Any) -> dict[str, Any]:
    return {"version": version.model_dump(mode="json"), **extra}


async def test_many_rows_score_as_the_local_runtime_does(
    inference: httpx.AsyncClient, container: Container
) -> None:
    version = (await seed_demo(container)).model
    rows = [applicant(credit_amount=amount)["features"] for amount in (500, 4000, 12000)]
    answer = await inference.post(
        f"/v1/internal/models/{version.id}/score", json=body(version, rows=rows), headers=AUTH
    )
    assert answer.status_code == 200, answer.text
    loaded = await container.local_runtime.get(version)
    expected = [await container.local_runtime.score(loaded, loaded.validate(r)) for r in rows]
    assert answer.json() == {"scores": expected}
    assert len(set(expected)) == 3


async def test_bad_rows_and_bodies_are_problems(
    inference: httpx.AsyncClient, container: Container
) -> None:
    version = (await seed_demo(container)).model
    path = f"/v1/internal/models/{version.id}/score"
    bad_row = applicant(credit_amount="a lot")["features"]
    invalid = await inference.post(path, json=body(version, rows=[bad_row]), headers=AUTH)
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    assert invalid.json()["type"] == "urn:ombud:problem:validation_error"
    assert invalid.json()["errors"][0]["loc"][-1] == "credit_amount"
    empty = await inference.post(path, json=body(version, rows=[]), headers=AUTH)
    assert empty.status_code == 422
    unauthenticated = await inference.post(path, json=body(version, rows=[bad_row]))
    assert unauthenticated.status_code == 401


async def test_explain_answers_an_explanation_or_not_explainable(
    inference: httpx.AsyncClient, container: Container
) -> None:
    version = (await seed_demo(container)).model
    path = f"/v1/internal/models/{version.id}/explain"
    features = applicant()["features"]
    explaining = version.model_copy(update={"serving": credit_model.explaining_serving_config()})
    answer = await inference.post(path, json=body(explaining, features=features), headers=AUTH)
    assert answer.status_code == 200, answer.text
    explanation = answer.json()
    assert explanation["method"] == "linear"
    assert {c["feature"] for c in explanation["contributions"]} <= set(features)
    assert explanation["additivity_error"] < 1e-6

    # Without background rows a linear model is not explained (another version: each version's
    # explainer is built once, on its first load).
    bare = explaining.serving.model_copy(update={"explanation_background": None})
    unexplainable = version.model_copy(update={"id": version.id + "b", "serving": bare})
    refused = await inference.post(
        f"/v1/internal/models/{unexplainable.id}/explain",
        json=body(unexplainable, features=features),
        headers=AUTH,
    )
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:ombud:problem:not_explainable"


async def test_health_and_metrics_need_no_token(inference: httpx.AsyncClient) -> None:
    assert (await inference.get("/healthz")).json() == {"status": "ok", "loaded": []}
    assert (await inference.get("/readyz")).json()["status"] == "ready"
    metrics = await inference.get("/metrics")
    assert metrics.status_code == 200
    assert "ombud_http_request_duration_seconds" in metrics.text


def test_outside_dev_the_server_needs_a_token(settings: Settings) -> None:
    prod = settings.model_copy(
        update={
            "env": Environment.PROD,
            "security": SecuritySettings(api_key_pepper=SecretStr("p" * 40)),
        }
    )
    with pytest.raises(InferenceConfigError, match="INFERENCE_TOKEN"):
        create_inference_app(prod)


async def test_load_shedding_answers_overloaded(settings: Settings, container: Container) -> None:
    version = (await seed_demo(container)).model
    serving = settings.serving.model_copy(update={"max_queue_rows": 1})
    application = create_inference_app(settings.model_copy(update={"serving": serving}))
    rows = [applicant(credit_amount=amount)["features"] for amount in (500, 900, 1300)]
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://inference") as http:
            answer = await http.post(
                f"/v1/internal/models/{version.id}/score", json=body(version, rows=rows)
            )
    assert answer.status_code == 503
    assert answer.json()["type"] == "urn:ombud:problem:overloaded"
    assert answer.headers["retry-after"] == "1"
