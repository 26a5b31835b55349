"""Tables owned by the policy engine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class PolicyDecisionRow(Base):
    """One policy evaluation: which bundle decided what, on which input (by digest), how fast.

    The input itself is not stored (it may hold personal data); its SHA-256 lets a replayed input
    be matched to its decision.
    """

    __tablename__ = "policy_decisions"
    __table_args__ = (
        Index("ix_policy_decisions_decided_at", "decided_at"),
        Index("ix_policy_decisions_bundle_version", "bundle_version"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    bundle_version: Mapped[str] = mapped_column(String(64))
    entrypoint: Mapped[str] = mapped_column(String(200))
    input_digest: Mapped[str] = mapped_column(String(64))
    allow: Mapped[bool] = mapped_column(Boolean)
    review: Mapped[bool] = mapped_column(Boolean)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)
    latency_us: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
