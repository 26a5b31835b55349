"""Tables owned by the predictions domain. Rows are written only through the record writer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128))
    tenant_id: Mapped[str] = mapped_column(String(64))
    principal_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str | None] = mapped_column(String(128), index=True)
    purpose: Mapped[str | None] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONType)
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    model_version_id: Mapped[str | None] = mapped_column(String(64), default=None)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    feature_views: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    deployment_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    arm: Mapped[str | None] = mapped_column(String(16), default=None)
