"""All SQL of the job runner.

Every state change of a claimed job is guarded by its lease (the job id, the worker that holds
it and the attempt number), so a worker that lost its lease cannot overwrite the outcome of the
worker that took the job over: its statement simply matches no row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.core.ids import new_id
from ombud.jobs.tables import JobRow, JobScheduleRow, JobStatus


@dataclass(frozen=True)
class Lease:
    """Which claim of a job a worker holds: the guard on every change it makes."""

    job_id: str
    owner: str
    attempt: int


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def _insert(self) -> Any:
        # Both dialects spell "insert unless the unique key exists" as ON CONFLICT DO NOTHING.
        dialect = self._session.get_bind().dialect.name
        return postgresql.insert if dialect == "postgresql" else sqlite.insert

    async def insert(self, values: Mapping[str, object]) -> bool:
        """Insert a job; False when its idempotency key already exists (nothing written)."""
        stmt = self._insert()(JobRow).values(**values)
        if values.get("idempotency_key") is not None:
            stmt = stmt.on_conflict_do_nothing(index_elements=[JobRow.idempotency_key])
        inserted = await self._session.scalar(stmt.returning(JobRow.id))
        return inserted is not None

    async def enqueue(
        self,
        *,
        kind: str,
        payload: Mapping[str, object],
        now: datetime,
        run_at: datetime,
        max_attempts: int,
        idempotency_key: str | None,
    ) -> JobRow:
        """Add a queued job, or return the job already holding ``idempotency_key``."""
        job_id = new_id("job")
        inserted = await self.insert(
            {
                "id": job_id,
                "kind": kind,
                "payload": dict(payload),
                "status": JobStatus.QUEUED,
                "run_at": run_at,
                "attempts": 0,
                "max_attempts": max_attempts,
                "idempotency_key": idempotency_key,
                "created_at": now,
                "updated_at": now,
            }
        )
        row = await (self.get(job_id) if inserted else self.by_key(str(idempotency_key)))
        if row is None:  # pragma: no cover - the key's holder was deleted in between
            raise LookupError(f"job with idempotency key {idempotency_key!r} vanished")
        return row

    async def get(self, job_id: str) -> JobRow | None:
        return await self._session.scalar(select(JobRow).where(JobRow.id == job_id))

    async def by_key(self, idempotency_key: str) -> JobRow | None:
        return await self._session.scalar(
            select(JobRow).where(JobRow.idempotency_key == idempotency_key)
        )

    async def claim(
        self, *, owner: str, now: datetime, lease_until: datetime, limit: int
    ) -> list[JobRow]:
        """Lease up to ``limit`` due jobs to ``owner``, oldest first, in one statement.

        PostgreSQL locks the picked rows with ``FOR UPDATE SKIP LOCKED``, so concurrent workers
        pick disjoint sets without waiting for each other. SQLite has one writer at a time and
        ignores the locking clause: the single ``UPDATE … RETURNING`` runs under the database's
        write lock, so two workers can never pick the same row either.
        """
        claimable = or_(
            and_(JobRow.status == JobStatus.QUEUED, JobRow.run_at <= now),
            and_(
                JobRow.status == JobStatus.RUNNING,
                JobRow.lease_expires_at <= now,
                JobRow.attempts < JobRow.max_attempts,
            ),
        )
        # MATERIALIZED: the pick must run exactly once, whatever plan the outer update gets.
        picked = (
            select(JobRow.id)
            .where(claimable)
            .order_by(JobRow.run_at, JobRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("picked")
            .prefix_with("MATERIALIZED")
        )
        stmt = (
            update(JobRow)
            .where(JobRow.id.in_(select(picked.c.id)))
            .values(
                status=JobStatus.RUNNING,
                attempts=JobRow.attempts + 1,
                lease_owner=owner,
                lease_expires_at=lease_until,
                updated_at=now,
            )
            .returning(JobRow)
        )
        rows = await self._session.scalars(stmt, execution_options={"synchronize_session": False})
        return sorted(rows, key=lambda row: (row.run_at, row.id))

    async def bury_exhausted(self, *, now: datetime) -> int:
        """Mark dead the running jobs whose lease expired on their last allowed attempt."""
        result = await self._session.execute(
            update(JobRow)
            .where(
                JobRow.status == JobStatus.RUNNING,
                JobRow.lease_expires_at <= now,
                JobRow.attempts >= JobRow.max_attempts,
            )
            .values(
                status=JobStatus.DEAD,
                last_error=case(
                    (JobRow.last_error.is_(None), "lease expired on the last attempt"),
                    else_=JobRow.last_error,
                ),
                lease_owner=None,
                lease_expires_at=None,
                updated_at=now,
                finished_at=now,
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _guarded(self, lease: Lease, **values: object) -> bool:
        result = await self._session.execute(
            update(JobRow).where(_held(lease)).values(**values),
            execution_options={"synchronize_session": False},
        )
        return bool(getattr(result, "rowcount", 0))

    async def extend(self, lease: Lease, *, now: datetime, lease_until: datetime) -> bool:
        return await self._guarded(lease, lease_expires_at=lease_until, updated_at=now)

    async def succeed(self, lease: Lease, *, now: datetime) -> bool:
        return await self._guarded(
            lease,
            status=JobStatus.SUCCEEDED,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
            finished_at=now,
        )

    async def fail(
        self, lease: Lease, *, now: datetime, error: str, retry_at: datetime | None
    ) -> bool:
        """Record a failed attempt: queued again at ``retry_at``, or dead when it is None."""
        final = retry_at is None
        return await self._guarded(
            lease,
            status=JobStatus.DEAD if final else JobStatus.QUEUED,
            run_at=JobRow.run_at if retry_at is None else retry_at,
            last_error=error,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
            finished_at=now if final else None,
        )

    async def release(self, lease: Lease, *, now: datetime) -> bool:
        """Hand a job back unfinished; the interrupted attempt does not count."""
        return await self._guarded(
            lease,
            status=JobStatus.QUEUED,
            attempts=JobRow.attempts - 1,
            run_at=now,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )

    async def counts(self) -> dict[str, int]:
        rows = await self._session.execute(
            select(JobRow.status, func.count()).group_by(JobRow.status)
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def delete_finished_before(self, cutoff: datetime) -> int:
        """Delete succeeded and dead jobs that finished before ``cutoff``."""
        result = await self._session.execute(
            delete(JobRow).where(
                JobRow.status.in_([JobStatus.SUCCEEDED, JobStatus.DEAD]),
                JobRow.finished_at < cutoff,
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def upsert_schedule(self, values: Mapping[str, object]) -> None:
        """Create the schedule ``values["name"]`` or update it in place.

        An unchanged cron expression keeps its pending ``next_run_at``, so redeclaring the same
        schedule at every start neither skips nor repeats a run.
        """
        stmt = self._insert()(JobScheduleRow).values(**values)
        excluded = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=[JobScheduleRow.name],
            set_={
                "kind": excluded.kind,
                "payload": excluded.payload,
                "cron": excluded.cron,
                "next_run_at": case(
                    (JobScheduleRow.cron != excluded.cron, excluded.next_run_at),
                    else_=JobScheduleRow.next_run_at,
                ),
                "updated_at": excluded.updated_at,
            },
        )
        await self._session.execute(stmt)

    async def schedule(self, name: str) -> JobScheduleRow | None:
        return await self._session.scalar(select(JobScheduleRow).where(JobScheduleRow.name == name))

    async def due_schedules(self, now: datetime, *, limit: int = 100) -> list[JobScheduleRow]:
        rows = await self._session.scalars(
            select(JobScheduleRow)
            .where(JobScheduleRow.next_run_at <= now)
            .order_by(JobScheduleRow.next_run_at, JobScheduleRow.name)
            .limit(limit)
        )
        return list(rows)

    async def advance_schedule(
        self, name: str, *, due: datetime, next_run_at: datetime, now: datetime
    ) -> bool:
        """Move a schedule past its run ``due``; False when another worker already did."""
        result = await self._session.execute(
            update(JobScheduleRow)
            .where(JobScheduleRow.name == name, JobScheduleRow.next_run_at == due)
            .values(next_run_at=next_run_at, last_run_at=due, updated_at=now),
            execution_options={"synchronize_session": False},
        )
        return bool(getattr(result, "rowcount", 0))


def _held(lease: Lease) -> ColumnElement[bool]:
    return and_(
        JobRow.id == lease.job_id,
        JobRow.status == JobStatus.RUNNING,
        JobRow.lease_owner == lease.owner,
        JobRow.attempts == lease.attempt,
    )
