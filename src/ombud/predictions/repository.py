"""All SQL of the predictions domain."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

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
        if row is None:
            return None
        return PredictionRecord(
            **{f.name: getattr(row, f.name) for f in dataclasses.fields(PredictionRecord)}
        )

    async def count(self) -> int:
        return int(await self._session.scalar(select(func.count()).select_from(PredictionRow)) or 0)
