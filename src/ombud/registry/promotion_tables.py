"""Tables of the promotion gate: each model's golden dataset and bar, and every gate report.

Like the rest of the registry these are platform-wide (no tenant id). The golden rows
themselves are not in the database: they are a content-addressed artifact, and the row here
references it by URI and digest, so a report names exactly the data it was computed on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class GoldenDatasetRow(Base):
    """The golden dataset a model's candidates are judged on; one per model, replaced on PUT."""

    __tablename__ = "golden_datasets"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    row_count: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromotionPolicyRow(Base):
    """The thresholds a model's candidates must meet; absent means the defaults apply."""

    __tablename__ = "promotion_policies"

    model_id: Mapped[str] = mapped_column(
        ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True
    )
    max_metric_drop: Mapped[dict[str, Any]] = mapped_column(JSONType)
    min_metrics: Mapped[dict[str, Any]] = mapped_column(JSONType)
    max_score_change: Mapped[float | None] = mapped_column(Float, default=None)
    max_decision_change_fraction: Mapped[float | None] = mapped_column(Float, default=None)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromotionReportRow(Base):
    """One evaluation of a candidate version against its baseline; rows are only appended."""

    __tablename__ = "promotion_reports"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    baseline_version_id: Mapped[str | None] = mapped_column(String(64), default=None)
    golden_sha256: Mapped[str] = mapped_column(String(64))
    passed: Mapped[bool] = mapped_column(Boolean)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)
    """The full report as the API returns it (metrics, reasons, score changes, policy)."""
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
