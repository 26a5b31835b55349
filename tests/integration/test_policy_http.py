"""The default policy bundle through the HTTP API, decision logging, and hot reload."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from ombud.app import create_app
from ombud.audit.events import Outcome
from ombud.config import PolicySettings, Settings
from ombud.container import Container
from ombud.demo import credit_model
from ombud.demo.seed import seed_demo
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.identity.tables import TenantRow
from ombud.policy import default_bundle_dir
from ombud.policy.log import PolicyDecisionRepository
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ArtifactFormat, VersionStatus
from ombud.registry.service import RegistryService
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer

pytestmark = pytest.mark.anyio


async def test_a_credit_model_without_its_declared_purpose_is_denied_by_policy(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    response = await client.post(
        PREDICT, json=applicant(), headers={"Authorization": f"Bearer {api_key}"}
    )
    assert response.status_code == 403
    assert response.json()["type"] == "urn:ombud:problem:policy_denied"
    assert "credit_scoring" in response.json()["detail"]
    [event] = await audit_for(container, response.json()["request_id"])
    assert (event.outcome, event.detail["stage"]) == (Outcome.DENIED, "policy.before")


async def _register_premium(container: Container) -> None:
    async with container.sessions.begin() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        current = await registry.serving_version("credit-risk")
        serving = credit_model.serving_config().model_copy(update={"tier": "premium"})
        await registry.register_version(
            model="credit-risk-premium", artifact_uri=current.artifact_uri,
            sha256=current.sha256, artifact_format=ArtifactFormat.SKOPS,
            features=credit_model.feature_specs(), serving=serving,
            status=VersionStatus.APPROVED,
        )  # fmt: skip


async def test_premium_models_are_for_premium_tenants_only(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    await _register_premium(container)
    url = "/v1/models/credit-risk-premium/predict"
    standard = await client.post(url, json=applicant(), headers=bearer(api_key))
    async with container.sessions.begin() as session:
        await session.execute(
            update(TenantRow).where(TenantRow.slug == "demo").values(tier="premium")
        )
    premium = await client.post(url, json=applicant(), headers=bearer(api_key))

    assert standard.status_code == 403
    assert standard.json()["type"] == "urn:ombud:problem:policy_denied"
    assert premium.status_code == 200


async def test_every_decision_is_logged_with_the_bundle_version(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    await client.post(PREDICT, json=applicant(), headers=bearer(api_key))
    await container.policy.flush()
    async with container.sessions() as session:
        decisions = await PolicyDecisionRepository(session).recent(20)
    entrypoints = {d.entrypoint for d in decisions}
    assert {
        "data.ombud.authz.decision",
        "data.ombud.before.decision",
        "data.ombud.after.decision",
    } <= entrypoints
    assert {d.bundle_version for d in decisions} == {container.policy.version}
    assert all(len(d.input_digest) == 64 for d in decisions)


async def test_a_bad_bundle_is_refused_while_the_old_one_keeps_serving(
    settings: Settings, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    app = create_app(
        settings.model_copy(
            update={"policy": PolicySettings(bundle_dir=bundle, reload_interval_s=0)}
        )
    )
    async with app.router.lifespan_context(app):
        container: Container = app.state.container
        key = (await seed_demo(container)).api_key
        version = container.policy.version
        (bundle / "broken.rego").write_text("package ombud.broken\n\nallow if {\n")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            response = await http.post(PREDICT, json=applicant(), headers=bearer(key))
        assert response.status_code == 200
        assert container.policy.version == version
        assert container.policy.last_error is not None
        assert "broken.rego" in str(container.policy.last_error)
        await empty_database(container)


async def test_bulk_export_without_a_declared_purpose_is_denied_by_policy(
    client: httpx.AsyncClient, container: Container, api_key: str
) -> None:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        officer = (await identity.create_api_key(tenant="demo", roles=["compliance_officer"])).token
    window = {"since": "2000-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"}
    response = await client.post(
        "/v1/predictions/export", json=window, headers={"Authorization": f"Bearer {officer}"}
    )
    assert response.status_code == 403
    assert "purpose" in response.json()["detail"]
    [event] = await audit_for(container, response.json()["request_id"])
    assert event.outcome is Outcome.DENIED
