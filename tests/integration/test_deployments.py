"""Rollouts over HTTP: canary routing, shadow isolation, promotion, manual and automatic
rollback, and what a change that loses a race leaves in the audit trail."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from ombud.audit.events import AuditEvent, Outcome
from ombud.audit.repository import AuditFilter, AuditRepository
from ombud.config import DeploymentSettings, Settings
from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.core.errors import Conflict
from ombud.deployments.monitor import MONITOR_ACTOR, MONITOR_JOB, RollbackMonitor
from ombud.deployments.routing import bucket, choose_arm
from ombud.deployments.schemas import Arm, DeploymentMode
from ombud.deployments.service import Actor, DeploymentService, Rollback
from ombud.deployments.tables import DeploymentEventRow, ShadowResultRow
from ombud.deployments.wiring import deployment_jobs
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.jobs.catalog import default_registry
from ombud.predictions.repository import PredictionRepository
from ombud.records.writer import Record, RecordWriter
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import FeatureSpec, ModelVersion, VersionStatus
from ombud.registry.service import RegistryService
from ombud.serving.loader import Classifier
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer

pytestmark = pytest.mark.anyio

DEPLOYMENTS = "/v1/deployments"
MODEL = "credit-risk"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # One shadow slot: a candidate that hung and kept it would starve every later mirror.
    deployments = DeploymentSettings(shadow_timeout_s=0.2, shadow_concurrency=1)
    return settings.model_copy(update={"deployments": deployments})


@dataclass(frozen=True)
class Rollout:
    analyst: str
    """An API key that predicts (and may not read deployments: they count every tenant)."""
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
class Hung:
    """A candidate that never answers until the test lets it go."""

    inner: Classifier
    release: threading.Event
    started: threading.Event

    def predict_proba(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        self.started.set()
        self.release.wait()
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
    listed = await client.get(DEPLOYMENTS, params={"model": MODEL}, headers=rollout.engineer)
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
    read = await client.get(f"{DEPLOYMENTS}/{first['id']}", headers=rollout.engineer)
    assert (read.status_code, read.json()["percent"]) == (200, 50.0)
    listed = await client.get(DEPLOYMENTS, params={"status": "active"}, headers=rollout.engineer)
    assert [d["id"] for d in listed.json()] == [first["id"]]
    # A tenant-scoped role reads no deployment: their numbers count every tenant's traffic.
    for url in (
        DEPLOYMENTS,
        f"{DEPLOYMENTS}/{first['id']}",
        f"{DEPLOYMENTS}/{first['id']}/events",
        f"{DEPLOYMENTS}/{first['id']}/shadow",
    ):
        assert (await client.get(url, headers=analyst)).status_code == 403, url  # fmt: skip


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
    assert [e.outcome for e in await audit_for(container, again.headers["X-Request-Id"])] == [
        Outcome.REJECTED
    ]
    events = (await client.get(f"{url}/events", headers=rollout.engineer)).json()
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

    loaded = await container.runtime.get(rollout.stable)
    hung = Hung(loaded.classifier, threading.Event(), threading.Event())
    await _swap(container, rollout.candidate, hung)
    try:
        slow = await _predict(client, rollout, "u2")
        assert slow.status_code == 200
        assert slow.json()["score"] == baseline["score"]
        # The candidate never answers: the mirror times out and frees the only shadow slot.
        await container.deployments.shadow.drain()
        assert hung.started.is_set()
        assert not hung.release.is_set()

        await _swap(container, rollout.candidate, loaded.classifier)
        await _predict(client, rollout, "u3")
        await container.deployments.shadow.drain()
    finally:
        hung.release.set()
    summary = await client.get(f"{DEPLOYMENTS}/{deployment['id']}/shadow", headers=rollout.engineer)
    assert summary.json() == {
        "deployment_id": deployment["id"], "count": 3, "compared": 1, "errors": 2,
        "agreement_rate": 1.0, "mean_abs_score_diff": 0.0,
    }  # fmt: skip
    async with container.sessions() as session:
        stmt = select(ShadowResultRow.error).order_by(ShadowResultRow.created_at)
        errors = list((await session.scalars(stmt)).all())
    assert sorted(errors, key=str) == sorted(["ValueError", "timeout", None], key=str)
    counted = container.metrics.registry.get_sample_value(
        "ombud_shadow_mirrors_total", {"model": MODEL, "outcome": "error"}
    )
    assert counted == 2.0


async def test_a_candidate_that_refuses_stable_features_cannot_be_deployed(
    client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    stable = rollout.stable
    category = next(f for f in stable.features if f.type == "category")
    narrowed = [
        f.model_copy(update={"categories": (f.categories or [])[:1]}) if f is category else f
        for f in stable.features
    ]
    schemas = {
        "tenure_years": [*stable.features, FeatureSpec(name="tenure_years", type="integer")],
        category.name: narrowed,
    }
    for name, features in schemas.items():
        async with container.sessions.begin() as session:
            registry = RegistryService(RegistryRepository(session), container.clock)
            version = await registry.register_version(
                model=MODEL, artifact_uri=stable.artifact_uri, sha256=stable.sha256,
                artifact_format=stable.format, features=features, serving=stable.serving,
                status=VersionStatus.APPROVED, actor="operator",
            )  # fmt: skip
        for mode in ({"mode": "canary"}, {"mode": "shadow", "percent": None}):
            refused = await client.post(
                DEPLOYMENTS, json=_body(candidate_version=version.version, **mode),
                headers=rollout.engineer,
            )  # fmt: skip
            assert refused.status_code == 422, refused.text
            assert name in refused.json()["detail"]
            assert refused.json()["errors"][0]["loc"] == ["body", "candidate_version"]
            audited = await audit_for(container, refused.headers["X-Request-Id"])
            assert [e.outcome for e in audited] == [Outcome.REJECTED]
    # The other way round is fine: the wider version may serve what the narrower one took.
    await _create(client, rollout, stable_version=version.version, candidate_version=1)


class RacingWriter:
    """Writes records; right after the first success event of ``action`` is committed, ends
    that deployment by hand in a transaction of its own, as a concurrent request would."""

    def __init__(self, inner: RecordWriter, container: Container, action: str) -> None:
        self.inner = inner
        self.container = container
        self.action = action
        self.raced = False

    async def write(self, records: Sequence[Record]) -> None:
        await self.inner.write(records)
        for record in records:
            if isinstance(record, AuditEvent) and record.action == self.action and not self.raced:
                self.raced = True
                deployment_id = record.resource.removeprefix("deployment:")
                async with self.container.sessions.begin() as session:
                    service = DeploymentService(session, self.container.clock, self.inner)
                    await service.rollback(Actor("someone"), Rollback(deployment_id, "by hand"))


async def _trail(container: Container, deployment_id: str) -> list[tuple[str, str, str, str]]:
    async with container.sessions() as session:
        links = await AuditRepository(session).find(
            AuditFilter(resource_prefix=f"deployment:{deployment_id}")
        )
    return [
        (link.event.action, link.event.actor, link.event.outcome.value, link.event.reason or "")
        for link in links
        if link.event is not None
    ]


async def test_a_change_that_loses_a_race_is_compensated_in_the_trail(
    client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    racing = RacingWriter(container.records, container, "deployment.promote")
    deployment = await _create(client, rollout, percent=10)
    async with container.sessions() as session:
        service = DeploymentService(session, container.clock, racing)
        with pytest.raises(Conflict, match="changed meanwhile"):
            await service.promote(Actor("late"), deployment["id"], "ship it")
    trail = await _trail(container, deployment["id"])
    assert trail[1:] == [
        ("deployment.promote", "late", "success", "ship it"),
        ("deployment.rollback", "someone", "success", "by hand"),
        ("deployment.promote", "late", "error", "conflict"),
    ]
    read = await client.get(f"{DEPLOYMENTS}/{deployment['id']}", headers=rollout.engineer)
    assert (read.json()["status"], read.json()["ended_by"]) == ("rolled_back", "someone")


async def _monitor(container: Container, clock: FrozenClock) -> list[str]:
    monitor = RollbackMonitor(
        container.sessions, container.records, container.metrics,
        container.deployments.routing.invalidate,
    )  # fmt: skip
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


async def test_the_monitor_skips_a_deployment_rolled_back_meanwhile(
    lenient_client: httpx.AsyncClient, container: Container, rollout: Rollout
) -> None:
    client = lenient_client
    guards = {"min_requests": 3, "max_error_rate": 0.2, "window_s": 300, "max_score_psi": None}
    deployment = await _create(client, rollout, guards=guards)
    await _swap(container, rollout.candidate, Failing())
    for subject in _subjects(deployment["id"], Arm.CANARY, 3):
        assert (await _predict(client, rollout, subject)).status_code >= 500
    racing = RacingWriter(container.records, container, "deployment.rollback")
    forgotten: list[str] = []
    monitor = RollbackMonitor(container.sessions, racing, container.metrics, forgotten.append)
    async with container.sessions.begin() as session:
        assert await monitor.check(session, FrozenClock(container.clock.now())) == []
    assert forgotten == []
    trail = await _trail(container, deployment["id"])
    assert trail[1:] == [
        ("deployment.rollback", MONITOR_ACTOR, "success", trail[1][3]),
        ("deployment.rollback", "someone", "success", "by hand"),
        ("deployment.rollback", MONITOR_ACTOR, "error", "conflict"),
    ]
    assert (
        container.metrics.registry.get_sample_value(
            "ombud_deployment_rollbacks_total", {"model": MODEL, "reason": "error_rate"}
        )
        is None
    )
    # Ended now: the next run writes nothing for it.
    async with container.sessions.begin() as session:
        assert await monitor.check(session, FrozenClock(container.clock.now())) == []
    assert len(await _trail(container, deployment["id"])) == len(trail)


@pytest.fixture
def commits_and_forgets(container: Container) -> Iterator[list[str]]:
    """``commit`` for each commit of a change to a deployment (each appends to its history),
    ``invalidate`` for each time the routing cache forgets a model, in order."""
    order: list[str] = []
    routing = container.deployments.routing
    forget = routing.invalidate

    def flushing(session: Session, *_: object) -> None:
        if any(isinstance(o, DeploymentEventRow) for o in session.new):
            session.info["deployment_changed"] = True

    def committed(session: Session) -> None:
        if session.info.pop("deployment_changed", False):
            order.append("commit")

    def invalidate(model: str) -> None:
        order.append("invalidate")
        forget(model)

    event.listen(Session, "before_flush", flushing)
    event.listen(Session, "after_commit", committed)
    object.__setattr__(routing, "invalidate", invalidate)
    try:
        yield order
    finally:
        event.remove(Session, "after_commit", committed)
        event.remove(Session, "before_flush", flushing)
        object.__delattr__(routing, "invalidate")


async def test_the_routing_cache_forgets_a_model_only_after_the_change_committed(
    client: httpx.AsyncClient, rollout: Rollout, commits_and_forgets: list[str]
) -> None:
    deployment = await _create(client, rollout, percent=10)
    assert commits_and_forgets == ["commit", "invalidate"]
    url = f"{DEPLOYMENTS}/{deployment['id']}"
    for path, body in (("", {"percent": 20}), ("/rollback", {"reason": "done"})):
        commits_and_forgets.clear()
        method = client.patch if not path else client.post
        assert (await method(url + path, json=body, headers=rollout.engineer)).status_code == 200
        assert commits_and_forgets == ["commit", "invalidate"], path
