"""The job queue port and its database adapter.

``JobQueue`` is everything a worker needs from a queue; ``DatabaseJobQueue`` implements it on
ombud's own database (SQLite or PostgreSQL). A scale-out task engine can replace the adapter
behind the same port; see ``docs/jobs.md``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

import anyio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.config import JobsSettings
from ombud.core.clock import Clock
from ombud.jobs import schedules
from ombud.jobs.repository import JobRepository, Lease
from ombud.jobs.retry import backoff_delay
from ombud.jobs.schedules import ScheduleSpec
from ombud.jobs.tables import JobRow, JobStatus

log = logging.getLogger(__name__)

Effects = Callable[[AsyncSession], Awaitable[None]]
"""Database work that must commit together with a job's completion."""


class JobOutcome(StrEnum):
    """How one attempt ended, as recorded by the queue."""

    SUCCEEDED = "succeeded"
    RETRIED = "retried"
    DEAD = "dead"
    LOST = "lost"
    """The lease ran out and another worker took the job over; this attempt changed nothing."""


class LeaseLost(Exception):
    """The worker no longer holds the job: its lease expired and another worker claimed it."""


@dataclass(frozen=True)
class Job:
    """One claimed (or enqueued) job as the queue hands it out.

    Attributes:
        attempt: The number of this attempt, from 1; 0 for a job not yet claimed.
        lease_owner: The worker holding the job while it runs.
    """

    id: str
    kind: str
    payload: Mapping[str, object]
    status: JobStatus
    attempt: int
    max_attempts: int
    run_at: datetime
    idempotency_key: str | None
    last_error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def lease(self) -> Lease:
        if self.lease_owner is None:
            raise ValueError(f"job {self.id} is not leased")
        return Lease(self.id, self.lease_owner, self.attempt)


def job_from_row(row: JobRow) -> Job:
    return Job(
        id=row.id, kind=row.kind, payload=MappingProxyType(dict(row.payload)),
        status=JobStatus(row.status), attempt=row.attempts, max_attempts=row.max_attempts,
        run_at=row.run_at, idempotency_key=row.idempotency_key, last_error=row.last_error,
        lease_owner=row.lease_owner, lease_expires_at=row.lease_expires_at,
        created_at=row.created_at, finished_at=row.finished_at,
    )  # fmt: skip


class JobQueue(Protocol):
    """The port between workers (and producers of work) and whatever stores the jobs."""

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, object] | None = None,
        *,
        idempotency_key: str | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
    ) -> Job:
        """Add a job; with an ``idempotency_key`` already used, return that job instead."""
        ...

    async def get(self, job_id: str) -> Job | None:
        """The job ``job_id``, or None."""
        ...

    async def claim(self, worker_id: str, *, limit: int = 1) -> list[Job]:
        """Lease up to ``limit`` due jobs to ``worker_id``; never the same job to two workers."""
        ...

    async def complete(self, job: Job, effects: Effects | None = None) -> None:
        """Run ``effects`` and mark ``job`` succeeded in one transaction.

        Raises:
            LeaseLost: The job is no longer this worker's; nothing was committed.
        """
        ...

    async def fail(self, job: Job, error: str) -> JobOutcome:
        """Record a failed attempt: retried later with backoff, or dead after the last one."""
        ...

    async def heartbeat(self, job: Job) -> bool:
        """Extend the lease on ``job``; False when it has been lost."""
        ...

    async def release(self, job: Job) -> bool:
        """Hand ``job`` back unfinished (a stopping worker); the attempt does not count."""
        ...

    async def counts(self) -> dict[JobStatus, int]:
        """How many jobs are in each status."""
        ...

    async def declare_schedule(self, spec: ScheduleSpec) -> None:
        """Create or update a cron schedule by name."""
        ...

    async def tick_schedules(self) -> int:
        """Enqueue each due scheduled run exactly once; return how many were enqueued."""
        ...


