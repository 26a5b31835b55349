"""The HTTP surface: secure headers, slow bodies, mass assignment."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import httpx
import pytest

from ombud.app import create_app
from ombud.audit.events import Outcome
from ombud.config import Settings
from ombud.container import Container
from ombud.demo.seed import seed_demo
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer, prediction_count

pytestmark = pytest.mark.anyio


async def test_answers_carry_secure_headers_and_no_hsts_without_tls(
    client: httpx.AsyncClient, api_key: str
) -> None:
    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers
    problem = await client.get("/v1/nothing")
    assert problem.headers["X-Content-Type-Options"] == "nosniff"


async def test_hsts_is_sent_when_configured(settings: Settings) -> None:
    app = create_app(
        settings.model_copy(update={"server": settings.server.model_copy(update={"hsts": True})})
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            response = await http.get("/healthz")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_mass_assignment_of_unknown_body_fields_is_refused(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    body = {**applicant(), "tenant_id": "ten_other", "model_version": 99, "score": 0.0}
    response = await client.post(PREDICT, json=body, headers=bearer(api_key))
    assert response.status_code == 422
    assert {e["loc"][-1] for e in response.json()["errors"]} == {
        "tenant_id",
        "model_version",
        "score",
    }
    assert await prediction_count(container) == 0


async def test_a_body_that_trickles_in_too_slowly_gets_408_audited(settings: Settings) -> None:
    slow = settings.model_copy(
        update={"server": settings.server.model_copy(update={"body_timeout_s": 0.2})}
    )
    app = create_app(slow)

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"features": {'
        await anyio.sleep(2)
        yield b"}}"

    async with app.router.lifespan_context(app):
        container: Container = app.state.container
        key = (await seed_demo(container)).api_key
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            response = await http.post(
                PREDICT,
                content=trickle(),
                headers={**bearer(key), "Content-Type": "application/json"},
            )
        assert response.status_code == 408
        assert response.json()["type"] == "urn:ombud:problem:request_timeout"
        [event] = await audit_for(container, response.json()["request_id"])
        assert (event.outcome, event.reason) == (Outcome.REJECTED, "request_timeout")
        await empty_database(container)
