"""All SQL of the registry domain."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.registry.schemas import VersionStatus
from ombud.registry.tables import ModelVersionRow, RegisteredModelRow


class RegistryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def model_by_name(self, name: str) -> RegisteredModelRow | None:
        return await self._session.scalar(
            select(RegisteredModelRow).where(RegisteredModelRow.name == name)
        )

    def add(self, row: RegisteredModelRow | ModelVersionRow) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        await self._session.flush()

    async def next_version_number(self, model_id: str) -> int:
        current = await self._session.scalar(
            select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model_id)
        )
        return (current or 0) + 1

    async def latest_with_status(
        self, name: str, status: VersionStatus
    ) -> tuple[RegisteredModelRow, ModelVersionRow] | None:
        stmt = (
            select(RegisteredModelRow, ModelVersionRow)
            .join(ModelVersionRow, ModelVersionRow.model_id == RegisteredModelRow.id)
            .where(RegisteredModelRow.name == name, ModelVersionRow.status == status.value)
            .order_by(ModelVersionRow.version.desc())
            .limit(1)
        )
        row = (await self._session.execute(stmt)).one_or_none()
        return None if row is None else (row[0], row[1])
