"""Rollouts over HTTP: canary routing, shadow isolation, promotion, manual and automatic
rollback."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI

from ombud.audit.repository import AuditFilter, AuditRepository
from ombud.config import DeploymentSettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.deployments.monitor import MONITOR_ACTOR, MONITOR_JOB, RollbackMonitor
from ombud.deployments.routing import bucket, choose_arm
from ombud.deployments.schemas import Arm, DeploymentMode
from ombud.deployments.wiring import deployment_jobs
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.predictions.repository import PredictionRepository
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion, VersionStatus
from ombud.registry.service import RegistryService
from ombud.serving.loader import Classifier
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer

pytestmark = pytest.mark.anyio

DEPLOYMENTS = "/v1/deployments"
MODEL = "credit-risk"
SLOW_S = 1.0
"""How long the slow shadow candidate takes: far beyond the shadow timeout of these tests."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"deployments": DeploymentSettings(shadow_timeout_s=0.2)})


@dataclass(frozen=True)
class Rollout:
    analyst: str
    engineer: dict[str, str]
    engineer_id: str
    approver: dict[str, str]
    stable: ModelVersion
    candidate: ModelVersion
    draft: ModelVersion


async def _key(container: Container, name: str, role: str) -> tuple[dict[str, str], str]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        created = await identity.create_api_key(tenant="demo", roles=[role], principal=name)
        principal = await identity.authenticate(created.token)
    return {"Authorization": f"Bearer {created.token}"}, principal.id


@pytest.fixture
async def rollout(container: Container, api_key: str) -> Rollout:
    """The demo model's v1 (approved), v2 (approved, same artifact) and v3 (a draft)."""
    async with container.sessions.begin() as session:
        registry = RegistryService(RegistryRepository(session), container.clock)
        stable = await registry.serving_version(MODEL)
        versions = [
            await registry.register_version(
                model=MODEL,
                artifact_uri=stable.artifact_uri,
                sha256=stable.sha256,
                artifact_format=stable.format,
                features=stable.features,
                serving=stable.serving,
                status=status,
                actor="operator",
            )  # fmt: skip
            for status in (VersionStatus.APPROVED, VersionStatus.DRAFT)
        ]
    engineer, engineer_id = await _key(container, "engineer", "ml_engineer")
    return Rollout(
        analyst=api_key,
        engineer=engineer,
        engineer_id=engineer_id,
        approver=(await _key(container, "approver", "model_approver"))[0],
        stable=stable,
        candidate=versions[0],
        draft=versions[1],
    )


def _body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": MODEL, "stable_version": 1, "candidate_version": 2, "mode": "canary",
        "percent": 50, "reason": "try v2",
    }  # fmt: skip
    body.update(changes)
    return body


async def _create(client: httpx.AsyncClient, r: Rollout, **changes: Any) -> dict[str, Any]:
    response = await client.post(DEPLOYMENTS, json=_body(**changes), headers=r.engineer)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _predict(client: httpx.AsyncClient, r: Rollout, subject: str) -> httpx.Response:
    headers = {**bearer(r.analyst), "X-Ombud-Subject": subject}
    return await client.post(PREDICT, json=applicant(), headers=headers)


