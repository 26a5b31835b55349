"""Conversions between rows, API shapes, cursors and webhook bodies. No I/O."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from ombud.core.errors import InvalidRequest
from ombud.review.repository import Cursor
from ombud.review.schemas import (
    OPEN_STATUSES,
    ReviewAction,
    ReviewEventRead,
    ReviewRead,
    ReviewStatus,
    WebhookEvent,
)
from ombud.review.tables import ReviewEventRow, ReviewRow


def review_read(row: ReviewRow, now: datetime) -> ReviewRead:
    """The API view of ``row``; ``overdue`` is judged at ``now``."""
    status = ReviewStatus(row.status)
    return ReviewRead(
        id=row.id, tenant_id=row.tenant_id, subject=row.subject, resource=row.resource,
        requested_by=row.requested_by, recommendation=row.recommendation, inputs=row.inputs,
        explanation=row.explanation, reason=row.reason, status=status,
        deadline_at=row.deadline_at, overdue=status in OPEN_STATUSES and row.deadline_at < now,
        claimed_by=row.claimed_by, claimed_at=row.claimed_at,
        decision=ReviewAction(row.decision) if row.decision else None, outcome=row.outcome,
        justification=row.justification, decided_by=row.decided_by, decided_at=row.decided_at,
        appeal_count=row.appeal_count, created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


def event_read(row: ReviewEventRow) -> ReviewEventRead:
    return ReviewEventRead(
        action=row.action,
        from_status=ReviewStatus(row.from_status) if row.from_status else None,
        to_status=ReviewStatus(row.to_status),
        actor=row.actor,
        note=row.note,
        detail=row.detail,
        occurred_at=row.occurred_at,
    )


def encode_cursor(row: ReviewRow) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Cursor:
    """The position a cursor names; a tampered or foreign cursor is a 422, not a 500."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, review_id = json.loads(raw)
        return datetime.fromisoformat(created), str(review_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidRequest(detail="cursor is not one this API returned") from exc


def webhook_body(
    event_id: str, event: WebhookEvent, review: ReviewRead, now: datetime
) -> dict[str, object]:
    """What a receiver gets: the event and the review's decision state, not its inputs.

    ``id`` is stable across redeliveries, so receivers can drop duplicates (delivery is at
    least once).
    """
    return {
        "id": event_id,
        "type": event.value,
        "created_at": now.isoformat(),
        "data": {
            "review_id": review.id,
            "status": review.status.value,
            "resource": review.resource,
            "subject": review.subject,
            "recommendation": review.recommendation,
            "decision": review.decision.value if review.decision else None,
            "outcome": review.outcome,
            "justification": review.justification,
            "decided_by": review.decided_by,
            "decided_at": review.decided_at.isoformat() if review.decided_at else None,
            "appeal_count": review.appeal_count,
            "deadline_at": review.deadline_at.isoformat(),
        },
    }
