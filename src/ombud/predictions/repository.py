"""All SQL of the predictions domain."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.predictions.records import PredictionRecord
from ombud.predictions.tables import PredictionRow


class PredictionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, records: Sequence[PredictionRecord]) -> None:
        if records:
            await self._session.execute(
                insert(PredictionRow), [dataclasses.asdict(r) for r in records]
            )

    async def get(self, prediction_id: str) -> PredictionRecord | None:
        row = await self._session.get(PredictionRow, prediction_id)
        return None if row is None else _record(row)

    async def between(
        self,
        tenant_id: str,
        since: datetime,
        until: datetime,
        *,
        model: str | None = None,
        limit: int,
    ) -> list[PredictionRecord]:
        """A tenant's predictions created in ``[since, until)``, oldest first."""
        stmt = (
            select(PredictionRow)
            .where(
                PredictionRow.tenant_id == tenant_id,
                PredictionRow.created_at >= since,
                PredictionRow.created_at < until,
            )
            .order_by(PredictionRow.created_at, PredictionRow.id)
            .limit(limit)
        )
        if model is not None:
            stmt = stmt.where(PredictionRow.model_name == model)
        return [_record(row) for row in await self._session.scalars(stmt)]

    async def count(self) -> int:
        return int(await self._session.scalar(select(func.count()).select_from(PredictionRow)) or 0)


def _record(row: PredictionRow) -> PredictionRecord:
    return PredictionRecord(
        **{f.name: getattr(row, f.name) for f in dataclasses.fields(PredictionRecord)}
    )
