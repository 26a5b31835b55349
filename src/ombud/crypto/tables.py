"""Tables owned by key management."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ombud.storage.base import Base, UTCDateTime


class DataKeyRow(Base):
    """One data key per (scope, owner), stored only wrapped under a KEK version.

    Destroying the key nulls ``wrapped_key`` and stamps ``destroyed_at``; the row stays as a
    tombstone so that decrypting says "destroyed" rather than "unknown", and so that the same
    owner cannot silently get a fresh key.
    """

    __tablename__ = "data_keys"
    __table_args__ = (UniqueConstraint("scope", "owner"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    scope: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(200))
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
