"""The model registry over HTTP: models, versions, the approval workflow and model cards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from ombud.audit.events import Outcome
from ombud.container import Container
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.registry.repository import RegistryRepository
from ombud.registry.service import RegistryService
from tests import promotion_support as churn
from tests.integration.helpers import audit_for

pytestmark = pytest.mark.anyio

MODELS = "/v1/registry/models"


@dataclass(frozen=True)
class Person:
    id: str
    headers: dict[str, str]


async def _person(container: Container, name: str, *roles: str) -> Person:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        created = await identity.create_api_key(tenant="acme", roles=roles, principal=name)
        principal = await identity.authenticate(created.token)
    return Person(principal.id, {"Authorization": f"Bearer {created.token}"})


@dataclass(frozen=True)
class People:
    scientist: Person
    approver: Person
    other_approver: Person
    analyst: Person
    both: Person
    """Holds both roles: may submit and approve, but never their own submission."""
    artifact: tuple[str, str]
    """A real churn model's (uri, sha256): approvals score it on the golden rows."""


@pytest.fixture
async def people(container: Container) -> People:
    return People(
        scientist=await _person(container, "scientist", "data_scientist"),
        approver=await _person(container, "approver", "model_approver"),
        other_approver=await _person(container, "approver-2", "model_approver"),
        analyst=await _person(container, "analyst", "analyst"),
        both=await _person(container, "both", "data_scientist", "model_approver"),
        artifact=churn.store(container.artifacts),
    )


def version_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "artifact_uri": "file://artifacts/churn.skops",
        "sha256": "ab" * 32,
        "format": "skops",
        "input_schema": [
            {"name": "tenure_months", "type": "integer", "minimum": 0},
            {"name": "sex", "type": "category", "categories": ["f", "m"], "role": "protected",
             "required": False},
        ],
        "serving_config": {"threshold": 0.4, "positive_decision": "retain_offer",
                           "negative_decision": "none"},
        "description": "Gradient-boosted churn model.",
        "intended_use": "Ranking customers for retention offers.",
        "limitations": "Not validated for customers under 18.",
        "lineage": [{"dataset_id": "ds_customers", "feature_view": "churn_features",
                     "feature_view_version": 3,
                     "time_range": {"from": "2025-01-01T00:00:00Z", "to": "2025-06-30T00:00:00Z"}}],
        "metrics": {"roc_auc": 0.81, "brier": 0.12},
    }  # fmt: skip
    body.update(changes)
    return body


