"""Health, readiness, request ids, OpenAPI and problem+json for errors outside the models API."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from ombud.app import create_app
from ombud.audit.repository import AuditRepository
from ombud.config import RedisSettings, Settings

pytestmark = pytest.mark.anyio


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_readyz_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok"}}


async def _get(app: FastAPI, path: str) -> httpx.Response:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            return await http.get(path)


@pytest.mark.redis
async def test_readyz_checks_redis_when_configured(settings: Settings, redis_url: str) -> None:
    configured = settings.model_copy(update={"redis": RedisSettings(url=SecretStr(redis_url))})
    response = await _get(create_app(configured), "/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


async def test_readyz_is_503_problem_when_redis_is_unreachable(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={"redis": RedisSettings(url=SecretStr("redis://127.0.0.1:1/0"))}
    )
    response = await _get(create_app(unreachable), "/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:ombud:problem:service_unavailable"
    assert "redis" in response.json()["detail"]


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:ombud:problem:not_found"


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/credit-risk/predict")
    assert response.status_code == 405
    assert response.json()["type"] == "urn:ombud:problem:method_not_allowed"


@pytest.mark.parametrize("incoming", ["", "bad id with spaces", "x" * 200])
async def test_unsafe_client_request_ids_are_not_echoed(
    client: httpx.AsyncClient, incoming: str
) -> None:
    response = await client.get("/healthz", headers={"X-Request-Id": incoming})
    assert response.headers["X-Request-Id"].startswith("req_")
    assert "X-Client-Request-Id" not in response.headers


async def test_readyz_failure_is_not_audited(settings: Settings) -> None:
    unreachable = settings.model_copy(
        update={"redis": RedisSettings(url=SecretStr("redis://127.0.0.1:1/0"))}
    )
    app = create_app(unreachable)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            response = await http.get("/readyz")
        async with app.state.container.sessions() as session:
            assert await AuditRepository(session).count() == 0
    assert response.status_code == 503


async def test_openapi_documents_the_predict_route_and_problems(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/models/{name}/predict"]["post"]
    assert {"401", "404", "422"} <= set(operation["responses"])
    assert "application/problem+json" in operation["responses"]["422"]["content"]
    assert {"/healthz", "/readyz"} <= set(schema["paths"])
