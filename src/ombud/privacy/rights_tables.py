"""The main database's privacy tables: erasure requests, the training-exclusion list and the
tenant-wide reservation of external ids.

Both live in the main database and name a subject only by a keyed hash of its id
(:func:`ombud.privacy.erasure.subject_ref`) once the erasure is done: the record of what was
erased must not itself keep the identifier it erased. While an erasure is pending its row
holds the subject id (the cascade needs it); completion clears it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime


class SubjectErasureRow(Base):
    __tablename__ = "subject_erasures"
    __table_args__ = (Index("ix_subject_erasures_tenant_ref", "tenant_id", "subject_ref"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    subject_ref: Mapped[str] = mapped_column(String(64))
    """HMAC-SHA256 of the subject id (hex), under the privacy lookup key."""
    subject_id: Mapped[str | None] = mapped_column(String(64), default=None)
    """The subject id while the cascade runs; cleared when it is done."""
    status: Mapped[str] = mapped_column(String(16))
    """``pending`` (the key is destroyed, the cascade is queued) or ``completed``."""
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """What was done: the key destroyed, and rows removed or cleared per store and table."""


class TrainingExclusionRow(Base):
    """An entity whose data must never again enter a training set (an erased subject)."""

    __tablename__ = "training_exclusions"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    entity_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    """HMAC-SHA256 of the entity id (hex), as :attr:`SubjectErasureRow.subject_ref`."""
    reason: Mapped[str] = mapped_column(String(32))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubjectExternalRefRow(Base):
    """A tenant's external id (its HMAC), reserved in the main database for one subject, so an
    external id names one subject across every region's store (each store's own unique
    constraint covers only that store)."""

    __tablename__ = "subject_external_refs"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    external_ref: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
