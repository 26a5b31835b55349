"""The review queue's rules: who may move a review from which state to which, and what it leaves.

States: ``pending → claimed → decided``; ``decided → pending`` on appeal; ``pending | claimed →
escalated`` past the deadline; ``escalated → claimed``; ``claimed → pending`` on release. Every
transition appends a history row, writes an audit event and, for decisions, escalations and
appeals, enqueues the tenant's outcome webhook in the same transaction.

The service never commits: the request (or job) that uses it owns the unit of work.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.errors import Conflict, FieldError, Forbidden, InvalidRequest, NotFound
from ombud.core.ids import new_id
from ombud.identity.principal import Principal
from ombud.jobs.queue import enqueue_in
from ombud.observability.metrics import Metrics
from ombud.records.writer import RecordWriter
from ombud.review._views import decode_cursor, encode_cursor, event_read, review_read, webhook_body
from ombud.review.repository import ReviewRepository
from ombud.review.schemas import (
    CLAIMABLE,
    DecisionCreate,
    ReviewAction,
    ReviewDetail,
    ReviewFilters,
    ReviewPage,
    ReviewRead,
    ReviewStatus,
    WebhookEvent,
)
from ombud.review.tables import ReviewRow

WEBHOOK_JOB = "review.webhook"
SYSTEM_ACTOR = "system"
DEFAULT_DEADLINE = timedelta(hours=24)


class ReviewService:
    """The review state machine over one session.

    Args:
        session: The caller's unit of work; nothing here commits it.
        clock: Time for deadlines and history.
        records: Where audit events go (the record writer).
        metrics: Opened, decided, escalated and appealed counters.
        webhook_attempts: Delivery attempts given to each outcome webhook job.
    """

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        records: RecordWriter,
        metrics: Metrics,
        *,
        webhook_attempts: int = 8,
    ) -> None:
        self._session = session
        self._repo = ReviewRepository(session)
        self._clock = clock
        self._records = records
        self._metrics = metrics
        self._webhook_attempts = webhook_attempts

    async def open(
        self,
        *,
        tenant_id: str,
        requested_by: str,
        subject: str | None,
        resource: str,
        recommendation: Mapping[str, Any],
        inputs: Mapping[str, Any],
        reason: str,
        explanation: Mapping[str, Any] | None = None,
        deadline: timedelta = DEFAULT_DEADLINE,
        request_id: str | None = None,
    ) -> ReviewRead:
        """Put a recommendation in front of a human.

        Args:
            subject: Pseudonymous data-subject id; never a direct identifier.
            resource: What is reviewed, e.g. ``prediction:pred_…`` or ``credit-risk@3``.
            inputs: What reviewers see; must already be pseudonymized.
            deadline: How long reviewers have; past it the review escalates.
        """
        if deadline <= timedelta(0):
            raise InvalidRequest(detail="a review deadline must lie in the future")
        now = self._clock.now()
        row = ReviewRow(
            id=new_id("rev"), tenant_id=tenant_id, subject=subject, resource=resource,
            requested_by=requested_by, request_id=request_id,
            recommendation=dict(recommendation), inputs=dict(inputs),
            explanation=dict(explanation) if explanation is not None else None,
            reason=reason[:200], status=ReviewStatus.PENDING.value,
            window_s=int(deadline.total_seconds()), deadline_at=now + deadline,
            appeal_count=0, version=1, created_at=now, updated_at=now,
        )  # fmt: skip
        await self._audit(row, "open", requested_by, request_id, {"reason": row.reason})
        await self._repo.add(row)
        await self._history(row, "open", None, requested_by, reason, {})
        self._metrics.reviews_opened.inc()
        return review_read(row, now)

    async def list(
        self, tenant_id: str, filters: ReviewFilters, *, cursor: str | None, limit: int
    ) -> ReviewPage:
        """One page of the tenant's reviews, oldest first."""
        after = decode_cursor(cursor) if cursor else None
        now = self._clock.now()
        rows = await self._repo.page(tenant_id, filters, now=now, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return ReviewPage(
            items=[review_read(r, now) for r in rows],
            next_cursor=encode_cursor(rows[-1]) if more else None,
        )

    async def get(self, tenant_id: str, review_id: str) -> ReviewDetail:
        """A review of ``tenant_id`` with its history; another tenant's answers 404."""
        row = await self._load(tenant_id, review_id)
        history = [event_read(e) for e in await self._repo.history(row.id)]
        return ReviewDetail(**review_read(row, self._clock.now()).model_dump(), history=history)

    async def tenant_of(self, review_id: str) -> str:
        """The tenant owning ``review_id`` (for authorization); 404 when there is none."""
        row = await self._repo.get(review_id)
        if row is None:
            raise NotFound(detail=f"no review {review_id!r}")
        return row.tenant_id

    async def claim(
        self, principal: Principal, review_id: str, *, request_id: str | None = None
    ) -> ReviewRead:
        """Take a pending or escalated review; nobody else can act on it until released."""
        row = await self._load(principal.tenant_id, review_id)
        if row.requested_by == principal.id:
            raise Forbidden(detail="the principal who opened a review may not decide it")
        if ReviewStatus(row.status) not in CLAIMABLE:
            raise Conflict(detail=f"a {row.status} review cannot be claimed")
        now = self._clock.now()
        values = {"claimed_by": principal.id, "claimed_at": now}
        await self._audit(row, "claim", principal.id, request_id, {}, ReviewStatus.CLAIMED)
        row = await self._move(row, "claim", principal.id, ReviewStatus.CLAIMED, values)
        return review_read(row, now)

    async def release(
        self, principal: Principal, review_id: str, *, request_id: str | None = None
    ) -> ReviewRead:
        """Give a claimed review back to the queue (escalated again if it is overdue)."""
        row = await self._claimed_by(principal, review_id)
        now = self._clock.now()
        back = ReviewStatus.ESCALATED if row.deadline_at <= now else ReviewStatus.PENDING
        values = {"claimed_by": None, "claimed_at": None}
        await self._audit(row, "release", principal.id, request_id, {}, back)
        row = await self._move(row, "release", principal.id, back, values)
        return review_read(row, now)

    async def decide(
        self,
        principal: Principal,
        review_id: str,
        decision: DecisionCreate,
        *,
        request_id: str | None = None,
    ) -> ReviewRead:
        """Approve (keep the recommendation) or override it; only the claimant may decide."""
        outcome = _final_outcome(decision)
        row = await self._claimed_by(principal, review_id)
        if row.requested_by == principal.id:
            raise Forbidden(detail="the principal who opened a review may not decide it")
        now = self._clock.now()
        values = {
            "decision": decision.action.value,
            "outcome": dict(row.recommendation) if outcome is None else outcome,
            "justification": decision.justification, "decided_by": principal.id,
            "decided_at": now,
        }  # fmt: skip
        detail = {"action": decision.action.value}
        await self._audit(row, "decide", principal.id, request_id, detail, ReviewStatus.DECIDED)
        row = await self._move(
            row, "decide", principal.id, ReviewStatus.DECIDED, values, decision.justification,
            detail,
        )  # fmt: skip
        self._metrics.reviews_decided.labels(action=decision.action.value).inc()
        read = review_read(row, now)
        await self._notify(WebhookEvent.DECIDED, read)
        return read

    async def appeal(
        self, principal: Principal, review_id: str, reason: str, *, request_id: str | None = None
    ) -> ReviewRead:
        """Reopen a decided review for the data subject; the earlier decision stays in history."""
        row = await self._load(principal.tenant_id, review_id)
        if row.status != ReviewStatus.DECIDED:
            raise Conflict(detail=f"only a decided review can be appealed, not a {row.status} one")
        now = self._clock.now()
        earlier = {
            "decision": row.decision, "outcome": row.outcome,
            "justification": row.justification, "decided_by": row.decided_by,
        }  # fmt: skip
        values = {
            "appeal_count": row.appeal_count + 1,
            "deadline_at": now + timedelta(seconds=row.window_s),
            "claimed_by": None, "claimed_at": None, "decision": None, "outcome": None,
            "justification": None, "decided_by": None, "decided_at": None,
        }  # fmt: skip
        appealed = {"appeal": row.appeal_count + 1}
        await self._audit(row, "appeal", principal.id, request_id, appealed, ReviewStatus.PENDING)
        row = await self._move(
            row, "appeal", principal.id, ReviewStatus.PENDING, values, reason, {"earlier": earlier}
        )
        self._metrics.review_appeals.inc()
        read = review_read(row, now)
        await self._notify(WebhookEvent.APPEALED, read)
        return read

    async def escalate_overdue(self, *, limit: int = 500) -> builtins.list[ReviewRead]:
        """Escalate every pending or claimed review past its deadline (a claim is dropped)."""
        now = self._clock.now()
        escalated: builtins.list[ReviewRead] = []
        due = await self._repo.overdue(now, limit=limit)
        events = [
            self._event(row, "escalate", SYSTEM_ACTOR, None, {}, ReviewStatus.ESCALATED)
            for row in due
        ]
        # All audit events first, in one batch: see _audit for why they precede the writes.
        await self._records.write(events)
        for row in due:
            values = {"claimed_by": None, "claimed_at": None}
            try:
                moved = await self._move(
                    row, "escalate", SYSTEM_ACTOR, ReviewStatus.ESCALATED, values
                )
            except Conflict:
                continue  # decided or claimed meanwhile: no longer this run's business
            self._metrics.review_escalations.inc()
            read = review_read(moved, now)
            await self._notify(WebhookEvent.ESCALATED, read)
            escalated.append(read)
        return escalated

    async def _load(self, tenant_id: str, review_id: str) -> ReviewRow:
        row = await self._repo.get(review_id)
        # Another tenant's review reads exactly like a missing one.
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(detail=f"no review {review_id!r}")
        return row

    async def _claimed_by(self, principal: Principal, review_id: str) -> ReviewRow:
        row = await self._load(principal.tenant_id, review_id)
        if row.status != ReviewStatus.CLAIMED:
            raise Conflict(detail=f"the review is {row.status}; claim it first")
        if row.claimed_by != principal.id:
            raise Conflict(detail="the review is claimed by another reviewer")
        return row

    async def _move(
        self,
        row: ReviewRow,
        action: str,
        actor: str,
        to: ReviewStatus,
        values: Mapping[str, object],
        note: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> ReviewRow:
        """Apply one transition if nobody else moved the review since it was read."""
        before = row.status
        changed = {**values, "status": to.value, "updated_at": self._clock.now()}
        if not await self._repo.update_guarded(row.id, row.version, changed):
            raise Conflict(detail="the review changed meanwhile; read it again")
        fresh = await self._repo.get(row.id)
        if fresh is None:  # pragma: no cover - deleted between two statements of one transaction
            raise NotFound(detail=f"no review {row.id!r}")
        await self._history(fresh, action, before, actor, note, dict(detail or {}))
        return fresh

    async def _history(
        self,
        row: ReviewRow,
        action: str,
        before: str | None,
        actor: str,
        note: str | None,
        detail: dict[str, object],
    ) -> None:
        await self._repo.add_event(
            {
                "review_id": row.id, "tenant_id": row.tenant_id, "action": action,
                "from_status": before, "to_status": row.status, "actor": actor, "note": note,
                "detail": detail, "occurred_at": self._clock.now(),
            }
        )  # fmt: skip

    async def _audit(
        self,
        row: ReviewRow,
        action: str,
        actor: str,
        request_id: str | None,
        detail: Mapping[str, object],
        to: ReviewStatus = ReviewStatus.PENDING,
    ) -> None:
        """Record a transition before making it.

        The record writer commits on connections of its own. Written before this unit of work
        takes any write lock, the event cannot wait on the lock held by the transaction it
        describes (SQLite has a single writer). A transition that then loses a race is answered
        409, and that refusal is audited too.
        """
        await self._records.write([self._event(row, action, actor, request_id, detail, to)])

    def _event(
        self,
        row: ReviewRow,
        action: str,
        actor: str,
        request_id: str | None,
        detail: Mapping[str, object],
        to: ReviewStatus,
    ) -> AuditEvent:
        return AuditEvent(
            event_id=new_id("evt"), occurred_at=self._clock.now(), actor=actor,
            action=f"review.{action}", resource=f"review:{row.id}", outcome=Outcome.SUCCESS,
            tenant_id=row.tenant_id, request_id=request_id, subject=row.subject,
            detail={"from": row.status, "to": to.value, "resource": row.resource, **detail},
        )  # fmt: skip

    async def _notify(self, event: WebhookEvent, review: ReviewRead) -> None:
        """Enqueue the outcome webhook in this transaction, if the tenant registered one."""
        if await self._repo.webhook(review.tenant_id) is None:
            return
        event_id = new_id("whe")
        payload = {
            "tenant_id": review.tenant_id, "review_id": review.id, "event": event.value,
            "event_id": event_id, "body": webhook_body(event_id, event, review, self._clock.now()),
        }  # fmt: skip
        await enqueue_in(
            self._session, self._clock, WEBHOOK_JOB, payload, idempotency_key=event_id,
            max_attempts=self._webhook_attempts,
        )  # fmt: skip


def _final_outcome(decision: DecisionCreate) -> dict[str, Any] | None:
    """The outcome an override sets (``None``: keep the recommendation); 422 when incomplete."""
    errors: list[FieldError] = []
    if decision.action is ReviewAction.OVERRIDE:
        if not decision.outcome:
            errors.append(
                FieldError(("body", "outcome"), "an override must give the outcome", "missing")
            )
        if not (decision.justification or "").strip():
            errors.append(
                FieldError(("body", "justification"), "an override must be justified", "missing")
            )
    elif decision.outcome is not None:
        errors.append(
            FieldError(
                ("body", "outcome"), "approve keeps the recommendation; use override", "extra"
            )
        )
    if errors:
        raise InvalidRequest(detail="the decision is incomplete", errors=errors)
    return decision.outcome
