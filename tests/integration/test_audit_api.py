"""``/v1/audit``: filters, pagination, tenant isolation, roles, purpose, and reads audited."""

from __future__ import annotations

import httpx
import pytest

from ombud.audit.verify import verify_export
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from tests.integration.helpers import PREDICT, applicant, bearer

pytestmark = pytest.mark.anyio

EVENTS = "/v1/audit/events"
EXPORT = "/v1/audit/export"


async def _key(container: Container, tenant: str, role: str) -> str:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        created = await identity.create_api_key(
            tenant=tenant, roles=[role], principal=f"{tenant}-{role}"
        )
    return created.token


@pytest.fixture
async def keys(container: Container, api_key: str, client: httpx.AsyncClient) -> dict[str, str]:
    """Keys by role, and a few audited calls in tenants ``demo`` and ``other``."""
    made = {
        "analyst": api_key,
        "auditor": await _key(container, "demo", "auditor"),
        "compliance": await _key(container, "demo", "compliance_officer"),
        "other_auditor": await _key(container, "other", "auditor"),
        "other_analyst": await _key(container, "other", "analyst"),
        "admin": await _key(container, "ops", "platform_auditor"),
        "tenant_admin": await _key(container, "demo", "admin"),
    }
    for _ in range(3):
        response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
        assert response.status_code == 200
    response = await client.post(PREDICT, json=applicant(), headers=bearer(made["other_analyst"]))
    assert response.status_code in (200, 403, 404)
    return made


async def _events(
    client: httpx.AsyncClient, key: str, **params: str | int
) -> list[dict[str, object]]:
    response = await client.get(EVENTS, params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()["events"]
    return events


async def test_an_analyst_may_not_read_the_audit_trail(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    response = await client.get(EVENTS, headers=bearer(keys["analyst"]))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_tenant_sees_only_its_own_events(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    mine = await _events(client, keys["auditor"], limit=500)
    theirs = await _events(client, keys["other_auditor"], limit=500)
    assert mine
    assert theirs
    assert len({e["tenant_id"] for e in mine}) == 1
    assert len({e["tenant_id"] for e in theirs}) == 1
    assert not {e["event_id"] for e in mine} & {e["event_id"] for e in theirs}
    everything = await _events(client, keys["admin"], limit=500)
    assert {e["event_id"] for e in mine} | {e["event_id"] for e in theirs} <= {
        e["event_id"] for e in everything
    }
    # A tenant's own admin stays inside the tenant: only the platform role reads across.
    tenant_admin = await _events(client, keys["tenant_admin"], limit=500)
    assert len({e["tenant_id"] for e in tenant_admin}) == 1


async def test_filters(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    predicted = await _events(client, keys["auditor"], action="model.predict", outcome="success")
    assert len(predicted) == 3
    assert all(e["action"] == "model.predict" for e in predicted)
    one = predicted[1]
    request_id, actor = str(one["request_id"]), str(one["actor"])
    by_request = await _events(client, keys["auditor"], request_id=request_id)
    assert [e["event_id"] for e in by_request] == [one["event_id"]]
    by_actor = await _events(client, keys["auditor"], actor=actor, action="model.predict")
    assert len(by_actor) == 3
    prefix = str(one["resource"])[:6]
    assert len(await _events(client, keys["auditor"], resource_prefix=prefix)) >= 3
    assert await _events(client, keys["auditor"], resource_prefix="no-such-thing") == []
    later = await _events(client, keys["auditor"], since="2999-01-01T00:00:00Z")
    assert later == []


async def test_pagination_by_cursor(client: httpx.AsyncClient, keys: dict[str, str]) -> None:
    everything = await _events(client, keys["admin"], action="model.predict")
    seen: list[object] = []
    after = 0
    while True:
        response = await client.get(
            EVENTS, params={"action": "model.predict", "limit": 2, "after": after},
            headers=bearer(keys["admin"]),
        )  # fmt: skip
        page = response.json()
        seen.extend(e["seq"] for e in page["events"])
        if page["next_cursor"] is None:
            break
        after = page["next_cursor"]
    assert seen == [e["seq"] for e in everything]
    too_many = await client.get(EVENTS, params={"limit": 10_000}, headers=bearer(keys["admin"]))
    assert too_many.status_code == 422


async def test_export_needs_the_role_and_a_purpose(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    auditor = await client.get(EXPORT, headers={**bearer(keys["auditor"]), "X-Ombud-Purpose": "x"})
    assert auditor.status_code == 403
    no_purpose = await client.get(EXPORT, headers={"Authorization": f"Bearer {keys['compliance']}"})
    assert no_purpose.status_code == 403
    assert "purpose" in no_purpose.json()["detail"]
    response = await client.get(
        EXPORT, headers={**bearer(keys["compliance"]), "X-Ombud-Purpose": "regulator_request"}
    )
    assert response.status_code == 200
    lines = response.text.splitlines()
    assert verify_export(lines).ok
    assert '"type": "public_key"' in response.text or '"type": "checkpoint"' not in response.text
    assert sum('"type": "event"' in line for line in lines) >= 3


async def test_reading_the_trail_is_audited(
    client: httpx.AsyncClient, keys: dict[str, str]
) -> None:
    await _events(client, keys["auditor"])
    await client.get(
        EXPORT, headers={**bearer(keys["compliance"]), "X-Ombud-Purpose": "regulator_request"}
    )
    reads = await _events(client, keys["admin"], action="audit.read")
    exports = await _events(client, keys["admin"], action="audit.export")
    assert any(e["actor"] for e in reads)
    assert [e["purpose"] for e in exports] == ["regulator_request"]
