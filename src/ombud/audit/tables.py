"""Tables owned by the audit domain. Append-only: rows are written only by the record writer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, JSONType, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
_SeqType = BigInteger().with_variant(Integer(), "sqlite")


class AuditEventRow(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_tenant_occurred", "tenant_id", "occurred_at"),)

    seq: Mapped[int] = mapped_column(_SeqType, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    request_id: Mapped[str | None] = mapped_column(String(128))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(128), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType)
    prev_hash: Mapped[str] = mapped_column(String(64))
    """Hex SHA-256 of the event before this one (``ombud.audit.chain.GENESIS`` for the first)."""
    hash: Mapped[str] = mapped_column(String(64))
    """``SHA-256(prev_hash || canonical_bytes(seq, event))``, see ``ombud.audit.chain``."""


class AuditChainHeadRow(Base):
    """The one row naming the chain's last event. Writers lock it to extend the chain."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditCheckpointRow(Base):
    """A signature over the chain head at a point in time."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, index=True)
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))


class AuditSigningKeyRow(Base):
    """A checkpoint signing key: the public half in clear, the private half encrypted."""

    __tablename__ = "audit_signing_keys"

    key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64))
    """Hex of the raw 32-byte Ed25519 public key."""
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    """The raw private key, encrypted by the key manager (scope ``system``)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
