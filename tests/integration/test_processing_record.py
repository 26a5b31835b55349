"""``/v1/compliance/processing-record`` and ``/privacy-notice`` over HTTP, on every backend."""

from __future__ import annotations

import httpx
import pytest

from ombud.container import Container
from ombud.demo.seed import DEMO_DATASET
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from tests.integration.helpers import audit_for

pytestmark = pytest.mark.anyio

RECORD = "/v1/compliance/processing-record"
NOTICE = "/v1/compliance/privacy-notice"


async def _officer(container: Container) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        key = await identity.create_api_key(tenant="demo", roles=["compliance_officer"])
    return {"Authorization": f"Bearer {key.token}"}


async def test_the_record_lists_purposes_models_and_feature_views(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.get(RECORD, headers=await _officer(container))
    assert response.status_code == 200, response.text
    record = response.json()
    catalog = container.data_access.catalog
    purposes = {p["name"]: p for p in record["purposes"]}
    assert set(purposes) == set(catalog.purposes)
    for name, purpose in catalog.purposes.items():
        assert purposes[name]["lawful_basis"] == purpose.lawful_basis.value
        assert purposes[name]["categories"] == list(purpose.categories)
    [model] = [m for m in record["models"] if m["name"] == "credit-risk"]
    [version] = model["approved_versions"]
    assert DEMO_DATASET in [s["dataset_id"] for s in version["training_sources"]]
    [view] = [v for v in record["feature_views"] if v["id"] == "credit_applicant_v1"]
    assert view["data_categories"] == ["financial"]
    assert record["sources"]["registry_approved_versions"] >= 1
    assert record["generated_at"]


async def test_the_markdown_record_and_the_notice(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    headers = await _officer(container)
    response = await client.get(RECORD, headers={**headers, "Accept": "text/markdown"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/markdown")
    lines = response.text.splitlines()
    for name in container.data_access.catalog.purposes:
        assert f"### {name}" in lines
    notice = await client.get(NOTICE, headers=headers)
    assert notice.status_code == 200, notice.text
    assert "human review" in notice.text
    assert "- credit-risk: decides" in notice.text


async def test_reading_the_record_needs_its_permission(
    client: httpx.AsyncClient, api_key: str
) -> None:
    for url in (RECORD, NOTICE):
        response = await client.get(url, headers={"Authorization": f"Bearer {api_key}"})
        assert response.status_code == 403, url


async def test_reading_the_record_is_audited(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.get(RECORD, headers=await _officer(container))
    assert response.status_code == 200
    events = await audit_for(container, response.headers["X-Request-Id"])
    assert [(e.action, e.resource) for e in events] == [("compliance.read", "processing-record")]
