"""A subject's AI-usage opt-outs on the request path, end to end on every backend.

The bundle here is the default one with credit models taken out of the credit review rule, so a
decline is a final automated answer unless the subject objected to solely automated decisions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ombud.app import create_app
from ombud.config import PolicySettings, Settings
from ombud.container import Container
from ombud.core.ids import new_id
from ombud.demo.seed import seed_demo
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.policy import default_bundle_dir
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for

pytestmark = pytest.mark.anyio

OPT_OUT_REASON = "the subject opted out of solely automated decisions"
RISKY = applicant(checking_status="lt_0", credit_history="no_credits", duration_months=60,
                  credit_amount=15000, savings="lt_100")  # fmt: skip
SAFE = applicant(checking_status="none", credit_history="critical", duration_months=6,
                 credit_amount=800, savings="ge_1000")  # fmt: skip


@dataclass
class Setup:
    client: httpx.AsyncClient
    container: Container
    service: dict[str, str]
    """A ``service`` key of tenant ``demo``: manages subjects and calls the model."""

    async def subject(self, headers: dict[str, str] | None = None) -> str:
        created = await self.client.post(
            "/v1/subjects", json={"region": "eu"}, headers=headers or self.service
        )
        assert created.status_code == 201, created.text
        subject_id: str = created.json()["subject_id"]
        return subject_id

    async def prefer(
        self,
        subject_id: str,
        *,
        automated: bool = False,
        personalization: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = {"automated_decision_opt_out": automated, "personalization_opt_out": personalization}
        response = await self.client.put(
            f"/v1/subjects/{subject_id}/preferences", json=body, headers=headers or self.service
        )
        assert response.status_code == 200, response.text

    async def predict(self, features: dict[str, Any], subject: str | None) -> httpx.Response:
        headers = {**self.service, "X-Ombud-Purpose": "credit_scoring"}
        if subject is not None:
            headers["X-Ombud-Subject"] = subject
        return await self.client.post(PREDICT, json=features, headers=headers)


async def _key(container: Container, tenant: str, *roles: str) -> dict[str, str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant=tenant, roles=roles)).token
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def setup(settings: Settings, tmp_path: Path) -> AsyncIterator[Setup]:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_dir(), bundle)
    data = json.loads((bundle / "data.json").read_text())
    data["ombud"]["config"]["review"]["credit_models"] = []
    (bundle / "data.json").write_text(json.dumps(data))
    app = create_app(settings.model_copy(update={"policy": PolicySettings(bundle_dir=bundle)}))
    async with app.router.lifespan_context(app):
        container: Container = app.state.container
        try:
            await seed_demo(container)
            service = await _key(container, "demo", "service")
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
                yield Setup(http, container, service)
        finally:
            await empty_database(container)


def _assert_final_decline(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "decline"


async def test_an_opted_out_subjects_adverse_decision_goes_to_human_review(setup: Setup) -> None:
    opted_out, other = await setup.subject(), await setup.subject()
    await setup.prefer(opted_out, automated=True)
    await setup.prefer(other, personalization=True)

    held = await setup.predict(RISKY, opted_out)
    answered = await setup.predict(RISKY, other)

    assert held.status_code == 202, held.text
    review_id = held.json()["review_id"]
    assert held.headers["Location"] == f"/v1/reviews/{review_id}"
    review = await setup.client.get(f"/v1/reviews/{review_id}", headers=setup.service)
    assert review.json()["status"] == "pending"
    assert review.json()["reason"] == OPT_OUT_REASON
    assert review.json()["subject"] == opted_out
    _assert_final_decline(answered)
    [event] = await audit_for(setup.container, answered.headers["X-Request-Id"])
    assert "privacy.preferences:personalization_opt_out" in event.detail["findings"]
    assert "privacy.preferences:automated_decision_opt_out" not in event.detail["findings"]


async def test_withdrawing_the_opt_out_applies_to_the_next_call(setup: Setup) -> None:
    subject = await setup.subject()
    await setup.prefer(subject, automated=True)
    assert (await setup.predict(RISKY, subject)).status_code == 202

    await setup.prefer(subject, automated=False)
    _assert_final_decline(await setup.predict(RISKY, subject))

    await setup.prefer(subject, automated=True)
    assert (await setup.predict(RISKY, subject)).status_code == 202


async def test_favourable_decisions_stay_automated_for_opted_out_subjects(setup: Setup) -> None:
    subject = await setup.subject()
    await setup.prefer(subject, automated=True, personalization=True)

    response = await setup.predict(SAFE, subject)

    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "approve"
    [event] = await audit_for(setup.container, response.headers["X-Request-Id"])
    assert set(event.detail["findings"]) >= {
        "privacy.preferences:automated_decision_opt_out",
        "privacy.preferences:personalization_opt_out",
    }


async def test_unregistered_subject_ids_behave_as_before(setup: Setup) -> None:
    for subject in ("subj-42", new_id("sub"), None):
        response = await setup.predict(RISKY, subject)
        _assert_final_decline(response)
        [event] = await audit_for(setup.container, response.headers["X-Request-Id"])
        assert not [f for f in event.detail["findings"] if f.startswith("privacy.preferences:")]


async def test_a_subject_who_never_chose_has_no_opt_out(setup: Setup) -> None:
    _assert_final_decline(await setup.predict(RISKY, await setup.subject()))


async def test_another_tenants_subject_id_applies_nothing(setup: Setup) -> None:
    other_tenant = await _key(setup.container, "other-bank", "service")
    subject = await setup.subject(other_tenant)
    await setup.prefer(subject, automated=True, headers=other_tenant)

    _assert_final_decline(await setup.predict(RISKY, subject))


async def test_llm_calls_record_the_personalization_opt_out(setup: Setup) -> None:
    subject = await setup.subject()
    await setup.prefer(subject, personalization=True)
    body = {"model": "local-echo", "messages": [{"role": "user", "content": "hello"}]}

    response = await setup.client.post(
        "/v1/chat/completions", json=body, headers={**setup.service, "X-Ombud-Subject": subject}
    )

    assert response.status_code == 200, response.text
    [event] = await audit_for(setup.container, response.headers["X-Request-Id"])
    assert event.detail["findings"] == ["privacy.preferences:personalization_opt_out"]
