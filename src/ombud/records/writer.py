"""The record writer: the one way prediction records and audit events reach the database.

``write`` returns only after the records are durably committed, so a response is never sent for
a call whose records could still be lost. Records are written in their own transaction, apart
from the request's unit of work, so a denial's audit event survives the request's rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.events import AuditEvent
from ombud.audit.repository import AuditRepository
from ombud.core.errors import RecordsUnavailable
from ombud.predictions.records import PredictionRecord
from ombud.predictions.repository import PredictionRepository

log = logging.getLogger(__name__)

Record = AuditEvent | PredictionRecord


class RecordWriter(Protocol):
    async def write(self, records: Sequence[Record]) -> None:
        """Persist ``records`` atomically; return once they are committed."""
        ...


class DatabaseRecordWriter:
    """Writes each call's records in one transaction of their own."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def write(self, records: Sequence[Record]) -> None:
        predictions = [r for r in records if isinstance(r, PredictionRecord)]
        events = [r for r in records if isinstance(r, AuditEvent)]
        try:
            async with self._sessions.begin() as session:
                # Predictions first: an audit event may reference the prediction it records.
                await PredictionRepository(session).add(predictions)
                await AuditRepository(session).append(events)
        except (SQLAlchemyError, OSError) as exc:
            log.error("could not write %d records: %s", len(records), exc)
            raise RecordsUnavailable(
                detail="records could not be written; nothing was answered"
            ) from exc
