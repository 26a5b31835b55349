"""The table of the outcomes domain: one row per labelled prediction.

The prediction's model, version, arm, score and threshold are copied onto the row when the
outcome is recorded: KPI queries then read one narrow table, never the predictions' JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class PredictionOutcomeRow(Base):
    __tablename__ = "prediction_outcomes"
    __table_args__ = (
        Index("ix_prediction_outcomes_model_predicted", "model_name", "predicted_at"),
        Index("ix_prediction_outcomes_tenant_model", "tenant_id", "model_name", "predicted_at"),
    )

    prediction_id: Mapped[str] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str | None] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    predicted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """The prediction's ``created_at``: KPI windows select on it."""
    label: Mapped[int] = mapped_column(Integer)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str | None] = mapped_column(String(100))
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revision: Mapped[int] = mapped_column(Integer)
    """1 when first recorded, +1 per correction: a correction applies only to the revision read."""
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    """The values each correction replaced, oldest first, with who corrected them and why."""
