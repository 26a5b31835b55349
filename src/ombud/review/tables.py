"""Tables owned by the review domain: the queue, its append-only history, tenants' webhooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class ReviewRow(Base):
    """One item awaiting (or having had) a human decision.

    ``version`` grows with every transition; updates are guarded by it, so two reviewers acting
    at once cannot both win.
    """

    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_reviews_status_deadline", "status", "deadline_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(128), index=True)
    resource: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    recommendation: Mapped[dict[str, Any]] = mapped_column(JSONType)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    explanation: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    reason: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    window_s: Mapped[int] = mapped_column(Integer)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    justification: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    appeal_count: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewEventRow(Base):
    """One transition of one review. Rows are only ever inserted."""

    __tablename__ = "review_events"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    review_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("reviews.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReviewWebhookRow(Base):
    """A tenant's outcome webhook. The signing secret is stored only encrypted."""

    __tablename__ = "review_webhooks"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
