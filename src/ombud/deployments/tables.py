"""Tables of the deployments domain: rollouts, their history, shadow comparisons and failures.

Like the registry these are platform-wide: a deployment routes every tenant's calls to a model.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class DeploymentRow(Base):
    """One rollout of a candidate version against a model's stable version."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_model_status", "model_id", "status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    model_name: Mapped[str] = mapped_column(String(100))
    active_model_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    """The model's id while the deployment is active, NULL once it ended: the unique constraint
    is what keeps a model to one active deployment, even between racing requests."""
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    stable_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    candidate_version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    stable_version: Mapped[int] = mapped_column(Integer)
    candidate_version: Mapped[int] = mapped_column(Integer)
    percent: Mapped[float] = mapped_column(Float)
    """Share of subjects (0-100) routed to the candidate (canary) or to arm ``b`` (A/B)."""
    weights: Mapped[dict[str, int] | None] = mapped_column(JSONType, default=None)
    guards: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(64), default=None)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    end_reason: Mapped[str | None] = mapped_column(Text, default=None)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    """Bumped by every change; an update names the revision it read (optimistic locking)."""


class DeploymentEventRow(Base):
    """The append-only history of a deployment: created, updated, promoted, rolled back, ..."""

    __tablename__ = "deployment_events"
    __table_args__ = (UniqueConstraint("deployment_id", "seq"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ShadowResultRow(Base):
    """The candidate's answer to one mirrored call of a shadow deployment, next to stable's."""

    __tablename__ = "shadow_results"
    __table_args__ = (Index("ix_shadow_results_deployment_created", "deployment_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    prediction_id: Mapped[str] = mapped_column(String(64))
    stable_score: Mapped[float] = mapped_column(Float)
    candidate_score: Mapped[float | None] = mapped_column(Float, default=None)
    error: Mapped[str | None] = mapped_column(String(64), default=None)
    """Why the candidate gave no score (``timeout``, or the exception's type name)."""
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeploymentFailureRow(Base):
    """A routed call whose model invocation failed: prediction rows hold only successes, and
    the monitor's error rate needs the failures too."""

    __tablename__ = "deployment_failures"
    __table_args__ = (
        Index("ix_deployment_failures_deployment_created", "deployment_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    arm: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
