"""All SQL of the registry domain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.registry.schemas import VersionStatus
from ombud.registry.tables import ModelVersionEventRow, ModelVersionRow, RegisteredModelRow


class RegistryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def model_by_name(self, name: str) -> RegisteredModelRow | None:
        return await self._session.scalar(
            select(RegisteredModelRow).where(RegisteredModelRow.name == name)
        )

    async def models(self) -> Sequence[RegisteredModelRow]:
        stmt = select(RegisteredModelRow).order_by(RegisteredModelRow.name)
        return (await self._session.scalars(stmt)).all()

    def add(self, row: RegisteredModelRow | ModelVersionRow | ModelVersionEventRow) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        await self._session.flush()

    async def next_version_number(self, model_id: str) -> int:
        current = await self._session.scalar(
            select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model_id)
        )
        return (current or 0) + 1

    async def version_summary(
        self, model_ids: Sequence[str]
    ) -> dict[str, tuple[int | None, int | None]]:
        """Per model id: (newest approved version, newest version)."""
        approved = func.max(ModelVersionRow.version).filter(
            ModelVersionRow.status == VersionStatus.APPROVED.value
        )
        stmt = (
            select(ModelVersionRow.model_id, approved, func.max(ModelVersionRow.version))
            .where(ModelVersionRow.model_id.in_(model_ids))
            .group_by(ModelVersionRow.model_id)
        )
        return {row[0]: (row[1], row[2]) for row in (await self._session.execute(stmt)).all()}

    async def versions(self, model_id: str) -> Sequence[ModelVersionRow]:
        stmt = (
            select(ModelVersionRow)
            .where(ModelVersionRow.model_id == model_id)
            .order_by(ModelVersionRow.version)
        )
        return (await self._session.scalars(stmt)).all()

    async def version(self, model_id: str, number: int) -> ModelVersionRow | None:
        return await self._session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model_id, ModelVersionRow.version == number
            )
        )

    async def version_by_id(
        self, version_id: str
    ) -> tuple[RegisteredModelRow, ModelVersionRow] | None:
        """A version and its model by the version's id; None if no such version exists."""
        stmt = (
            select(RegisteredModelRow, ModelVersionRow)
            .join(ModelVersionRow, ModelVersionRow.model_id == RegisteredModelRow.id)
            .where(ModelVersionRow.id == version_id)
        )
        row = (await self._session.execute(stmt)).one_or_none()
        return None if row is None else (row[0], row[1])

    async def with_status(self, model_id: str, status: VersionStatus) -> Sequence[ModelVersionRow]:
        stmt = select(ModelVersionRow).where(
            ModelVersionRow.model_id == model_id, ModelVersionRow.status == status.value
        )
        return (await self._session.scalars(stmt)).all()

    async def move(
        self, version_id: str, expected: VersionStatus, values: Mapping[str, object]
    ) -> bool:
        """Update a version only if it still has the ``expected`` status; False otherwise."""
        result = await self._session.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.id == version_id, ModelVersionRow.status == expected.value)
            .values(**values)
            .execution_options(synchronize_session="fetch")
        )
        return bool(getattr(result, "rowcount", 0))

    async def refresh(self, row: ModelVersionRow) -> None:
        await self._session.refresh(row)

    async def events(self, version_id: str) -> Sequence[ModelVersionEventRow]:
        stmt = (
            select(ModelVersionEventRow)
            .where(ModelVersionEventRow.version_id == version_id)
            .order_by(ModelVersionEventRow.seq)
        )
        return (await self._session.scalars(stmt)).all()

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
