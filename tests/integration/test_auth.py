"""API keys at the HTTP edge: missing, malformed, unknown, revoked; and what the database holds."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.app import create_app
from ombud.audit.events import ANONYMOUS, Outcome
from ombud.config import Settings
from ombud.container import Container
from ombud.demo.seed import seed_demo
from ombud.identity import keys
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.storage.tables import metadata
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer, prediction_count

pytestmark = pytest.mark.anyio


def _identity(container: Container, session: AsyncSession) -> IdentityService:
    return IdentityService(
        IdentityRepository(session), container.api_key_pepper, container.clock,
        on_revoke=container.api_key_cache.forget_all,
    )  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-key"},
        {"x-api-key": "omb_000000000000_" + "A" * 43},
    ],
    ids=["missing", "wrong-scheme", "empty-bearer", "malformed", "unknown"],
)
async def test_bad_credentials_are_401_problem_and_audited(
    client: httpx.AsyncClient, container: Container, api_key: str, headers: dict[str, str]
) -> None:
    response = await client.post(PREDICT, json=applicant(), headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:ombud:problem:unauthenticated"
    assert await prediction_count(container) == 0
    [event] = await audit_for(container, response.json()["request_id"])
    assert (event.outcome, event.reason, event.actor) == (
        Outcome.DENIED,
        "unauthenticated",
        ANONYMOUS,
    )


async def test_key_with_right_prefix_but_wrong_secret_is_refused(
    client: httpx.AsyncClient, api_key: str
) -> None:
    forged = api_key[: len("omb_") + 12] + "_" + "B" * 43
    response = await client.post(PREDICT, json=applicant(), headers=bearer(forged))
    assert response.status_code == 401


async def test_revoked_key_stops_working_at_once(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    assert (
        await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    ).status_code == 200

    async with container.sessions.begin() as session:
        await _identity(container, session).revoke_api_key(keys.prefix_of(api_key) or "")

    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    assert response.status_code == 401
    assert response.json()["detail"] == "API key revoked"
    assert await prediction_count(container) == 1
    [event] = await audit_for(container, response.json()["request_id"])
    assert (event.outcome, event.reason) == (Outcome.DENIED, "unauthenticated")


async def test_stored_key_cannot_be_recovered_from_the_database(
    container: Container, api_key: str
) -> None:
    """No column of any table holds the key or its secret part; only an HMAC digest is kept."""
    secret = api_key.split("_", 2)[2]
    async with container.sessions() as session:
        dumped: list[str] = []
        for table in metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                dumped.extend(str(value) for value in row)
        stored = await IdentityRepository(session).key_by_prefix(keys.prefix_of(api_key) or "")

    assert dumped
    assert not [value for value in dumped if secret in value or api_key in value]
    assert stored is not None
    key_row = stored[0]
    assert key_row.digest == keys.digest(api_key, container.api_key_pepper)
    # The digest is keyed: without the server's pepper it does not even match a plain hash.
    assert key_row.digest != keys.digest(api_key, b"")


async def test_tenant_comes_from_the_key_not_from_headers(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.post(
        PREDICT, json=applicant(), headers={**bearer(api_key), "X-Ombud-Tenant": "someone-else"}
    )
    [event] = await audit_for(container, response.headers["X-Request-Id"])
    async with container.sessions() as session:
        tenant = await IdentityRepository(session).tenant_by_slug("demo")
    assert tenant is not None
    assert event.tenant_id == tenant.id


async def test_with_the_key_cache_a_revocation_here_still_applies_at_once(
    settings: Settings,
) -> None:
    """``OMBUD_SECURITY__API_KEY_CACHE_TTL_S`` > 0: cached keys, yet revoking in this process
    takes effect on the next call."""
    cached = settings.model_copy(
        update={"security": settings.security.model_copy(update={"api_key_cache_ttl_s": 60.0})}
    )
    app = create_app(cached)
    async with app.router.lifespan_context(app):
        container: Container = app.state.container
        try:
            key = (await seed_demo(container)).api_key
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for _ in range(2):
                    ok = await client.post(PREDICT, json=applicant(), headers=bearer(key))
                    assert ok.status_code == 200
                async with container.sessions.begin() as session:
                    await _identity(container, session).revoke_api_key(keys.prefix_of(key) or "")
                refused = await client.post(PREDICT, json=applicant(), headers=bearer(key))
                assert refused.status_code == 401
        finally:
            await empty_database(container)
