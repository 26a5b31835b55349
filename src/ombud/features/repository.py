"""All SQL of the feature store: appending events and reading a slice of them back."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.features.tables import FeatureEventRow


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the point-in-time computation needs it."""

    entity_id: str
    event_ts: datetime
    payload: dict[str, Any]


class FeatureEventRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def known_event_ids(self, tenant_id: str, event_ids: Collection[str]) -> set[str]:
        """Which of ``event_ids`` the tenant has stored already."""
        if not event_ids:
            return set()
        e = FeatureEventRow
        stmt = select(e.event_id).where(e.tenant_id == tenant_id, e.event_id.in_(event_ids))
        return {str(i) for i in await self._session.scalars(stmt)}

    async def append(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert ``rows`` (column values), skipping any whose event id the tenant has (a
        concurrent sender of the same id loses quietly, not with an error); how many were
        inserted."""
        if not rows:
            return 0
        insert = self._insert().values(list(rows)).on_conflict_do_nothing()
        inserted = await self._session.execute(insert.returning(FeatureEventRow.id))
        return len(inserted.all())

    def _insert(self) -> postgresql.Insert | sqlite.Insert:
        # ``ON CONFLICT DO NOTHING`` is spelt the same on both backends, but lives in each
        # dialect's own ``insert``.
        if self._session.get_bind().dialect.name == "postgresql":
            return postgresql.insert(FeatureEventRow)
        return sqlite.insert(FeatureEventRow)

    async def slice(
        self,
        tenant_id: str,
        event_type: str,
        entity_ids: Collection[str],
        *,
        after: datetime | None,
        until: datetime,
        limit: int,
    ) -> list[StoredEvent]:
        """The tenant's ``event_type`` events of ``entity_ids`` with ``after < event_ts <=
        until`` (no lower bound when ``after`` is ``None``), at most ``limit``, ordered by
        entity, event time and then arrival (the later arrival of two at the same time last).
        """
        e = FeatureEventRow
        clauses = [
            e.tenant_id == tenant_id,
            e.event_type == event_type,
            e.entity_id.in_(entity_ids),
            e.event_ts <= until,
        ]
        if after is not None:
            clauses.append(e.event_ts > after)
        stmt = (
            select(e.entity_id, e.event_ts, e.payload)
            .where(*clauses)
            .order_by(e.entity_id, e.event_ts, e.ingested_ts, e.id)
            .limit(limit)
        )
        return [StoredEvent(*row) for row in await self._session.execute(stmt)]
