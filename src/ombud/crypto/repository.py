"""All SQL of key management."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.crypto.provider import WrappedKey
from ombud.crypto.tables import DataKeyRow


class DataKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def by_id(self, key_id: str) -> DataKeyRow | None:
        return await self._session.get(DataKeyRow, key_id)

    async def by_owner(self, scope: str, owner: str) -> DataKeyRow | None:
        return await self._session.scalar(
            select(DataKeyRow).where(DataKeyRow.scope == scope, DataKeyRow.owner == owner)
        )

    async def insert_if_absent(
        self, *, key_id: str, scope: str, owner: str, wrapped: WrappedKey, at: datetime
    ) -> bool:
        """Insert a data key unless (scope, owner) has one; True when this call inserted it.

        ``ON CONFLICT DO NOTHING`` makes concurrent first use safe on both backends: the loser
        waits for the winner's transaction and then inserts nothing, without an error.
        """
        values = {
            "id": key_id,
            "scope": scope,
            "owner": owner,
            "kek_version": wrapped.kek_version,
            "wrapped_key": wrapped.ciphertext,
            "created_at": at,
        }
        insert = postgresql.insert if self._dialect() == "postgresql" else sqlite.insert
        stmt = (
            insert(DataKeyRow)
            .values(values)
            .on_conflict_do_nothing(index_elements=["scope", "owner"])
        )
        result = await self._session.execute(stmt)
        return bool(getattr(result, "rowcount", 0))

    async def destroy(self, scope: str, owner: str, at: datetime) -> str | None:
        """Erase the wrapped key of (scope, owner); its id, or None when no live key matched."""
        result = await self._session.execute(
            update(DataKeyRow)
            .where(
                DataKeyRow.scope == scope,
                DataKeyRow.owner == owner,
                DataKeyRow.destroyed_at.is_(None),
            )
            .values(wrapped_key=None, destroyed_at=at)
            .returning(DataKeyRow.id)
            .execution_options(synchronize_session=False)
        )
        return result.scalar_one_or_none()

    async def live_below(
        self, kek_version: int, *, limit: int, exclude: Collection[str] = ()
    ) -> list[DataKeyRow]:
        """Live keys wrapped under a KEK version older than ``kek_version``, by id."""
        stmt = (
            select(DataKeyRow)
            .where(DataKeyRow.kek_version < kek_version, DataKeyRow.destroyed_at.is_(None))
            .order_by(DataKeyRow.id)
            .limit(limit)
        )
        if exclude:
            stmt = stmt.where(DataKeyRow.id.not_in(exclude))
        return list(await self._session.scalars(stmt))

    async def rewrap(self, key_id: str, *, from_version: int, wrapped: WrappedKey) -> bool:
        """Store a key re-wrapped under a new KEK version; False if it changed meanwhile.

        The conditions make a concurrent destroy win: a destroyed key is never written back.
        """
        result = await self._session.execute(
            update(DataKeyRow)
            .where(
                DataKeyRow.id == key_id,
                DataKeyRow.kek_version == from_version,
                DataKeyRow.destroyed_at.is_(None),
            )
            .values(kek_version=wrapped.kek_version, wrapped_key=wrapped.ciphertext)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def count_live_by_version(self) -> dict[int, int]:
        """How many live data keys each KEK version wraps."""
        stmt = (
            select(DataKeyRow.kek_version, func.count())
            .where(DataKeyRow.destroyed_at.is_(None))
            .group_by(DataKeyRow.kek_version)
        )
        return {int(v): int(n) for v, n in (await self._session.execute(stmt)).all()}

    def _dialect(self) -> str:
        return self._session.get_bind().dialect.name
