"""All SQL of the identity domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.identity.tables import ApiKeyRow, PrincipalRow, TenantRow

KeyRecord = tuple[ApiKeyRow, PrincipalRow, TenantRow]


class IdentityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def tenant_by_slug(self, slug: str) -> TenantRow | None:
        return await self._session.scalar(select(TenantRow).where(TenantRow.slug == slug))

    async def principal_by_name(self, tenant_id: str, name: str) -> PrincipalRow | None:
        return await self._session.scalar(
            select(PrincipalRow).where(
                PrincipalRow.tenant_id == tenant_id, PrincipalRow.name == name
            )
        )

    def add(self, row: TenantRow | PrincipalRow | ApiKeyRow) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        await self._session.flush()

    async def key_by_prefix(self, prefix: str) -> KeyRecord | None:
        stmt = (
            select(ApiKeyRow, PrincipalRow, TenantRow)
            .join(PrincipalRow, PrincipalRow.id == ApiKeyRow.principal_id)
            .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
            .where(ApiKeyRow.prefix == prefix)
        )
        row = (await self._session.execute(stmt)).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    async def keys(self, tenant_slug: str | None = None) -> list[KeyRecord]:
        stmt = (
            select(ApiKeyRow, PrincipalRow, TenantRow)
            .join(PrincipalRow, PrincipalRow.id == ApiKeyRow.principal_id)
            .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
            .order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        )
        if tenant_slug is not None:
            stmt = stmt.where(TenantRow.slug == tenant_slug)
        return [(r[0], r[1], r[2]) for r in (await self._session.execute(stmt)).all()]

    async def revoke(self, prefix_or_id: str, at: datetime) -> bool:
        """Mark a key revoked; False when no live key matches."""
        result = await self._session.execute(
            update(ApiKeyRow)
            .where(
                (ApiKeyRow.prefix == prefix_or_id) | (ApiKeyRow.id == prefix_or_id),
                ApiKeyRow.revoked_at.is_(None),
            )
            .values(revoked_at=at)
        )
        return bool(getattr(result, "rowcount", 0))
