"""All SQL of the promotion gate: golden datasets, promotion policies, reports."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.registry.promotion_tables import GoldenDatasetRow, PromotionPolicyRow, PromotionReportRow
from ombud.registry.schemas import VersionStatus
from ombud.registry.tables import ModelVersionRow


class PromotionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def golden(self, model_id: str) -> GoldenDatasetRow | None:
        return await self._session.get(GoldenDatasetRow, model_id)

    async def policy(self, model_id: str) -> PromotionPolicyRow | None:
        return await self._session.get(PromotionPolicyRow, model_id)

    async def save(self, row: GoldenDatasetRow | PromotionPolicyRow | PromotionReportRow) -> None:
        """Insert ``row``, or replace the row with its primary key (golden sets, policies)."""
        await self._session.merge(row)
        await self._session.flush()

    async def latest_report(self, version_id: str) -> PromotionReportRow | None:
        stmt = (
            select(PromotionReportRow)
            .where(PromotionReportRow.version_id == version_id)
            .order_by(PromotionReportRow.created_at.desc(), PromotionReportRow.id.desc())
            .limit(1)
        )
        return await self._session.scalar(stmt)

    async def report(self, report_id: str) -> PromotionReportRow | None:
        return await self._session.get(PromotionReportRow, report_id)

    async def newest_version(self, model_id: str) -> ModelVersionRow | None:
        stmt = (
            select(ModelVersionRow)
            .where(ModelVersionRow.model_id == model_id)
            .order_by(ModelVersionRow.version.desc())
            .limit(1)
        )
        return await self._session.scalar(stmt)

    async def version(self, version_id: str) -> ModelVersionRow | None:
        return await self._session.get(ModelVersionRow, version_id)

    async def approved_versions(self, model_id: str) -> Sequence[ModelVersionRow]:
        """The model's approved versions, newest first."""
        stmt = (
            select(ModelVersionRow)
            .where(
                ModelVersionRow.model_id == model_id,
                ModelVersionRow.status == VersionStatus.APPROVED.value,
            )
            .order_by(ModelVersionRow.version.desc())
        )
        return (await self._session.scalars(stmt)).all()
