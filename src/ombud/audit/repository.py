"""All SQL of the audit domain: append and read, never update."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.audit.tables import AuditEventRow


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def append(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        await self._session.execute(
            insert(AuditEventRow),
            [
                {
                    "event_id": e.event_id,
                    "occurred_at": e.occurred_at,
                    "request_id": e.request_id,
                    "tenant_id": e.tenant_id,
                    "actor": e.actor,
                    "action": e.action,
                    "resource": e.resource,
                    "purpose": e.purpose,
                    "subject": e.subject,
                    "outcome": e.outcome.value,
                    "reason": e.reason,
                    "detail": e.detail,
                }
                for e in events
            ],
        )

    async def by_request(self, request_id: str) -> list[AuditEvent]:
        rows = await self._session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.request_id == request_id)
            .order_by(AuditEventRow.seq)
        )
        return [_event(r) for r in rows]

    async def count(self) -> int:
        return int(await self._session.scalar(select(func.count()).select_from(AuditEventRow)) or 0)


def _event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        event_id=row.event_id,
        occurred_at=row.occurred_at,
        actor=row.actor,
        action=row.action,
        resource=row.resource,
        outcome=Outcome(row.outcome),
        tenant_id=row.tenant_id,
        request_id=row.request_id,
        purpose=row.purpose,
        subject=row.subject,
        reason=row.reason,
        detail=dict(row.detail),
    )
