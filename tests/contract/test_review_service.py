"""The review state machine on every backend: transitions, rules, deadlines, appeals, history."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import pytest

from ombud.container import Container
from ombud.core.clock import FrozenClock
from ombud.core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from ombud.identity.principal import Principal, PrincipalKind
from ombud.observability.metrics import Metrics
from ombud.review.repository import ReviewRepository
from ombud.review.schemas import (
    DecisionCreate,
    ReviewAction,
    ReviewFilters,
    ReviewPage,
    ReviewStatus,
)
from ombud.review.service import ReviewService

pytestmark = pytest.mark.anyio

T = TypeVar("T")
START = datetime(2100, 1, 1, tzinfo=UTC)
TENANT = "ten_bank"
RECOMMENDATION = {"score": 0.71, "decision": "deny", "threshold": 0.5}
APPROVE = DecisionCreate(action=ReviewAction.APPROVE)
OVERRIDE = DecisionCreate(
    action=ReviewAction.OVERRIDE,
    outcome={"decision": "approve"},
    justification="income verified by phone; score relied on a stale bureau record",
)


def principal(pid: str, *roles: str, tenant: str = TENANT) -> Principal:
    return Principal(
        id=pid, name=pid, kind=PrincipalKind.USER, roles=frozenset(roles), tenant_id=tenant,
        tenant_slug=tenant, tenant_tier="standard", credential_id=f"key_{pid}",
    )  # fmt: skip


REQUESTER = principal("prn_app", "service")
ALICE = principal("prn_alice", "reviewer")
BOB = principal("prn_bob", "reviewer")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


class Run(Protocol):
    """Runs one unit of work against the service, committed at its end."""

    async def __call__(self, work: Callable[[ReviewService], Awaitable[T]]) -> T: ...


@pytest.fixture
def run(container: Container, clock: FrozenClock, metrics: Metrics) -> Run:
    async def in_transaction(work: Callable[[ReviewService], Awaitable[T]]) -> T:
        async with container.sessions.begin() as session:
            return await work(ReviewService(session, clock, container.records, metrics))

    return in_transaction


async def _open(run: Run, subject: str = "sub_1", hours: int = 4) -> str:
    async def work(service: ReviewService) -> str:
        review = await service.open(
            tenant_id=TENANT, requested_by=REQUESTER.id, subject=subject,
            resource="prediction:pred_1", recommendation=RECOMMENDATION,
            inputs={"credit_amount": 4500}, reason="score near threshold",
            explanation={"top": ["credit_amount"]}, deadline=timedelta(hours=hours),
        )  # fmt: skip
        return review.id

    return str(await run(work))


def _count(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


async def test_claim_then_override_keeps_recommendation_decision_and_justification(
    run: Run, clock: FrozenClock, metrics: Metrics
) -> None:
    review_id = await _open(run)
    clock.advance(60)
    claimed = await run(lambda s: s.claim(ALICE, review_id))
    assert (claimed.status, claimed.claimed_by) == (ReviewStatus.CLAIMED, ALICE.id)
    await run(lambda s: s.decide(ALICE, review_id, OVERRIDE))
    detail = await run(lambda s: s.get(TENANT, review_id))

    assert detail.status is ReviewStatus.DECIDED
    assert detail.recommendation == RECOMMENDATION
    assert detail.decision is ReviewAction.OVERRIDE
    assert detail.outcome == {"decision": "approve"}
    assert detail.justification == OVERRIDE.justification
    assert (detail.decided_by, detail.decided_at) == (ALICE.id, START + timedelta(seconds=60))
    history = [(e.action, e.from_status, e.to_status, e.actor) for e in detail.history]
    assert history == [
        ("open", None, ReviewStatus.PENDING, REQUESTER.id),
        ("claim", ReviewStatus.PENDING, ReviewStatus.CLAIMED, ALICE.id),
        ("decide", ReviewStatus.CLAIMED, ReviewStatus.DECIDED, ALICE.id),
    ]
    assert detail.history[-1].note == OVERRIDE.justification
    assert _count(metrics, "ombud_reviews_opened_total") == 1
    assert _count(metrics, "ombud_reviews_decided_total", action="override") == 1


async def test_approve_keeps_the_recommendation_as_the_outcome(run: Run) -> None:
    review_id = await _open(run)
    await run(lambda s: s.claim(ALICE, review_id))
    extra = DecisionCreate(action=ReviewAction.APPROVE, outcome={"decision": "approve"})
    with pytest.raises(InvalidRequest):
        await run(lambda s: s.decide(ALICE, review_id, extra))
    decided = await run(lambda s: s.decide(ALICE, review_id, APPROVE))
    assert decided.outcome == RECOMMENDATION
    assert decided.justification is None


@pytest.mark.parametrize(
    "decision",
    [
        DecisionCreate(action=ReviewAction.OVERRIDE, outcome={"decision": "approve"}),
        DecisionCreate(
            action=ReviewAction.OVERRIDE, outcome={"decision": "approve"}, justification="  "
        ),
        DecisionCreate(action=ReviewAction.OVERRIDE, justification="because"),
    ],
)
async def test_an_override_needs_an_outcome_and_a_justification(
    run: Run, decision: DecisionCreate
) -> None:
    review_id = await _open(run)
    await run(lambda s: s.claim(ALICE, review_id))
    with pytest.raises(InvalidRequest):
        await run(lambda s: s.decide(ALICE, review_id, decision))
    assert (await run(lambda s: s.get(TENANT, review_id))).status is ReviewStatus.CLAIMED


async def test_illegal_transitions_are_conflicts(run: Run) -> None:
    review_id = await _open(run)
    with pytest.raises(Conflict):
        await run(lambda s: s.decide(ALICE, review_id, APPROVE))  # not claimed
    with pytest.raises(Conflict):
        await run(lambda s: s.release(ALICE, review_id))  # not claimed
    with pytest.raises(Conflict):
        await run(lambda s: s.appeal(REQUESTER, review_id, "unfair"))  # not decided
    await run(lambda s: s.claim(ALICE, review_id))
    with pytest.raises(Conflict):
        await run(lambda s: s.claim(BOB, review_id))  # claimed by another
    with pytest.raises(Conflict):
        await run(lambda s: s.decide(BOB, review_id, APPROVE))  # only the claimant
    with pytest.raises(Conflict):
        await run(lambda s: s.release(BOB, review_id))
    released = await run(lambda s: s.release(ALICE, review_id))
    assert (released.status, released.claimed_by) == (ReviewStatus.PENDING, None)
    await run(lambda s: s.claim(BOB, review_id))
    await run(lambda s: s.decide(BOB, review_id, APPROVE))
    for attempt in (
        lambda s: s.claim(ALICE, review_id),
        lambda s: s.decide(BOB, review_id, APPROVE),
        lambda s: s.release(BOB, review_id),
    ):
        with pytest.raises(Conflict):
            await run(attempt)


async def test_the_principal_who_opened_a_review_may_not_decide_it(run: Run) -> None:
    review_id = await _open(run)
    requester_as_reviewer = principal(REQUESTER.id, "reviewer")
    with pytest.raises(Forbidden):
        await run(lambda s: s.claim(requester_as_reviewer, review_id))


async def test_another_tenants_review_is_not_found(run: Run) -> None:
    review_id = await _open(run)
    outsider = principal("prn_eve", "reviewer", tenant="ten_other")
    with pytest.raises(NotFound):
        await run(lambda s: s.get("ten_other", review_id))
    with pytest.raises(NotFound):
        await run(lambda s: s.claim(outsider, review_id))


async def test_an_appeal_reopens_a_decided_review_and_history_keeps_the_decision(
    run: Run, clock: FrozenClock, metrics: Metrics
) -> None:
    review_id = await _open(run, hours=4)
    await run(lambda s: s.claim(ALICE, review_id))
    await run(lambda s: s.decide(ALICE, review_id, OVERRIDE))
    clock.advance(3600)
    reopened = await run(lambda s: s.appeal(REQUESTER, review_id, "the subject disputes it"))

    assert reopened.status is ReviewStatus.PENDING
    assert reopened.appeal_count == 1
    assert (reopened.decision, reopened.outcome, reopened.claimed_by) == (None, None, None)
    assert reopened.deadline_at == clock.now() + timedelta(hours=4)
    detail = await run(lambda s: s.get(TENANT, review_id))
    appeal = detail.history[-1]
    assert (appeal.action, appeal.note) == ("appeal", "the subject disputes it")
    assert appeal.detail["earlier"]["justification"] == OVERRIDE.justification
    assert appeal.detail["earlier"]["outcome"] == {"decision": "approve"}
    assert _count(metrics, "ombud_review_appeals_total") == 1
    # Decided again after the appeal, by another reviewer.
    await run(lambda s: s.claim(BOB, review_id))
    again = await run(lambda s: s.decide(BOB, review_id, APPROVE))
    assert (again.status, again.appeal_count) == (ReviewStatus.DECIDED, 1)


async def test_overdue_reviews_escalate_and_can_then_be_claimed(
    run: Run, clock: FrozenClock, metrics: Metrics
) -> None:
    pending = await _open(run, "sub_1", hours=1)
    claimed = await _open(run, "sub_2", hours=1)
    decided = await _open(run, "sub_3", hours=1)
    later = await _open(run, "sub_4", hours=5)
    await run(lambda s: s.claim(ALICE, claimed))
    await run(lambda s: s.claim(ALICE, decided))
    await run(lambda s: s.decide(ALICE, decided, APPROVE))
    assert await run(lambda s: s.escalate_overdue()) == []

    clock.advance(3601)
    escalated = await run(lambda s: s.escalate_overdue())
    assert {r.id for r in escalated} == {pending, claimed}
    assert all(r.claimed_by is None and r.overdue for r in escalated)
    assert await run(lambda s: s.escalate_overdue()) == []
    assert _count(metrics, "ombud_review_escalations_total") == 2
    page = await run(lambda s: s.list(TENANT, ReviewFilters(overdue=True), cursor=None, limit=10))
    assert {r.id for r in page.items} == {pending, claimed}
    status = (await run(lambda s: s.get(TENANT, later))).status
    assert status is ReviewStatus.PENDING

    await run(lambda s: s.claim(BOB, pending))
    back = await run(lambda s: s.release(BOB, pending))
    assert back.status is ReviewStatus.ESCALATED
    await run(lambda s: s.claim(BOB, pending))
    final = await run(lambda s: s.decide(BOB, pending, APPROVE))
    assert final.status is ReviewStatus.DECIDED


async def test_a_stale_transition_loses(run: Run, container: Container) -> None:
    review_id = await _open(run)
    async with container.sessions.begin() as session:
        repo = ReviewRepository(session)
        row = await repo.get(review_id)
        assert row is not None
        assert await repo.update_guarded(review_id, row.version, {"reason": "x"})
        assert not await repo.update_guarded(review_id, row.version, {"reason": "y"})


async def _page(service: ReviewService, cursor: str | None) -> ReviewPage:
    return await service.list(TENANT, ReviewFilters(), cursor=cursor, limit=2)


async def test_list_filters_and_pages_with_a_cursor(run: Run, clock: FrozenClock) -> None:
    ids = []
    for n in range(5):
        ids.append(await _open(run, subject=f"sub_{n % 2}"))
        clock.advance(1)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await run(functools.partial(_page, cursor=cursor))
        seen += [r.id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids
    only = await run(lambda s: s.list(TENANT, ReviewFilters(subject="sub_1"), cursor=None, limit=9))
    assert [r.id for r in only.items] == [ids[1], ids[3]]
    claimed = ReviewFilters(status=ReviewStatus.CLAIMED)
    assert (await run(lambda s: s.list(TENANT, claimed, cursor=None, limit=9))).items == []
    with pytest.raises(InvalidRequest):
        await run(lambda s: s.list(TENANT, ReviewFilters(), cursor="not-a-cursor", limit=2))
