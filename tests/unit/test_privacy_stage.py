"""The ``privacy.preferences`` stage, the policy input it feeds and the default after-policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.core.clock import FrozenClock
from ombud.gateway.call import Call, Finding
from ombud.gateway.outcomes import SendToReview
from ombud.identity.principal import Principal, PrincipalKind
from ombud.llm.cache_keys import cache_key
from ombud.llm.types import ChatRequest, Message
from ombud.policy import PolicyEngine, default_bundle_dir
from ombud.policy.inputs import before_input
from ombud.policy.stages import PolicyAfter
from ombud.privacy.regions import RegionalStores
from ombud.privacy.stage import SubjectPreferences
from ombud.privacy.tables import SubjectPreferenceRow
from ombud.registry.schemas import (
    ArtifactFormat,
    FeatureSpec,
    ModelVersion,
    ServingConfig,
    VersionStatus,
)

pytestmark = pytest.mark.anyio

ENGINE = PolicyEngine(default_bundle_dir(), clock=FrozenClock())
SUBJECT = "sub_" + "a" * 32
AUTOMATED = Finding("privacy.preferences", "automated_decision_opt_out")
PERSONALIZATION = Finding("privacy.preferences", "personalization_opt_out")


def _principal(tenant: str = "ten_a") -> Principal:
    return Principal(
        id="prn_1", name="p", kind=PrincipalKind.SERVICE, roles=frozenset({"service"}),
        tenant_id=tenant, tenant_slug="a", tenant_tier="standard", credential_id="key_1",
    )  # fmt: skip


def _row(tenant: str, *, automated: bool, personalization: bool) -> SubjectPreferenceRow:
    return SubjectPreferenceRow(
        subject_id=SUBJECT, tenant_id=tenant, automated_decision_opt_out=automated,
        personalization_opt_out=personalization, recorded_by="prn_1",
        recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
    )  # fmt: skip


class FakeSession:
    """Answers the one preferences query with a fixed row, and counts the queries."""

    def __init__(self, row: SubjectPreferenceRow | None) -> None:
        self.row = row
        self.queries = 0

    async def scalars(self, statement: Any) -> FakeSession:
        self.queries += 1
        return self

    def first(self) -> SubjectPreferenceRow | None:
        return self.row


class FakeHome:
    """The one store every subject lives in, as :class:`RegionalStores` answers it."""

    def __init__(self, session: FakeSession) -> None:
        @asynccontextmanager
        async def opened() -> AsyncIterator[FakeSession]:
            yield session

        self.sessions = cast("async_sessionmaker[AsyncSession]", opened)

    async def home(self, subject_id: str) -> FakeHome:
        return self

    async def locate(self, subject_id: str) -> tuple[str, str] | None:
        return None


def _sessions(session: FakeSession) -> RegionalStores:
    return cast("RegionalStores", FakeHome(session))


def _call(subject: str | None = SUBJECT, tenant: str = "ten_a") -> Call:
    call = Call(route="model.predict", request_id="req_1", target="churn")
    call.principal = _principal(tenant)
    call.subject = subject
    return call


async def test_opt_outs_of_the_callers_tenant_become_findings() -> None:
    session = FakeSession(_row("ten_a", automated=True, personalization=True))
    call = _call()
    assert await SubjectPreferences(_sessions(session))(call) is None
    assert call.findings == [AUTOMATED, PERSONALIZATION]
    assert session.queries == 1


async def test_another_tenants_preferences_apply_nothing() -> None:
    call = _call(tenant="ten_b")
    session = FakeSession(_row("ten_a", automated=True, personalization=True))
    await SubjectPreferences(_sessions(session))(call)
    assert call.findings == []


@pytest.mark.parametrize("subject", [None, "subj-42", "sub_123", "SUB_" + "a" * 32])
async def test_ids_that_cannot_be_registered_subjects_cost_no_query(subject: str | None) -> None:
    session = FakeSession(_row("ten_a", automated=True, personalization=False))
    call = _call(subject)
    await SubjectPreferences(_sessions(session))(call)
    assert (call.findings, session.queries) == ([], 0)


async def test_a_subject_without_preferences_changes_nothing() -> None:
    call = _call()
    await SubjectPreferences(_sessions(FakeSession(None)))(call)
    assert call.findings == []
    assert before_input(call)["personalized"] is True


def test_the_policy_input_carries_the_preferences() -> None:
    call = _call()
    call.findings.append(PERSONALIZATION)
    value = before_input(call)
    assert value["preferences"] == {
        "automated_decision_opt_out": False,
        "personalization_opt_out": True,
    }
    assert value["personalized"] is False


def _version(positive: str = "churn") -> ModelVersion:
    return ModelVersion(
        id="mv_1", model="churn", version=1, status=VersionStatus.APPROVED,
        format=ArtifactFormat.SKOPS, artifact_uri="file:///m", sha256="0" * 64,
        features=[FeatureSpec(name="age", type="number")],
        serving=ServingConfig(threshold=0.5, positive_decision=positive, negative_decision="stay"),
    )  # fmt: skip


class FakeReviews:
    def __init__(self) -> None:
        self.opened: list[str] = []

    async def open(self, call: Call, reason: str) -> str:
        self.opened.append(reason)
        return "rev_1"


@pytest.mark.parametrize(
    ("decision", "opted_out", "review"),
    [("churn", True, True), ("churn", False, False), ("stay", True, False)],
)
async def test_the_default_policy_reviews_adverse_decisions_of_opted_out_subjects(
    decision: str, opted_out: bool, review: bool
) -> None:
    call = _call()
    call.model_version = _version()
    call.output = {"score": 0.9, "decision": decision, "threshold": 0.5}
    if opted_out:
        call.findings.append(AUTOMATED)
    reviews = FakeReviews()
    outcome = await PolicyAfter(ENGINE, reviews)(call)
    assert isinstance(outcome, SendToReview) is review
    assert reviews.opened == (["the subject opted out of solely automated decisions"] * review)


def test_the_response_cache_key_does_not_depend_on_the_subject() -> None:
    request = ChatRequest(model="chat", messages=[Message(role="user", content="hi")])
    keys = [
        cache_key(
            tenant_id="ten_a",
            subject=subject,
            route="llm.chat",
            alias="chat",
            deployment_versions=[("d", "1")],
            request=request,
        )  # fmt: skip
        for subject in (SUBJECT, "sub_" + "b" * 32, None)
    ]
    assert len({key.digest for key in keys}) == 1