class DatabaseJobQueue:
    """``JobQueue`` on ombud's database: leases, guarded updates, idempotency keys."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: JobsSettings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._settings = settings
        self._rng = rng

    @property
    def lease_duration(self) -> timedelta:
        return timedelta(seconds=self._settings.lease_s)

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, object] | None = None,
        *,
        idempotency_key: str | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
    ) -> Job:
        async with self._sessions.begin() as session:
            return await enqueue_in(
                session, self._clock, kind, payload, idempotency_key=idempotency_key,
                run_at=run_at, max_attempts=max_attempts or self._settings.max_attempts,
            )  # fmt: skip

    async def get(self, job_id: str) -> Job | None:
        async with self._sessions() as session:
            row = await JobRepository(session).get(job_id)
            return None if row is None else job_from_row(row)

    async def claim(self, worker_id: str, *, limit: int = 1) -> list[Job]:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            repo = JobRepository(session)
            buried = await repo.bury_exhausted(now=now)
            if buried:
                log.warning("%d jobs died: their lease expired on the last attempt", buried)
            rows = await repo.claim(
                owner=worker_id, now=now, lease_until=now + self.lease_duration, limit=limit
            )
            return [job_from_row(row) for row in rows]

    async def complete(self, job: Job, effects: Effects | None = None) -> None:
        session = self._sessions()
        try:
            if effects is not None:
                await effects(session)
            if not await JobRepository(session).succeed(job.lease, now=self._clock.now()):
                raise LeaseLost(f"job {job.id} attempt {job.attempt} lost its lease")
            await session.commit()
        finally:
            # Shielded: a cancelled worker must still roll back and return the connection.
            with anyio.CancelScope(shield=True):
                await session.close()

    async def fail(self, job: Job, error: str) -> JobOutcome:
        now = self._clock.now()
        retry_at: datetime | None = None
        if job.attempt < job.max_attempts:
            delay = backoff_delay(
                job.attempt,
                base_s=self._settings.backoff_base_s,
                max_s=self._settings.backoff_max_s,
                rng=self._rng,
            )
            retry_at = now + timedelta(seconds=delay)
        async with self._sessions.begin() as session:
            recorded = await JobRepository(session).fail(
                job.lease, now=now, error=error, retry_at=retry_at
            )
        if not recorded:
            return JobOutcome.LOST
        return JobOutcome.DEAD if retry_at is None else JobOutcome.RETRIED

    async def heartbeat(self, job: Job) -> bool:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            return await JobRepository(session).extend(
                job.lease, now=now, lease_until=now + self.lease_duration
            )

    async def release(self, job: Job) -> bool:
        async with self._sessions.begin() as session:
            return await JobRepository(session).release(job.lease, now=self._clock.now())

    async def counts(self) -> dict[JobStatus, int]:
        async with self._sessions() as session:
            found = await JobRepository(session).counts()
        return {status: found.get(status, 0) for status in JobStatus}

    async def declare_schedule(self, spec: ScheduleSpec) -> None:
        async with self._sessions.begin() as session:
            await schedules.declare(JobRepository(session), spec, now=self._clock.now())

    async def tick_schedules(self) -> int:
        async with self._sessions.begin() as session:
            return await schedules.enqueue_due(
                JobRepository(session),
                now=self._clock.now(),
                max_attempts=self._settings.max_attempts,
            )


async def enqueue_in(
    session: AsyncSession,
    clock: Clock,
    kind: str,
    payload: Mapping[str, object] | None = None,
    *,
    idempotency_key: str | None = None,
    run_at: datetime | None = None,
    max_attempts: int,
) -> Job:
    """Enqueue inside the caller's transaction, so the job exists only if that work commits.

    This is how a service schedules follow-up work atomically with its own changes (and how a
    handler fans out), on the database queue.
    """
    if not kind or len(kind) > 100:
        raise ValueError("a job kind must have 1 to 100 characters")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    now = clock.now()
    row = await JobRepository(session).enqueue(
        kind=kind, payload=payload or {}, now=now, run_at=run_at or now,
        max_attempts=max_attempts, idempotency_key=idempotency_key,
    )  # fmt: skip
    return job_from_row(row)
