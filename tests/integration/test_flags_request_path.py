"""The ``feature.flag`` stage on real calls: a flag turned off refuses that caller's AI calls
with 403 ``feature_disabled`` (audited and counted), in each route's own error shape, and the
request path reads flags from the snapshot, not the database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import Connection

from ombud.app import create_app
from ombud.audit.events import Outcome
from ombud.config import FlagSettings, Settings
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with a snapshot that never expires during a test: only invalidation reloads."""
    application = create_app(settings.model_copy(update={"flags": FlagSettings(ttl_s=3600)}))
    async with application.router.lifespan_context(application):
        yield application
        await empty_database(application.state.container)


async def _key(container: Container, tenant: str, *roles: str) -> str:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        return (await identity.create_api_key(tenant=tenant, roles=roles)).token


async def _set_flag(client: httpx.AsyncClient, container: Container, key: str, **body: Any) -> None:
    engineer = await _key(container, "ops", "ml_engineer")
    response = await client.put(
        f"/v1/flags/{key}", json=body, headers={"Authorization": f"Bearer {engineer}"}
    )
    assert response.status_code in (200, 201), response.text


def _openai(app: FastAPI, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=key, base_url="http://ombud.test/v1", max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)),
    )  # fmt: skip


def _anthropic(app: FastAPI, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        api_key=key, base_url="http://ombud.test", max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)),
    )  # fmt: skip


async def test_predict_turned_off_for_one_tenant_refuses_only_that_tenant(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    other = await _key(container, "other-bank", "analyst")
    assert (
        await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    ).status_code == 200

    await _set_flag(client, container, "ai.model.predict", enabled=True,
                    tenant_overrides={"demo": False})  # fmt: skip
    refused = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    allowed = await client.post(PREDICT, json=applicant(), headers=bearer(other))

    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:ombud:problem:feature_disabled"
    assert "ai.model.predict" in refused.json()["detail"]
    assert allowed.status_code == 200, allowed.text
    [event_] = await audit_for(container, refused.json()["request_id"])
    assert (event_.outcome, event_.reason, event_.action) == (
        Outcome.DENIED, "feature_disabled", "model.predict",
    )  # fmt: skip
    assert event_.detail["stage"] == "feature.flag"
    metrics = (await client.get("/metrics")).text
    assert 'ombud_denials_total{reason="feature_disabled",stage="feature.flag"} 1.0' in metrics


async def test_a_model_can_be_turned_off_on_its_own_and_back_on(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    await _set_flag(client, container, "ai.model.predict", enabled=True)
    await _set_flag(client, container, "ai.model.predict.credit-risk", enabled=False)
    refused = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    assert refused.status_code == 403
    assert "ai.model.predict.credit-risk" in refused.json()["detail"]

    await _set_flag(client, container, "ai.model.predict.credit-risk", enabled=True)
    assert (
        await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    ).status_code == 200


async def test_the_request_path_reads_flags_from_the_snapshot_not_the_database(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    await _set_flag(client, container, "ai.model.predict", enabled=True)
    assert (
        await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    ).status_code == 200
    statements: list[str] = []

    def seen(conn: Connection, cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    engine = container.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        for _ in range(5):
            response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
            assert response.status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements, "the listener saw nothing: the check would prove nothing"
    assert not [s for s in statements if "feature_flags" in s]


async def test_chat_turned_off_raises_permission_denied_in_the_openai_sdk(
    app: FastAPI, client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    chat = _openai(app, api_key)
    ask = [{"role": "user", "content": "hello"}]
    answer = await chat.chat.completions.create(model="local-echo", messages=ask)  # type: ignore[arg-type]
    assert answer.choices[0].message.content

    await _set_flag(client, container, "ai.llm.chat", enabled=False)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        await chat.chat.completions.create(model="local-echo", messages=ask)  # type: ignore[arg-type]
    assert refused.value.code == "feature_disabled"
    assert "ai.llm.chat" in refused.value.message
    # Other routes have flags of their own.
    embedded = await chat.embeddings.create(model="local-embed", input="hello")
    assert embedded.data


async def test_messages_turned_off_raises_permission_denied_in_the_anthropic_sdk(
    app: FastAPI, client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    await _set_flag(client, container, "ai.llm.messages.local-echo", enabled=False)
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        await _anthropic(app, api_key).messages.create(
            model="local-echo", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    assert "ai.llm.messages.local-echo" in refused.value.message