def _subjects(deployment_id: str, arm: Arm, count: int, percent: float = 50.0) -> list[str]:
    """``count`` subjects the deployment routes to ``arm``."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        subject = f"subj-{n}"
        if choose_arm(DeploymentMode.CANARY, percent, bucket(deployment_id, subject)) is arm:
            found.append(subject)
        n += 1
    return found


async def _swap(container: Container, version: ModelVersion, classifier: Classifier) -> None:
    """Make ``version`` score with ``classifier`` from now on (the artifact stays the same)."""
    loaded = await container.runtime.get(version)
    object.__setattr__(loaded, "classifier", classifier)


class Failing:
    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        raise ValueError("the candidate is broken")


@dataclass
class Shifted:
    inner: Classifier

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        p = np.clip(self.inner.predict_proba(x)[:, 1] + 0.5, 0.0, 1.0)
        return np.column_stack([1.0 - p, p])


@dataclass
class Slow:
    inner: Classifier
    finished: threading.Event

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        threading.Event().wait(SLOW_S)  # a slow model, not the test waiting
        self.finished.set()
        return self.inner.predict_proba(x)


async def test_a_canary_routes_each_subject_to_a_sticky_arm(
    client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    deployment = await _create(client, rollout, percent=30)
    assert (deployment["status"], deployment["percent"]) == ("active", 30.0)
    subjects = [
        *_subjects(deployment["id"], Arm.CANARY, 6, 30.0),
        *_subjects(deployment["id"], Arm.STABLE, 6, 30.0),
    ]
    seen: dict[str, str] = {}
    for subject in subjects * 2:
        response = await _predict(client, rollout, subject)
        assert response.status_code == 200, response.text
        arm = choose_arm(DeploymentMode.CANARY, 30.0, bucket(deployment["id"], subject))
        version = response.headers["X-Ombud-Model-Version"]
        assert version == ("2" if arm is Arm.CANARY else "1")
        assert response.json()["model_version"] == int(version)
        assert seen.setdefault(subject, version) == version
        async with container.sessions() as session:
            record = await PredictionRepository(session).get(response.json()["prediction_id"])
        assert record is not None
        assert (record.deployment_id, record.arm) == (deployment["id"], arm.value)
    assert set(seen.values()) == {"1", "2"}

    raised = await client.patch(
        f"{DEPLOYMENTS}/{deployment['id']}", json={"percent": 60}, headers=rollout.engineer
    )
    assert raised.status_code == 200, raised.text
    for subject, version in seen.items():
        now = (await _predict(client, rollout, subject)).headers["X-Ombud-Model-Version"]
        assert version == "1" or now == "2", subject  # canary subjects stay on the canary
    events = await client.get(f"{DEPLOYMENTS}/{deployment['id']}/events", headers=rollout.engineer)
    assert [(e["action"], e["detail"].get("to")) for e in events.json()] == [
        ("created", None), ("percent_changed", 60.0),
    ]  # fmt: skip
    [audit] = await audit_for(container, raised.headers["X-Request-Id"])
    assert (audit.action, audit.actor, audit.detail["to"]) == (
        "deployment.update", rollout.engineer_id, 60.0,
    )  # fmt: skip


async def test_refusals_change_nothing(
    client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    analyst = bearer(rollout.analyst)
    assert (await client.post(DEPLOYMENTS, json=_body(), headers=analyst)).status_code == 403
    draft = await client.post(
        DEPLOYMENTS, json=_body(candidate_version=3), headers=rollout.engineer
    )
    assert draft.status_code == 409, draft.text
    assert "approved" in draft.json()["detail"]
    unknown = await client.post(
        DEPLOYMENTS, json=_body(candidate_version=9), headers=rollout.engineer
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["body", "candidate_version"]
    bad = await client.post(DEPLOYMENTS, json=_body(mode="shadow"), headers=rollout.engineer)
    assert bad.status_code == 422
    listed = await client.get(DEPLOYMENTS, params={"model": MODEL}, headers=analyst)
    assert (listed.status_code, listed.json()) == (200, [])

    first = await _create(client, rollout)
    second = await client.post(DEPLOYMENTS, json=_body(mode="ab", percent=None,
                               weights={"a": 1, "b": 1}), headers=rollout.engineer)  # fmt: skip
    assert second.status_code == 409
    patch = await client.patch(
        f"{DEPLOYMENTS}/{first['id']}", json={"percent": 80}, headers=analyst
    )
    assert patch.status_code == 403
    wrong = await client.patch(
        f"{DEPLOYMENTS}/{first['id']}", json={"weights": {"a": 1, "b": 1}},
        headers=rollout.engineer,
    )  # fmt: skip
    assert wrong.status_code == 422
    read = await client.get(f"{DEPLOYMENTS}/{first['id']}", headers=analyst)
    assert (read.status_code, read.json()["percent"]) == (200, 50.0)
    listed = await client.get(DEPLOYMENTS, params={"status": "active"}, headers=analyst)
    assert [d["id"] for d in listed.json()] == [first["id"]]


async def test_manual_rollback_is_audited_and_sends_everyone_to_stable(
    client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    deployment = await _create(client, rollout, percent=100)
    url = f"{DEPLOYMENTS}/{deployment['id']}"
    assert (await _predict(client, rollout, "u1")).headers["X-Ombud-Model-Version"] == "2"
    analyst = bearer(rollout.analyst)
    refused = await client.post(f"{url}/rollback", json={"reason": "no"}, headers=analyst)
    assert refused.status_code == 403
    assert (
        await client.post(f"{url}/rollback", json={}, headers=rollout.engineer)
    ).status_code == 422

    response = await client.post(
        f"{url}/rollback", json={"reason": "complaints"}, headers=rollout.engineer
    )
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["end_reason"]) == (
        "rolled_back", "complaints",
    )  # fmt: skip
    [audit] = await audit_for(container, response.headers["X-Request-Id"])
    assert (audit.action, audit.actor, audit.reason, audit.detail["trigger"]) == (
        "deployment.rollback", rollout.engineer_id, "complaints", "manual",
    )  # fmt: skip
    # v2 is the newest approved version, yet the rollback leaves v1 serving.
    assert (await _predict(client, rollout, "u1")).headers["X-Ombud-Model-Version"] == "1"
    again = await client.post(f"{url}/rollback", json={"reason": "x"}, headers=rollout.engineer)
    assert again.status_code == 409
    events = (await client.get(f"{url}/events", headers=analyst)).json()
    assert [(e["action"], e["actor"], e["reason"]) for e in events] == [
        ("created", rollout.engineer_id, "try v2"),
        ("rolled_back", rollout.engineer_id, "complaints"),
    ]  # fmt: skip
    sample = container.metrics.registry.get_sample_value(
        "ombud_deployment_rollbacks_total", {"model": MODEL, "reason": "manual"}
    )
    assert sample == 1.0


async def test_promotion_makes_the_candidate_serve_and_frees_the_stable_version(
    client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    deployment = await _create(client, rollout, stable_version=2, candidate_version=1, percent=0)
    assert (await _predict(client, rollout, "u1")).headers["X-Ombud-Model-Version"] == "2"
    deprecate = "/v1/registry/models/credit-risk/versions/2/deprecate"
    busy = await client.post(deprecate, json={"reason": "old"}, headers=rollout.approver)
    assert busy.status_code == 409, busy.text
    assert deployment["id"] in busy.json()["detail"]

    promoted = await client.post(
        f"{DEPLOYMENTS}/{deployment['id']}/promote", json={"reason": "good"},
        headers=rollout.engineer,
    )  # fmt: skip
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["status"] == "promoted"
    assert (await _predict(client, rollout, "u1")).headers["X-Ombud-Model-Version"] == "1"
    [audit] = await audit_for(container, promoted.headers["X-Request-Id"])
    assert (audit.action, audit.reason) == ("deployment.promote", "good")
    freed = await client.post(deprecate, json={"reason": "old"}, headers=rollout.approver)
    assert freed.status_code == 200, freed.text


async def test_shadow_candidates_never_change_the_answer(
    client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    baseline = (await _predict(client, rollout, "u1")).json()
    deployment = await _create(client, rollout, mode="shadow", percent=None)
    await _swap(container, rollout.candidate, Failing())

    failed = await _predict(client, rollout, "u1")
    assert failed.status_code == 200, failed.text
    assert failed.headers["X-Ombud-Model-Version"] == "1"
    assert failed.json()["score"] == baseline["score"]
    await container.deployments.shadow.drain()

    finished = threading.Event()
    loaded = await container.runtime.get(rollout.stable)
    await _swap(container, rollout.candidate, Slow(loaded.classifier, finished))
    slow = await _predict(client, rollout, "u2")
    assert slow.status_code == 200
    assert not finished.is_set()  # answered while the candidate was still scoring
    await container.deployments.shadow.drain()
    assert finished.is_set()

    await _swap(container, rollout.candidate, loaded.classifier)
    await _predict(client, rollout, "u3")
    await container.deployments.shadow.drain()
    summary = await client.get(
        f"{DEPLOYMENTS}/{deployment['id']}/shadow", headers=bearer(rollout.analyst)
    )
    assert summary.json() == {
        "deployment_id": deployment["id"], "count": 3, "compared": 1, "errors": 2,
        "agreement_rate": 1.0, "mean_abs_score_diff": 0.0,
    }  # fmt: skip
    errors = container.metrics.registry.get_sample_value(
        "ombud_shadow_mirrors_total", {"model": MODEL, "outcome": "error"}
    )
    assert errors == 2.0


async def _monitor(container: Container, clock: FrozenClock) -> list[str]:
    monitor = RollbackMonitor(
        container.records, container.metrics, container.deployments.routing.invalidate
    )
    async with container.sessions.begin() as session:
        return [v.deployment_id for v in await monitor.check(session, clock)]


@pytest.fixture
async def lenient_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that gets the app's 500 answer rather than the exception behind it."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
        yield http


async def test_the_monitor_rolls_back_a_failing_canary(
    lenient_client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    client = lenient_client
    guards = {"min_requests": 5, "max_error_rate": 0.2, "window_s": 300, "max_score_psi": None}
    deployment = await _create(client, rollout, guards=guards)
    await _swap(container, rollout.candidate, Failing())
    canary = _subjects(deployment["id"], Arm.CANARY, 6)
    for subject in canary[:4]:
        assert (await _predict(client, rollout, subject)).status_code >= 500
    for subject in _subjects(deployment["id"], Arm.STABLE, 6):
        assert (await _predict(client, rollout, subject)).status_code == 200

    clock = FrozenClock(container.clock.now())
    assert await _monitor(container, clock) == []  # 4 calls: below min_requests
    for subject in canary[4:]:
        await _predict(client, rollout, subject)
    clock.advance(400)
    assert await _monitor(container, clock) == []  # the failures are outside the window now
    assert await _monitor(container, FrozenClock(container.clock.now())) == [deployment["id"]]

    read = await client.get(f"{DEPLOYMENTS}/{deployment['id']}", headers=rollout.engineer)
    assert (read.json()["status"], read.json()["ended_by"]) == ("rolled_back", MONITOR_ACTOR)
    events = (await client.get(f"{DEPLOYMENTS}/{deployment['id']}/events",
                               headers=rollout.engineer)).json()  # fmt: skip
    rolled = events[-1]
    assert (rolled["action"], rolled["detail"]["trigger"]) == ("rolled_back", "automatic")
    assert (rolled["detail"]["errors"], rolled["detail"]["error_rate"]) == (6, 1.0)
    assert rolled["detail"]["breaches"] == ["error_rate"]
    sample = container.metrics.registry.get_sample_value(
        "ombud_deployment_rollbacks_total", {"model": MODEL, "reason": "error_rate"}
    )
    assert sample == 1.0
    after = await _predict(client, rollout, canary[0])
    assert (after.status_code, after.headers["X-Ombud-Model-Version"]) == (200, "1")


async def test_the_monitor_rolls_back_a_canary_whose_scores_shift(
    client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    guards = {"min_requests": 8, "max_score_psi": 0.25, "window_s": 300}
    deployment = await _create(client, rollout, guards=guards)
    loaded = await container.runtime.get(rollout.stable)
    await _swap(container, rollout.candidate, Shifted(loaded.classifier))
    for arm in (Arm.CANARY, Arm.STABLE):
        for subject in _subjects(deployment["id"], arm, 8):
            # Shifted scores decline, and policy sends declines to review (recorded all the same).
            assert (await _predict(client, rollout, subject)).status_code in (200, 202)

    assert await _monitor(container, FrozenClock(container.clock.now())) == [deployment["id"]]
    events = (await client.get(f"{DEPLOYMENTS}/{deployment['id']}/events",
                               headers=rollout.engineer)).json()  # fmt: skip
    assert events[-1]["detail"]["breaches"] == ["score_psi"]
    assert events[-1]["detail"]["score_psi"] > 0.25
    async with container.sessions() as session:
        selection = AuditFilter(actor=MONITOR_ACTOR, action="deployment.rollback")
        [link] = await AuditRepository(session).find(selection)
    assert link.event is not None
    assert link.event.resource == f"deployment:{deployment['id']}"
    assert link.event.detail["score_psi"] == events[-1]["detail"]["score_psi"]


async def test_the_monitor_is_a_job_run_every_minute(
    container: Container, rollout: Rollout
) -> None:
    registry = default_registry(deployments=deployment_jobs(container))
    assert MONITOR_JOB in registry.kinds
    [spec] = [s for s in registry.schedules if s.kind == MONITOR_JOB]
    assert spec.cron == "* * * * *"
    # With nothing deployed, a run rolls nothing back.
    assert await _monitor(container, FrozenClock(container.clock.now())) == []
