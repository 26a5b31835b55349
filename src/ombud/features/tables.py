"""The offline store: every ingested event, as it arrived, in the caller's tenant.

Events are appended and never updated: the point-in-time retrieval of training sets reads
them by (tenant, type, entity, event time), the index below.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class FeatureEventRow(Base):
    __tablename__ = "feature_events"
    __table_args__ = (
        Index("ix_feature_events_lookup", "tenant_id", "event_type", "entity_id", "event_ts"),
        UniqueConstraint("tenant_id", "event_id", name="uq_feature_events_event_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(100))
    entity_id: Mapped[str] = mapped_column(String(200))
    event_ts: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the event happened (the producer's clock): point-in-time joins select on it."""
    ingested_ts: Mapped[datetime] = mapped_column(UTCDateTime())
    """When ombud stored it."""
    event_id: Mapped[str | None] = mapped_column(String(200))
    """The producer's id, unique per tenant: the same id sent again is not stored again."""
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)


class OnlineFeatureRow(Base):
    """The embedded online store: each entity's latest materialized features, one row per
    (tenant, view, entity), replaced by every materialization run."""

    __tablename__ = "online_features"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    view_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    feature_values: Mapped[dict[str, Any]] = mapped_column(JSONType)
    event_ts: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """The time of the latest event the values were computed from (none: no events yet)."""
    materialized_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the values were computed (as of that time); staleness is measured from it."""
