"""All SQL of the flags domain."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.flags.tables import FeatureFlagRow


class FlagRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def all(self) -> Sequence[FeatureFlagRow]:
        stmt = select(FeatureFlagRow).order_by(FeatureFlagRow.key)
        return (await self._session.scalars(stmt)).all()

    async def get(self, key: str) -> FeatureFlagRow | None:
        return await self._session.get(FeatureFlagRow, key)

    def add(self, row: FeatureFlagRow) -> None:
        self._session.add(row)

    async def delete(self, key: str) -> bool:
        """Delete ``key``; whether there was such a flag."""
        result = await self._session.execute(
            delete(FeatureFlagRow).where(FeatureFlagRow.key == key)
        )
        return bool(getattr(result, "rowcount", 0))

    async def flush(self) -> None:
        await self._session.flush()
