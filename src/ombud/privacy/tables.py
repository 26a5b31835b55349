"""The privacy tables: subjects, their vault, and the append-only histories of their consents,
preferences and of who read their data.

Only ``subject_vault`` holds identifying data, and only as an envelope sealed under the
subject's own data key; every other table names a subject by its pseudonymous id. Consents and
preferences are never updated in place: the current state is the newest row (``seq`` breaks
ties between rows recorded at the same instant).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime

_SeqType = BigInteger().with_variant(Integer(), "sqlite")
_SUBJECT_FK = "data_subjects.id"


class DataSubjectRow(Base):
    __tablename__ = "data_subjects"
    # One subject per external id and tenant; the column holds an HMAC, never the id itself.
    __table_args__ = (UniqueConstraint("tenant_id", "external_ref"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    region: Mapped[str] = mapped_column(String(16))
    external_ref: Mapped[str | None] = mapped_column(String(64), default=None)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubjectVaultRow(Base):
    """A subject's identifying data, sealed under ``("subject", <id>)`` with the row's table
    and subject id as associated data."""

    __tablename__ = "subject_vault"

    subject_id: Mapped[str] = mapped_column(
        ForeignKey(_SUBJECT_FK, ondelete="CASCADE"), primary_key=True
    )
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubjectConsentRow(Base):
    __tablename__ = "subject_consents"
    __table_args__ = (Index("ix_subject_consents_subject_purpose", "subject_id", "purpose"),)

    seq: Mapped[int] = mapped_column(_SeqType, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey(_SUBJECT_FK, ondelete="CASCADE"))
    tenant_id: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When the subject gave or withdrew consent (may precede ``created_at``)."""
    recorded_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubjectPreferenceRow(Base):
    __tablename__ = "subject_preferences"

    seq: Mapped[int] = mapped_column(_SeqType, primary_key=True, autoincrement=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey(_SUBJECT_FK, ondelete="CASCADE"), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    personalization_opt_out: Mapped[bool] = mapped_column(Boolean)
    automated_decision_opt_out: Mapped[bool] = mapped_column(Boolean)
    recorded_by: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubjectAccessRow(Base):
    """One granted read of a subject's data: who, when, for what purpose, which categories."""

    __tablename__ = "subject_access_log"

    seq: Mapped[int] = mapped_column(_SeqType, primary_key=True, autoincrement=True)
    access_id: Mapped[str] = mapped_column(String(64), unique=True)
    # No foreign key: the history of who read a subject's data outlives the subject's rows.
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    categories: Mapped[list[str]] = mapped_column(JSONType)
    request_id: Mapped[str | None] = mapped_column(String(128), default=None)
    accessed_at: Mapped[datetime] = mapped_column(UTCDateTime())
