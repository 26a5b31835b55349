"""The feature flags table.

Flags are platform-wide: one ``ai.llm.chat`` flag governs every tenant, and tenants differ only
through its per-tenant overrides, so no row here belongs to a tenant.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class FeatureFlagRow(Base):
    __tablename__ = "feature_flags"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean)
    variants: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    default_variant: Mapped[str | None] = mapped_column(String(64), default=None)
    tenant_overrides: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    rollout_percent: Mapped[float | None] = mapped_column(Float, default=None)
    rollout_variant: Mapped[str | None] = mapped_column(String(64), default=None)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
