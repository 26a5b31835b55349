"""Shapes of the review domain: its states, what the API reads and what it accepts.

Request bodies are closed (``extra="forbid"``): a client cannot set fields it does not own,
such as a review's status or its claimant, by adding them to a body.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl


class ReviewStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    DECIDED = "decided"
    ESCALATED = "escalated"


class ReviewAction(StrEnum):
    """What a reviewer decides: keep the model's recommendation, or replace it."""

    APPROVE = "approve"
    OVERRIDE = "override"


class WebhookEvent(StrEnum):
    DECIDED = "review.decided"
    ESCALATED = "review.escalated"
    APPEALED = "review.appealed"


OPEN_STATUSES = frozenset({ReviewStatus.PENDING, ReviewStatus.CLAIMED, ReviewStatus.ESCALATED})
"""States in which a review still awaits a decision (and can be overdue)."""
CLAIMABLE = frozenset({ReviewStatus.PENDING, ReviewStatus.ESCALATED})


class ReviewRead(BaseModel):
    """A review as its tenant sees it; ``status`` and ``outcome`` answer a poll."""

    id: str
    tenant_id: str
    subject: str | None
    resource: str
    requested_by: str
    recommendation: dict[str, Any]
    inputs: dict[str, Any]
    explanation: dict[str, Any] | None
    reason: str
    status: ReviewStatus
    deadline_at: datetime
    overdue: bool
    claimed_by: str | None
    claimed_at: datetime | None
    decision: ReviewAction | None
    outcome: dict[str, Any] | None
    justification: str | None
    decided_by: str | None
    decided_at: datetime | None
    appeal_count: int
    created_at: datetime
    updated_at: datetime


class ReviewEventRead(BaseModel):
    """One entry of a review's history."""

    action: str
    from_status: ReviewStatus | None
    to_status: ReviewStatus
    actor: str
    note: str | None
    detail: dict[str, Any]
    occurred_at: datetime


class ReviewDetail(ReviewRead):
    """A review with its full history."""

    history: list[ReviewEventRead]


class ReviewPage(BaseModel):
    """One page of reviews; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[ReviewRead]
    next_cursor: str | None


class ReviewFilters(BaseModel):
    """What a list of reviews may be narrowed to."""

    status: ReviewStatus | None = None
    subject: str | None = None
    overdue: bool | None = None


class DecisionCreate(BaseModel):
    """A reviewer's decision. An override must carry the new outcome and a justification."""

    model_config = ConfigDict(extra="forbid")

    action: ReviewAction
    outcome: dict[str, Any] | None = None
    justification: str | None = Field(default=None, max_length=4000)


class AppealCreate(BaseModel):
    """An appeal on behalf of the data subject."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=4000)


class WebhookCreate(BaseModel):
    """The URL outcomes are posted to; it must pass the outbound allow-list."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrl


class WebhookRead(BaseModel):
    """A registered webhook. ``secret`` is shown once, when the webhook is registered."""

    url: str
    secret: str | None = None
    signature_header: Literal["Ombud-Signature"] = "Ombud-Signature"
    created_at: datetime
