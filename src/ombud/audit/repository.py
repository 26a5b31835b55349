"""All SQL of the audit domain: append (extending the hash chain) and read, never update."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import ColumnElement, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.chain import GENESIS, ChainLink, Checkpoint, Head, extend
from ombud.audit.events import AuditEvent, Outcome
from ombud.audit.tables import (
    AuditChainHeadRow,
    AuditCheckpointRow,
    AuditEventRow,
    AuditSigningKeyRow,
)

HEAD_ID = 1

_HEAD = cast(Table, AuditChainHeadRow.__table__)
_LOCK_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(last_seq=_HEAD.c.last_seq)
    .returning(_HEAD.c.last_seq, _HEAD.c.last_hash)
)
_MOVE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.id == HEAD_ID)
    .values(last_seq=bindparam("seq"), last_hash=bindparam("hash"), updated_at=bindparam("at"))
)
_INSERT_EVENTS = insert(cast(Table, AuditEventRow.__table__))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which events a query or export selects. ``tenant_id`` None: every tenant."""

    tenant_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    outcome: Outcome | None = None
    subject: str | None = None
    resource_prefix: str | None = None
    request_id: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions for these filters (``since`` inclusive, ``until`` exclusive)."""
        row = AuditEventRow
        conditions: list[ColumnElement[bool]] = []
        equal = {
            row.tenant_id: self.tenant_id, row.actor: self.actor, row.action: self.action,
            row.subject: self.subject, row.request_id: self.request_id,
            row.outcome: self.outcome.value if self.outcome is not None else None,
        }  # fmt: skip
        conditions.extend(column == value for column, value in equal.items() if value is not None)
        if self.since is not None:
            conditions.append(row.occurred_at >= self.since)
        if self.until is not None:
            conditions.append(row.occurred_at < self.until)
        if self.resource_prefix:
            conditions.append(row.resource.startswith(self.resource_prefix, autoescape=True))
        return conditions


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def append(self, events: Sequence[AuditEvent]) -> list[ChainLink]:
        """Chain and insert ``events`` in the session's transaction, holding the head's lock.

        The head row stays locked until the transaction ends, so writers in other processes
        extend the chain one after another and it stays one history.
        """
        if not events:
            return []
        head = await self._lock_head()
        links = extend(head.hash, head.seq, events)
        # Core statements on the tables, built once: no ORM bookkeeping on the hot path.
        await self._session.execute(
            _INSERT_EVENTS,
            [_row(link.seq, event, link) for link, event in zip(links, events, strict=True)],
        )
        await self._session.execute(
            _MOVE_HEAD,
            {"seq": links[-1].seq, "hash": links[-1].hash, "at": events[-1].occurred_at},
        )
        return links

    async def _lock_head(self) -> Head:
        # One statement takes the head row's write lock and reads it: an UPDATE locks the row
        # on PostgreSQL (like FOR UPDATE) and takes SQLite's write lock before the read, so a
        # writer in another process cannot read the same head. RETURNING needs SQLite ≥ 3.35.
        row = (await self._session.execute(_LOCK_HEAD)).first()
        if row is None:
            await self._create_head()
            row = (await self._session.execute(_LOCK_HEAD)).first()
        assert row is not None  # created just above, in this transaction or a concurrent one
        return Head(seq=row.last_seq, hash=row.last_hash)

    async def _select_head(self, *, lock: bool) -> Head | None:
        query = select(AuditChainHeadRow.last_seq, AuditChainHeadRow.last_hash).where(
            AuditChainHeadRow.id == HEAD_ID
        )
        row = (await self._session.execute(query.with_for_update() if lock else query)).first()
        return None if row is None else Head(seq=row.last_seq, hash=row.last_hash)

    async def _create_head(self) -> None:
        """Recreate a missing head row from the last chained event (or the genesis)."""
        last = (
            await self._session.execute(
                select(AuditEventRow.seq, AuditEventRow.hash, AuditEventRow.occurred_at)
                .order_by(AuditEventRow.seq.desc())
                .limit(1)
            )
        ).first()
        values = {
            "id": HEAD_ID,
            "last_seq": last.seq if last else 0,
            "last_hash": last.hash if last else GENESIS,
            "updated_at": last.occurred_at if last else func.now(),
        }
        dialect = self._session.get_bind().dialect.name
        builder = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self._session.execute(
            builder(AuditChainHeadRow).values(values).on_conflict_do_nothing()
        )

    async def head(self) -> Head:
        """The chain head as stored (seq 0 and the genesis hash for an empty chain)."""
        return await self._select_head(lock=False) or Head(seq=0, hash=GENESIS)

    async def links(
        self, *, after_seq: int, limit: int, until_seq: int | None = None
    ) -> list[ChainLink]:
        """Up to ``limit`` chained events after ``after_seq`` (and up to ``until_seq``)."""
        query = select(AuditEventRow).where(AuditEventRow.seq > after_seq)
        if until_seq is not None:
            query = query.where(AuditEventRow.seq <= until_seq)
        rows = await self._session.scalars(query.order_by(AuditEventRow.seq).limit(limit))
        return [_link(row) for row in rows]

    async def find(
        self, selection: AuditFilter, *, after_seq: int = 0, limit: int = 100
    ) -> list[ChainLink]:
        """Events matching ``selection`` after ``after_seq``, by seq."""
        rows = await self._session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.seq > after_seq, *selection.conditions())
            .order_by(AuditEventRow.seq)
            .limit(limit)
        )
        return [_link(row) for row in rows]

    async def seq_range(self, selection: AuditFilter) -> tuple[int, int] | None:
        """The first and last seq of the events matching ``selection``; None when none do."""
        row = (
            await self._session.execute(
                select(func.min(AuditEventRow.seq), func.max(AuditEventRow.seq)).where(
                    *selection.conditions()
                )
            )
        ).first()
        if row is None or row[0] is None:
            return None
        return int(row[0]), int(row[1])

    async def checkpoints(self) -> list[Checkpoint]:
        rows = await self._session.scalars(
            select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq, AuditCheckpointRow.id)
        )
        return [Checkpoint(r.seq, r.hash, r.signed_at, r.key_id, r.signature) for r in rows]

    async def add_checkpoint(self, checkpoint_id: str, checkpoint: Checkpoint) -> None:
        self._session.add(
            AuditCheckpointRow(
                id=checkpoint_id, seq=checkpoint.seq, hash=checkpoint.hash,
                signed_at=checkpoint.signed_at, key_id=checkpoint.key_id,
                signature=checkpoint.signature,
            )
        )  # fmt: skip
        await self._session.flush()

    async def signing_keys(self) -> list[AuditSigningKeyRow]:
        """Every checkpoint signing key, oldest first."""
        rows = await self._session.scalars(
            select(AuditSigningKeyRow).order_by(AuditSigningKeyRow.created_at)
        )
        return list(rows)

    async def add_signing_key(self, row: AuditSigningKeyRow) -> None:
        self._session.add(row)
        await self._session.flush()

    async def by_request(self, request_id: str) -> list[AuditEvent]:
        rows = await self._session.scalars(
            select(AuditEventRow)
            .where(AuditEventRow.request_id == request_id)
            .order_by(AuditEventRow.seq)
        )
        return [_event(r) for r in rows]

    async def count(self) -> int:
        return int(await self._session.scalar(select(func.count()).select_from(AuditEventRow)) or 0)


def _row(seq: int, e: AuditEvent, link: ChainLink) -> dict[str, object]:
    return {
        "seq": seq,
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
        "prev_hash": link.prev_hash,
        "hash": link.hash,
    }


def _link(row: AuditEventRow) -> ChainLink:
    return ChainLink(seq=row.seq, prev_hash=row.prev_hash, hash=row.hash, event=_event(row))


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


async def matching_seqs(
    session: AsyncSession, selection: AuditFilter, low: int, high: int
) -> set[int]:
    """The seqs in [``low``, ``high``] of the events that ``selection`` matches."""
    rows = await session.scalars(
        select(AuditEventRow.seq).where(
            AuditEventRow.seq >= low, AuditEventRow.seq <= high, *selection.conditions()
        )
    )
    return set(rows)
