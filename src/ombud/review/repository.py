"""All SQL of the review domain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.review.schemas import OPEN_STATUSES, ReviewFilters, ReviewStatus
from ombud.review.tables import ReviewEventRow, ReviewRow, ReviewWebhookRow

Cursor = tuple[datetime, str]
"""Where a page ends: the last item's ``(created_at, id)``."""


class ReviewRepository:
    """Reviews, their history and tenants' webhooks. Never commits."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, row: ReviewRow) -> None:
        self._session.add(row)
        await self._session.flush()

    async def get(self, review_id: str) -> ReviewRow | None:
        return await self._session.get(ReviewRow, review_id, populate_existing=True)

    async def update_guarded(
        self, review_id: str, version: int, values: Mapping[str, object]
    ) -> bool:
        """Apply ``values`` if the row is still at ``version``; bump the version.

        Returns:
            False when another transition got there first.
        """
        result = await self._session.execute(
            update(ReviewRow)
            .where(ReviewRow.id == review_id, ReviewRow.version == version)
            .values(**values, version=version + 1)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def page(
        self,
        tenant_id: str,
        filters: ReviewFilters,
        *,
        now: datetime,
        after: Cursor | None,
        limit: int,
    ) -> list[ReviewRow]:
        """Oldest first (the order a queue is worked in), ``limit`` rows after ``after``."""
        query = select(ReviewRow).where(ReviewRow.tenant_id == tenant_id)
        if filters.status is not None:
            query = query.where(ReviewRow.status == filters.status.value)
        if filters.subject is not None:
            query = query.where(ReviewRow.subject == filters.subject)
        if filters.overdue is not None:
            overdue = and_(
                ReviewRow.status.in_([s.value for s in OPEN_STATUSES]), ReviewRow.deadline_at < now
            )
            query = query.where(overdue if filters.overdue else ~overdue)
        if after is not None:
            created, last_id = after
            query = query.where(
                or_(
                    ReviewRow.created_at > created,
                    and_(ReviewRow.created_at == created, ReviewRow.id > last_id),
                )
            )
        query = query.order_by(ReviewRow.created_at, ReviewRow.id).limit(limit)
        return list(await self._session.scalars(query))

    async def overdue(self, now: datetime, *, limit: int) -> list[ReviewRow]:
        """Undecided, unescalated reviews whose deadline has passed, across tenants."""
        statuses = [ReviewStatus.PENDING.value, ReviewStatus.CLAIMED.value]
        rows = await self._session.scalars(
            select(ReviewRow)
            .where(ReviewRow.status.in_(statuses), ReviewRow.deadline_at <= now)
            .order_by(ReviewRow.deadline_at)
            .limit(limit)
        )
        return list(rows)

    async def add_event(self, event: Mapping[str, object]) -> None:
        await self._session.execute(insert(ReviewEventRow), [dict(event)])

    async def history(self, review_id: str) -> Sequence[ReviewEventRow]:
        rows = await self._session.scalars(
            select(ReviewEventRow)
            .where(ReviewEventRow.review_id == review_id)
            .order_by(ReviewEventRow.seq)
        )
        return list(rows)

    async def webhook(self, tenant_id: str) -> ReviewWebhookRow | None:
        return await self._session.get(ReviewWebhookRow, tenant_id, populate_existing=True)

    async def put_webhook(self, tenant_id: str, url: str, ciphertext: bytes, now: datetime) -> None:
        """Register or replace the tenant's webhook (a new URL always comes with a new secret)."""
        existing = await self.webhook(tenant_id)
        if existing is None:
            self._session.add(
                ReviewWebhookRow(
                    tenant_id=tenant_id,
                    url=url,
                    secret_ciphertext=ciphertext,
                    created_at=now,
                    updated_at=now,
                )  # fmt: skip
            )
        else:
            existing.url, existing.secret_ciphertext, existing.updated_at = url, ciphertext, now
        await self._session.flush()

    async def delete_webhook(self, tenant_id: str) -> bool:
        result = await self._session.execute(
            delete(ReviewWebhookRow).where(ReviewWebhookRow.tenant_id == tenant_id)
        )
        return bool(getattr(result, "rowcount", 0))
