"""The inference server's app in process: scoring many rows, explaining, refusing; the
version that runs is always the one its own registry holds, whatever the body says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from ombud.config import Environment, SecuritySettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.core.errors import ModelNotFound
from ombud.demo import credit_model
from ombud.demo.seed import seed_demo
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion, ServingConfig, VersionStatus
from ombud.registry.service import RegistryService
from ombud.serving.inference_app import (
    InferenceConfigError,
    RegisteredVersions,
    VersionNotApproved,
    create_inference_app,
)
from tests.integration.helpers import applicant

pytestmark = pytest.mark.anyio

TOKEN = "inference-token-for-tests-" + "1" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PROBLEM = "urn:ombud:problem:"


@pytest.fixture
async def inference(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    serving = settings.serving.model_copy(update={"inference_token": SecretStr(TOKEN)})
    application = create_inference_app(settings.model_copy(update={"serving": serving}))
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://inference") as http:
            yield http


def body(version: ModelVersion, **extra: Any) -> dict[str, Any]:
    return {"sha256": version.sha256, **extra}


def legacy_body(version: ModelVersion, **extra: Any) -> dict[str, Any]:
    """The body older gateways send: the whole version, of which only id and digest count."""
    return {"version": version.model_dump(mode="json"), **extra}


async def register_like(
    container: Container,
    version: ModelVersion,
    status: VersionStatus,
    serving: ServingConfig | None = None,
) -> ModelVersion:
    """Another version of ``version``'s model with the same artifact and inputs."""
    async with container.sessions.begin() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        return await registry.register_version(
            model=version.model, artifact_uri=version.artifact_uri, sha256=version.sha256,
            artifact_format=version.format, features=version.features,
            serving=serving or version.serving, status=status,
        )  # fmt: skip


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
    assert version.serving == credit_model.explaining_serving_config()
    path = f"/v1/internal/models/{version.id}/explain"
    features = applicant()["features"]
    # A body that drops the background rows changes nothing: the registered config is used.
    bare = version.serving.model_copy(update={"explanation_background": None})
    claimed = version.model_copy(update={"serving": bare})
    answer = await inference.post(path, json=legacy_body(claimed, features=features), headers=AUTH)
    assert answer.status_code == 200, answer.text
    explanation = answer.json()
    assert explanation["method"] == "linear"
    assert {c["feature"] for c in explanation["contributions"]} <= set(features)
    assert explanation["additivity_error"] < 1e-6

    # A version registered without background rows is not explained (a linear model needs them).
    unexplainable = await register_like(container, version, VersionStatus.APPROVED, bare)
    refused = await inference.post(
        f"/v1/internal/models/{unexplainable.id}/explain",
        json=body(unexplainable, features=features),
        headers=AUTH,
    )
    assert refused.status_code == 422
    assert refused.json()["type"] == PROBLEM + "not_explainable"


async def test_the_registered_feature_order_wins_over_the_body(
    inference: httpx.AsyncClient, container: Container
) -> None:
    version = (await seed_demo(container)).model
    rows = [applicant(credit_amount=amount)["features"] for amount in (500, 4000, 12000)]
    # Two integer inputs swapped: the rows still validate, so scores would silently change.
    features = list(version.features)
    i, j = (k for k, f in enumerate(features) if f.name in ("credit_amount", "duration_months"))
    features[i], features[j] = features[j], features[i]
    reordered = version.model_copy(update={"features": features})
    path = f"/v1/internal/models/{version.id}/score"
    # The reordered body is the first to name the version: it would fix the loaded model.
    poisoned = await inference.post(path, json=legacy_body(reordered, rows=rows), headers=AUTH)
    plain = await inference.post(path, json=body(version, rows=rows), headers=AUTH)
    assert poisoned.status_code == plain.status_code == 200, poisoned.text
    loaded = await container.local_runtime.get(version)
    expected = [await container.local_runtime.score(loaded, loaded.validate(r)) for r in rows]
    assert poisoned.json() == plain.json() == {"scores": expected}


async def test_unknown_mismatched_and_unapproved_versions_are_refused(
    inference: httpx.AsyncClient, container: Container
) -> None:
    version = (await seed_demo(container)).model
    rows = [applicant()["features"]]

    async def post(version_id: str, payload: dict[str, Any]) -> httpx.Response:
        path = f"/v1/internal/models/{version_id}/score"
        return await inference.post(path, json=payload, headers=AUTH)

    unknown = await post("mv_" + "0" * 26, body(version, rows=rows))
    assert unknown.status_code == 404
    assert unknown.json()["type"] == PROBLEM + "model_not_found"

    other_digest = body(version, rows=rows) | {"sha256": "0" * 64}
    mismatch = await post(version.id, other_digest)
    assert mismatch.status_code == 409
    assert mismatch.json()["type"] == PROBLEM + "version_mismatch"
    assert version.sha256 in mismatch.json()["detail"]

    # A body that claims an approved status changes nothing either.
    for status in (VersionStatus.DRAFT, VersionStatus.REJECTED):
        unapproved = await register_like(container, version, status)
        claimed = unapproved.model_copy(update={"status": VersionStatus.APPROVED})
        refused = await post(unapproved.id, legacy_body(claimed, rows=rows))
        assert refused.status_code == 409, refused.text
        assert refused.json()["type"] == PROBLEM + "version_not_approved"
        assert f"is {status.value}" in refused.json()["detail"]
        explained = await inference.post(
            f"/v1/internal/models/{unapproved.id}/explain",
            json=body(unapproved, features=rows[0]), headers=AUTH,
        )  # fmt: skip
        assert explained.status_code == 409

    missing = await post(version.id, {"rows": rows})
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["loc"] == ["body", "sha256"]
    assert (await inference.get("/readyz")).json()["loaded"] == []  # nothing was loaded


async def test_registered_versions_are_cached_by_the_clock(container: Container) -> None:
    version = (await seed_demo(container)).model
    clock = FrozenClock()
    versions = RegisteredVersions(container.sessions, clock, ttl_s=5.0)
    assert await versions.servable(version.id, version.sha256) == version
    async with container.sessions.begin() as session:
        moved = await RegistryRepository(session).move(
            version.id, VersionStatus.APPROVED, {"status": VersionStatus.DEPRECATED.value}
        )
    assert moved
    clock.advance(4.9)
    assert (await versions.servable(version.id, version.sha256)).status is VersionStatus.APPROVED
    clock.advance(0.2)
    with pytest.raises(VersionNotApproved, match="deprecated"):
        await versions.servable(version.id, version.sha256)
    with pytest.raises(ModelNotFound):
        await versions.get("mv_unknown")


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
