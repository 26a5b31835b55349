"""The entry the request path uses to send a call to human review.

The request path has no unit of work of its own, so :meth:`ReviewOpener.open_for_call` runs one
short transaction: the review exists (and is audited) before the caller answers 202 with its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.core.clock import Clock
from ombud.observability.metrics import Metrics
from ombud.records.writer import RecordWriter
from ombud.review.service import DEFAULT_DEADLINE, ReviewService


class ReviewOpener:
    """Opens reviews in transactions of its own.

    Args:
        sessions: Where reviews are stored.
        clock: Time for the deadline.
        records: The audit record writer.
        metrics: Counts opened reviews.
        default_deadline: The review window when the caller names none.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        records: RecordWriter,
        metrics: Metrics,
        *,
        default_deadline: timedelta = DEFAULT_DEADLINE,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._records = records
        self._metrics = metrics
        self._default_deadline = default_deadline

    async def open_for_call(
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
        deadline: timedelta | None = None,
        request_id: str | None = None,
    ) -> str:
        """Create a pending review for a call and return its id (``rev_…``), once committed.

        Args:
            tenant_id: The call's tenant (``call.principal.tenant_id``).
            requested_by: The calling principal's id; that principal may not decide the review.
            subject: The pseudonymous subject id (``X-Ombud-Subject``), if the call has one.
            resource: What is reviewed, e.g. ``prediction:pred_…`` or ``credit-risk@3``.
            recommendation: The model's answer, e.g. ``{"score", "decision", "threshold"}``.
            inputs: What reviewers may see; pseudonymized, without direct identifiers.
            reason: Why the call needs a human (a policy rule, a guard finding).
            explanation: Optional feature attributions or other reasons behind the answer.
            deadline: How long reviewers have before it escalates (default 24 hours).
            request_id: The call's request id, linking the review to its audit trail.
        """
        async with self._sessions.begin() as session:
            service = ReviewService(session, self._clock, self._records, self._metrics)
            review = await service.open(
                tenant_id=tenant_id, requested_by=requested_by, subject=subject,
                resource=resource, recommendation=recommendation, inputs=inputs, reason=reason,
                explanation=explanation, deadline=deadline or self._default_deadline,
                request_id=request_id,
            )  # fmt: skip
        return review.id
