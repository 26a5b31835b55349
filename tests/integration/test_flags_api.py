"""``/v1/flags`` over HTTP: create, read, replace, delete, dry-run; who may; what is audited; and
that a refused body changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ombud.audit.events import Outcome
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from tests.integration.helpers import audit_for

pytestmark = pytest.mark.anyio

FLAGS = "/v1/flags"


async def _headers(container: Container, tenant: str, *roles: str) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=roles)).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def engineer(container: Container) -> dict[str, str]:
    return await _headers(container, "ops", "ml_engineer")


async def _put(
    client: httpx.AsyncClient, headers: dict[str, str], key: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.put(f"{FLAGS}/{key}", json=body, headers=headers)


async def test_a_flag_is_created_read_listed_replaced_and_deleted(
    client: httpx.AsyncClient, engineer: dict[str, str]
) -> None:
    body = {"enabled": True, "description": "chat", "tenant_overrides": {"acme": False}}
    created = await _put(client, engineer, "ai.llm.chat", body)
    assert created.status_code == 201, created.text
    assert created.json()["tenant_overrides"] == {"acme": False}
    assert created.json()["type"] == "boolean"

    read = await client.get(f"{FLAGS}/ai.llm.chat", headers=engineer)
    assert read.status_code == 200
    assert read.json()["description"] == "chat"
    assert read.json()["updated_by"].startswith("prn_")

    replaced = await _put(client, engineer, "ai.llm.chat", {"enabled": False})
    assert replaced.status_code == 200
    assert (replaced.json()["enabled"], replaced.json()["tenant_overrides"]) == (False, {})

    tone = {"type": "string", "enabled": True, "variants": {"a": "plain", "b": "warm"},
            "default_variant": "a", "rollout_percent": 25, "rollout_variant": "b"}  # fmt: skip
    assert (await _put(client, engineer, "llm.tone", tone)).status_code == 201
    listed = await client.get(FLAGS, headers=engineer)
    assert [f["key"] for f in listed.json()] == ["ai.llm.chat", "llm.tone"]

    deleted = await client.delete(f"{FLAGS}/ai.llm.chat", headers=engineer)
    assert deleted.status_code == 204
    assert (await client.get(f"{FLAGS}/ai.llm.chat", headers=engineer)).status_code == 404
    assert (await client.delete(f"{FLAGS}/ai.llm.chat", headers=engineer)).status_code == 404


async def test_every_change_is_audited_with_the_flag_before_and_after(
    client: httpx.AsyncClient, container: Container, engineer: dict[str, str]
) -> None:
    created = await _put(client, engineer, "ai.model.predict", {"enabled": True})
    updated = await _put(client, engineer, "ai.model.predict", {"enabled": False})
    deleted = await client.delete(f"{FLAGS}/ai.model.predict", headers=engineer)

    [create] = await audit_for(container, created.headers["X-Request-Id"])
    [update] = await audit_for(container, updated.headers["X-Request-Id"])
    [delete] = await audit_for(container, deleted.headers["X-Request-Id"])
    assert [e.action for e in (create, update, delete)] == [
        "flag.create", "flag.update", "flag.delete",
    ]  # fmt: skip
    assert {e.outcome for e in (create, update, delete)} == {Outcome.SUCCESS}
    assert create.resource == "flag:ai.model.predict"
    assert create.detail["before"] is None
    assert create.detail["after"]["enabled"] is True
    assert (update.detail["before"]["enabled"], update.detail["after"]["enabled"]) == (True, False)
    assert delete.detail["before"]["enabled"] is False


async def test_reading_needs_flag_read_and_changing_needs_flag_manage(
    client: httpx.AsyncClient, container: Container, engineer: dict[str, str]
) -> None:
    assert (await _put(client, engineer, "ai.llm.chat", {"enabled": True})).status_code == 201
    analyst = await _headers(container, "acme", "analyst")
    approver = await _headers(container, "acme", "model_approver")
    service = await _headers(container, "acme", "service")

    assert (await client.get(FLAGS, headers=analyst)).status_code == 403
    assert (await client.get(f"{FLAGS}/ai.llm.chat", headers=service)).status_code == 200
    assert (await client.get(FLAGS, headers=approver)).status_code == 200
    refused = await _put(client, approver, "ai.llm.chat", {"enabled": False})
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:ombud:problem:forbidden"
    gone = await client.delete(f"{FLAGS}/ai.llm.chat", headers=service)
    assert gone.status_code == 403
    assert (await client.get(FLAGS)).status_code == 401

    [event] = await audit_for(container, refused.json()["request_id"])
    assert (event.outcome, event.reason, event.action) == (
        Outcome.DENIED, "forbidden", "flag.put",
    )  # fmt: skip
    flag = (await client.get(f"{FLAGS}/ai.llm.chat", headers=engineer)).json()
    assert flag["enabled"] is True


@pytest.mark.parametrize(
    ("key", "body"),
    [
        ("ai.llm.chat", {}),
        ("ai.llm.chat", {"enabled": "yes"}),
        ("ai.llm.chat", {"enabled": True, "colour": "red"}),
        ("ai.llm.chat", {"enabled": True, "rollout_percent": 101}),
        ("ai.llm.chat", {"enabled": True, "tenant_overrides": {"acme": "off"}}),
        ("ai.llm.chat", {"enabled": True, "tenant_overrides": {"Not A Slug": True}}),
        ("ai.llm.chat", {"enabled": True, "variants": {"a": "x"}, "default_variant": "a"}),
        ("ai.llm.chat", {"type": "string", "enabled": True, "variants": {"a": "x"},
                         "default_variant": "a"}),
        ("llm.tone", {"type": "string", "enabled": True}),
        ("llm.tone", {"type": "string", "enabled": True, "variants": {"a": 1},
                      "default_variant": "a"}),
        ("llm.tone", {"type": "string", "enabled": True, "variants": {"a": "x"},
                      "default_variant": "b"}),
        ("llm.tone", {"type": "string", "enabled": True, "variants": {"a": "x"},
                      "default_variant": "a", "tenant_overrides": {"acme": "z"}}),
        ("llm.tone", {"type": "string", "enabled": True, "variants": {"a": "x"},
                      "default_variant": "a", "rollout_percent": 10}),
        ("llm.size", {"type": "integer", "enabled": True, "variants": {"a": 1.5},
                      "default_variant": "a"}),
        ("llm.size", {"type": "integer", "enabled": True, "variants": {"a": True},
                      "default_variant": "a"}),
        ("Bad Key", {"enabled": True}),
    ],
)  # fmt: skip
async def test_a_bad_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient, engineer: dict[str, str], key: str, body: dict[str, Any]
) -> None:
    response = await _put(client, engineer, key, body)
    assert response.status_code == 422, response.text
    assert response.json()["type"] == "urn:ombud:problem:validation_error"
    assert (await client.get(FLAGS, headers=engineer)).json() == []


async def test_a_bad_replacement_keeps_the_stored_flag(
    client: httpx.AsyncClient, engineer: dict[str, str]
) -> None:
    await _put(client, engineer, "ai.llm.chat", {"enabled": False})
    assert (await _put(client, engineer, "ai.llm.chat", {"enabled": 3})).status_code == 422
    assert (await client.get(f"{FLAGS}/ai.llm.chat", headers=engineer)).json()["enabled"] is False


async def test_a_dry_run_shows_what_a_caller_would_get(
    client: httpx.AsyncClient, engineer: dict[str, str]
) -> None:
    body = {"enabled": True, "tenant_overrides": {"acme": False}, "rollout_percent": 0}
    await _put(client, engineer, "ai.model.predict", body)
    url = f"{FLAGS}/ai.model.predict/evaluate"

    acme = await client.post(url, json={"tenant": "acme", "subject": "s-1"}, headers=engineer)
    other = await client.post(url, json={"tenant": "bank", "subject": "s-1"}, headers=engineer)
    nobody = await client.post(url, json={"tenant": "bank"}, headers=engineer)
    assert acme.json() == {"key": "ai.model.predict", "value": False, "variant": "off",
                           "reason": "TARGETING_MATCH", "targeting_key": "s-1"}  # fmt: skip
    assert (other.json()["value"], other.json()["reason"]) == (False, "SPLIT")
    assert (nobody.json()["value"], nobody.json()["reason"]) == (False, "DEFAULT")
    missing = await client.post(f"{FLAGS}/ai.nothing/evaluate", json={}, headers=engineer)
    assert missing.status_code == 404
    bad = await client.post(url, json={"tenant": "acme", "extra": 1}, headers=engineer)
    assert bad.status_code == 422
