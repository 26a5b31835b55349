"""Residency of inference: a subject of region X is never routed to a version, or an LLM
deployment, that may not serve X — not answered by it, not mirrored to it, not recorded as it.

The demo model's v1 serves every region; v2 (the same artifact) is declared for ``eu`` only
(``serving.regions``). Subjects are registered in ``eu`` and ``us``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ombud.audit.events import Outcome
from ombud.config import PrivacySettings, Settings
from ombud.container import Container
from ombud.deployments.tables import ShadowResultRow
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.predictions.tables import PredictionRow
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion, VersionStatus
from ombud.registry.service import RegistryService
from tests.integration.helpers import PREDICT, applicant, audit_for

pytestmark = pytest.mark.anyio

MODEL = "credit-risk"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"privacy": PrivacySettings(regions=["eu", "us"])})


@dataclass
class Setup:
    client: httpx.AsyncClient
    container: Container
    service: dict[str, str]
    engineer: dict[str, str]
    eu_only: ModelVersion

    async def subjects(self, region: str, count: int) -> list[str]:
        made = []
        for _ in range(count):
            answer = await self.client.post(
                "/v1/subjects", json={"region": region}, headers=self.service
            )
            assert answer.status_code == 201, answer.text
            made.append(answer.json()["subject_id"])
        return made

    async def predict(self, subject: str | None) -> httpx.Response:
        headers = {**self.service, "X-Ombud-Purpose": "credit_scoring"}
        if subject is not None:
            headers["X-Ombud-Subject"] = subject
        return await self.client.post(PREDICT, json=applicant(), headers=headers)

    async def deploy(self, **body: Any) -> None:
        created = await self.client.post(
            "/v1/deployments",
            json={"model": MODEL, "stable_version": 1, "candidate_version": 2,
                  "reason": "eu-only v2", **body},
            headers=self.engineer,
        )  # fmt: skip
        assert created.status_code == 201, created.text


async def _key(container: Container, role: str) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant="demo", roles=[role])).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def setup(client: httpx.AsyncClient, container: Container, api_key: str) -> Setup:
    async with container.sessions.begin() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        stable = await registry.serving_version(MODEL)
        eu_only = await registry.register_version(
            model=MODEL, artifact_uri=stable.artifact_uri, sha256=stable.sha256,
            artifact_format=stable.format, features=stable.features,
            serving=stable.serving.model_copy(update={"regions": ["eu"]}),
            status=VersionStatus.APPROVED, actor="operator",
        )  # fmt: skip
    return Setup(
        client,
        container,
        await _key(container, "service"),
        await _key(container, "ml_engineer"),
        eu_only,
    )


async def _served(setup: Setup, subjects: list[str]) -> set[str]:
    versions = set()
    for subject in subjects:
        answer = await setup.predict(subject)
        assert answer.status_code == 200, answer.text
        versions.add(answer.headers["X-Ombud-Model-Version"])
    return versions


async def _recorded(container: Container, subjects: list[str]) -> set[int]:
    async with container.sessions() as session:
        stmt = select(PredictionRow.model_version).where(PredictionRow.subject.in_(subjects))
        return set(await session.scalars(stmt))


@pytest.mark.parametrize("mode", ["canary", "ab"])
async def test_a_candidate_allowed_only_in_eu_never_serves_a_us_subject(
    setup: Setup, mode: str
) -> None:
    eu, us = await setup.subjects("eu", 6), await setup.subjects("us", 12)
    if mode == "canary":
        await setup.deploy(mode="canary", percent=100)
    else:
        await setup.deploy(mode="ab", weights={"a": 1, "b": 99})

    assert await _served(setup, us) == {"1"}
    assert await _recorded(setup.container, us) == {1}
    assert "2" in await _served(setup, eu)
    # A call about no registered subject is not bound to a region.
    assert (await setup.predict(None)).status_code == 200


async def test_a_shadow_candidate_allowed_only_in_eu_never_sees_a_us_subject(
    setup: Setup,
) -> None:
    eu, us = await setup.subjects("eu", 3), await setup.subjects("us", 5)
    await setup.deploy(mode="shadow")
    await _served(setup, us)
    await setup.container.deployments.shadow.drain()
    async with setup.container.sessions() as session:
        assert list(await session.scalars(select(ShadowResultRow.id))) == []
    await _served(setup, eu)
    await setup.container.deployments.shadow.drain()
    async with setup.container.sessions() as session:
        assert len(list(await session.scalars(select(ShadowResultRow.id)))) == 3


async def test_a_version_allowed_only_in_eu_refuses_a_us_subject(setup: Setup) -> None:
    """Without a rollout the newest approved version (v2, eu only) serves."""
    [eu], [us] = await setup.subjects("eu", 1), await setup.subjects("us", 1)
    assert await _served(setup, [eu]) == {"2"}
    refused = await setup.predict(us)
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("region_not_allowed")
    assert await _recorded(setup.container, [us]) == set()


async def test_an_llm_call_about_a_subject_stays_in_its_region(
    setup: Setup, container: Container
) -> None:
    [us] = await setup.subjects("us", 1)
    ask = {"model": "local-echo", "messages": [{"role": "user", "content": "hello"}]}
    headers = {**setup.service, "X-Ombud-Subject": us}
    # In-process models send nothing out of ombud: any region may use them.
    assert (
        await setup.client.post("/v1/chat/completions", json=ask, headers=headers)
    ).status_code == 200


async def test_the_audit_trail_records_the_region_and_the_refusal(setup: Setup) -> None:
    [eu], [us] = await setup.subjects("eu", 1), await setup.subjects("us", 1)
    served, refused = await setup.predict(eu), await setup.predict(us)
    [event] = await audit_for(setup.container, served.headers["X-Request-Id"])
    assert (event.outcome, event.detail["subject_region"]) == (Outcome.SUCCESS, "eu")
    [denial] = await audit_for(setup.container, refused.headers["X-Request-Id"])
    assert (denial.outcome, denial.reason) == (Outcome.DENIED, "region_not_allowed")
    assert denial.detail["stage"] == "model.resolve"
    assert "'us'" in str(denial.detail["detail"])


def _version_body(version: ModelVersion, regions: list[str]) -> dict[str, Any]:
    return {
        "artifact_uri": version.artifact_uri, "sha256": version.sha256,
        "format": version.format.value,
        "input_schema": [f.model_dump(mode="json") for f in version.features],
        "serving_config": {**version.serving.model_dump(mode="json"), "regions": regions},
    }  # fmt: skip


async def test_a_version_may_name_only_configured_regions(setup: Setup) -> None:
    scientist = await _key(setup.container, "data_scientist")
    url = f"/v1/registry/models/{MODEL}/versions"
    before = (await setup.client.get(url, headers=scientist)).json()
    refused = await setup.client.post(
        url, json=_version_body(setup.eu_only, ["eu", "mars"]), headers=scientist
    )
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["loc"] == ["body", "serving_config", "regions"]
    assert "mars" in error["msg"]
    assert (await setup.client.get(url, headers=scientist)).json() == before
    accepted = await setup.client.post(
        url, json=_version_body(setup.eu_only, ["eu", "us"]), headers=scientist
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["serving_config"]["regions"] == ["eu", "us"]