async def _draft(client: httpx.AsyncClient, people: People, by: Person | None = None) -> int:
    author = by or people.scientist
    if (await client.get(f"{MODELS}/churn", headers=author.headers)).status_code == 404:
        created = await client.post(
            MODELS, json={"name": "churn", "owner": "retention team"}, headers=author.headers
        )
        assert created.status_code == 201, created.text
    uri, sha256 = people.artifact
    response = await client.post(
        f"{MODELS}/churn/versions", json=version_body(artifact_uri=uri, sha256=sha256),
        headers=author.headers,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.json()["approval"]["status"] == "draft"
    version: int = response.json()["version"]
    if (await client.get(f"{MODELS}/churn/golden", headers=author.headers)).status_code == 404:
        golden = await client.put(
            f"{MODELS}/churn/golden", json=churn.golden_body(), headers=people.approver.headers
        )
        assert golden.status_code == 200, golden.text
    return version


async def _step(
    client: httpx.AsyncClient, version: int, action: str, who: Person, reason: str | None = None
) -> httpx.Response:
    body = {} if action in ("submit", "revise") else {"reason": reason}
    url = f"{MODELS}/churn/versions/{version}/{action}"
    return await client.post(url, json=body, headers=who.headers)


async def _serving(container: Container) -> int:
    async with container.sessions() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        return (await registry.serving_version("churn")).version


async def test_a_version_goes_from_draft_to_approved_and_each_step_is_audited(
    client: httpx.AsyncClient, container: Container, people: People
) -> None:
    version = await _draft(client, people)
    submitted = await _step(client, version, "submit", people.scientist)
    approved = await _step(client, version, "approve", people.approver, "validated offline")

    assert submitted.json()["approval"]["submitted_by"] == people.scientist.id
    decision = approved.json()["approval"]
    assert decision["status"] == "approved"
    assert (decision["decided_by"], decision["reason"]) == (people.approver.id, "validated offline")
    assert await _serving(container) == version
    gate, event = await audit_for(container, approved.headers["X-Request-Id"])
    assert (gate.action, gate.outcome) == ("registry.promotion_gate", Outcome.SUCCESS)
    assert (event.action, event.resource, event.actor) == (
        "registry.approve", "model:churn:v1", people.approver.id,
    )  # fmt: skip
    assert (event.outcome, event.reason, event.detail) == (
        Outcome.SUCCESS, "validated offline", {"from": "pending_review", "to": "approved"},
    )  # fmt: skip
    [submit_event] = await audit_for(container, submitted.headers["X-Request-Id"])
    assert submit_event.action == "registry.submit"


async def test_approving_a_new_version_keeps_the_earlier_one_approved(
    client: httpx.AsyncClient, container: Container, people: People
) -> None:
    first = await _draft(client, people)
    await _step(client, first, "submit", people.scientist)
    await _step(client, first, "approve", people.approver)
    second = await _draft(client, people)
    await _step(client, second, "submit", people.scientist)
    approved = await _step(client, second, "approve", people.other_approver, "better AUC")

    assert approved.status_code == 200
    assert await _serving(container) == second
    old = await client.get(f"{MODELS}/churn/versions/{first}", headers=people.analyst.headers)
    assert old.json()["approval"]["status"] == "approved"
    events = await audit_for(container, approved.headers["X-Request-Id"])
    assert {(e.action, e.resource, e.reason) for e in events} == {
        ("registry.promotion_gate", "model:churn:v2", None),
        ("registry.approve", "model:churn:v2", "better AUC"),
    }
    model = await client.get(f"{MODELS}/churn", headers=people.analyst.headers)
    assert (model.json()["approved_version"], model.json()["latest_version"]) == (2, 2)
    deprecated = await _step(client, second, "deprecate", people.approver, "worse in production")
    assert deprecated.status_code == 200, deprecated.text
    assert await _serving(container) == first


async def test_rejected_versions_are_revised_then_deprecated_after_approval(
    client: httpx.AsyncClient, container: Container, people: People
) -> None:
    version = await _draft(client, people)
    steps = [
        ("submit", people.scientist, None, "pending_review"),
        ("reject", people.approver, "calibration is off", "rejected"),
        ("revise", people.scientist, None, "draft"),
        ("submit", people.scientist, None, "pending_review"),
        ("approve", people.approver, None, "approved"),
        ("deprecate", people.approver, "retired", "deprecated"),
    ]
    for action, who, reason, status in steps:
        response = await _step(client, version, action, who, reason)
        assert response.status_code == 200, (action, response.text)
        assert response.json()["approval"]["status"] == status
        *_, event = await audit_for(container, response.headers["X-Request-Id"])
        assert event.action == f"registry.{action}"


REFUSED = {
    "draft": ["approve", "reject", "deprecate", "revise"],
    "pending_review": ["submit", "deprecate", "revise"],
    "approved": ["submit", "approve", "reject", "revise"],
    "rejected": ["submit", "approve", "reject", "deprecate"],
    "deprecated": ["submit", "approve", "reject", "deprecate", "revise"],
}
PATH_TO = {
    "draft": [],
    "pending_review": ["submit"],
    "approved": ["submit", "approve"],
    "rejected": ["submit", "reject"],
    "deprecated": ["submit", "approve", "deprecate"],
}


async def test_every_other_step_is_refused_with_409(
    client: httpx.AsyncClient, container: Container, people: People
) -> None:
    for status, refused in REFUSED.items():
        version = await _draft(client, people)
        for action in PATH_TO[status]:
            who = people.scientist if action == "submit" else people.approver
            assert (await _step(client, version, action, who, "because")).status_code == 200
        for action in refused:
            who = people.scientist if action in ("submit", "revise") else people.approver
            response = await _step(client, version, action, who, "because")
            assert response.status_code == 409, (status, action, response.text)
            assert response.json()["type"] == "urn:ombud:problem:conflict"
            assert status in response.json()["detail"]
    [event] = await audit_for(container, response.headers["X-Request-Id"])
    assert (event.outcome, event.reason) == (Outcome.REJECTED, "conflict")


async def test_nobody_approves_their_own_submission(
    client: httpx.AsyncClient, container: Container, people: People
) -> None:
    version = await _draft(client, people, by=people.both)
    await _step(client, version, "submit", people.both)
    response = await _step(client, version, "approve", people.both, "looks fine to me")

    assert response.status_code == 403
    assert response.json()["type"] == "urn:ombud:problem:policy_denied"
    assert "own submission" in response.json()["detail"]
    [event] = await audit_for(container, response.headers["X-Request-Id"])
    assert (event.action, event.resource, event.actor) == (
        "registry.approve", "model:churn:v1", people.both.id,
    )  # fmt: skip
    assert (event.outcome, event.reason) == (Outcome.DENIED, "policy_denied")
    rejected = await _step(client, version, "reject", people.both, "changed my mind")
    assert rejected.status_code == 403
    assert (await _step(client, version, "approve", people.approver)).status_code == 200


async def test_decisions_and_authoring_need_their_roles(
    client: httpx.AsyncClient, container: Container, people: People
) -> None:
    version = await _draft(client, people)
    await _step(client, version, "submit", people.scientist)

    by_scientist = await _step(client, version, "approve", people.scientist)
    assert by_scientist.status_code == 403
    assert by_scientist.json()["type"] == "urn:ombud:problem:forbidden"
    [event] = await audit_for(container, by_scientist.headers["X-Request-Id"])
    assert (event.action, event.outcome) == ("registry.approve", Outcome.DENIED)
    by_analyst = await client.post(
        f"{MODELS}/churn/versions", json=version_body(), headers=people.analyst.headers
    )
    assert by_analyst.status_code == 403
    assert (await client.get(MODELS)).status_code == 401


async def test_bad_requests_answer_404_and_422(client: httpx.AsyncClient, people: People) -> None:
    version = await _draft(client, people)
    await _step(client, version, "submit", people.scientist)
    headers = people.approver.headers

    no_reason = await client.post(f"{MODELS}/churn/versions/1/reject", json={}, headers=headers)
    blank = await _step(client, version, "reject", people.approver, "   ")
    unknown_model = await client.get(f"{MODELS}/nope/versions/1", headers=headers)
    unknown_version = await client.post(f"{MODELS}/churn/versions/9/approve", json={},
                                        headers=headers)  # fmt: skip
    bad_body = await client.post(
        f"{MODELS}/churn/versions", json=version_body(sha256="xyz"),
        headers=people.scientist.headers,
    )  # fmt: skip
    taken = await client.post(MODELS, json={"name": "churn"}, headers=people.scientist.headers)

    assert [no_reason.status_code, blank.status_code, bad_body.status_code] == [422, 422, 422]
    assert "sha256" in str(bad_body.json()["errors"])
    assert unknown_model.json()["type"] == "urn:ombud:problem:model_not_found"
    assert unknown_version.status_code == 404
    assert taken.status_code == 409


async def test_the_model_card_as_json_and_markdown(
    client: httpx.AsyncClient, container: Container, people: People
) -> None:
    version = await _draft(client, people)
    await _step(client, version, "submit", people.scientist)
    await _step(client, version, "approve", people.approver, "fit for retention offers")
    url = f"{MODELS}/churn/versions/{version}/card"

    card = (await client.get(url, headers=people.analyst.headers)).json()
    markdown = await client.get(url, headers={**people.analyst.headers, "Accept": "text/markdown"})

    assert (card["owner"], card["intended_use"]) == (
        "retention team", "Ranking customers for retention offers.",
    )  # fmt: skip
    assert card["lineage"][0]["time_range"]["from"].startswith("2025-01-01")
    assert card["metrics"] == {"roc_auc": 0.81, "brier": 0.12}
    assert [h["action"] for h in card["history"]] == ["register", "submit", "approve"]
    assert card["approval"]["decided_by"] == people.approver.id
    assert markdown.headers["content-type"].startswith("text/markdown")
    text = markdown.text
    for expected in (
        "# Model card: churn v1", "Not validated for customers under 18.",
        "ds_customers, 2025-01-01 to 2025-06-30, feature view churn_features v3",
        "- roc_auc: 0.81", "Protected attributes (recorded for fairness monitoring, never given "
        "to the model): sex.", "Threshold: 0.4 (at or above: retain_offer", "- Status: approved",
        f"| approve | pending_review | approved | {people.approver.id} | fit for retention",
    ):  # fmt: skip
        assert expected in text, expected
    [event] = await audit_for(container, markdown.headers["X-Request-Id"])
    assert (event.action, event.resource) == ("registry.read", "model:churn:v1")


async def test_the_demo_version_is_approved_by_the_system_with_a_card(
    client: httpx.AsyncClient, api_key: str
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    card = (await client.get(f"{MODELS}/credit-risk/versions/1/card", headers=headers)).json()

    assert card["approval"]["status"] == "approved"
    assert card["approval"]["submitted_by"] == card["approval"]["decided_by"] == "system"
    assert card["lineage"] == [
        {"dataset_id": "uci-statlog-german-credit", "time_range": None, "feature_view": None,
         "feature_view_version": None}
    ]  # fmt: skip
    assert 0.5 < card["metrics"]["roc_auc"] <= 1.0
    assert "UCI German credit" in card["intended_use"]
    assert {f["name"] for f in card["features"] if f["role"] == "protected"} == {"sex", "age"}
