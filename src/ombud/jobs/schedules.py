"""Cron schedules: when a recurring job is due, and enqueueing each due run exactly once.

Expressions are standard five-field cron (``minute hour day-of-month month day-of-week``),
evaluated in UTC: ``0 2 * * *`` is every night at 02:00 UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cronsim import CronSim, CronSimError

from ombud.core.ids import new_id
from ombud.jobs.repository import JobRepository

log = logging.getLogger(__name__)


def validate_cron(expression: str) -> str:
    """Return ``expression`` normalised, or raise ``ValueError`` when it is not valid cron.

    Only the five-field form is accepted: seconds are not a unit ombud schedules in.
    """
    normal = " ".join(expression.split())
    if len(normal.split(" ")) != 5:
        raise ValueError(f"cron expression {expression!r} must have five fields")
    try:
        CronSim(normal, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from exc
    return normal


def next_run(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` that matches ``expression``, in UTC."""
    if after.tzinfo is None:
        raise ValueError("naive datetime given to next_run")
    result: datetime = next(CronSim(expression, after.astimezone(UTC)))
    return result


def run_key(schedule: str, due: datetime) -> str:
    """The idempotency key of one run of a schedule: the same on every worker."""
    return f"schedule:{schedule}:{due.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


@dataclass(frozen=True)
class ScheduleSpec:
    """A declared recurring job.

    Attributes:
        name: Unique, stable name; redeclaring a name updates that schedule.
        kind: The job kind each run enqueues.
        cron: Five-field cron expression, UTC.
        payload: The payload each run's job gets.
    """

    name: str
    kind: str
    cron: str
    payload: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cron", validate_cron(self.cron))
        if not self.name or len(self.name) > 100:
            raise ValueError("a schedule name must have 1 to 100 characters")


async def declare(repo: JobRepository, spec: ScheduleSpec, *, now: datetime) -> None:
    """Create or update ``spec`` (upsert by name); its first run is the next cron time."""
    await repo.upsert_schedule(
        {
            "id": new_id("sch"),
            "name": spec.name,
            "kind": spec.kind,
            "cron": spec.cron,
            "payload": dict(spec.payload),
            "next_run_at": next_run(spec.cron, now),
            "last_run_at": None,
            "created_at": now,
            "updated_at": now,
        }
    )


async def enqueue_due(repo: JobRepository, *, now: datetime, max_attempts: int) -> int:
    """Enqueue one job for each schedule that is due and move the schedule on.

    Safe with any number of workers ticking at once: a run's job carries an idempotency key
    made of the schedule name and the run time, so a second enqueue of the same run returns
    the first job; moving the schedule on is a compare-and-set on ``next_run_at``. Runs
    missed while no worker was up collapse into one: the next run is the first cron time
    after ``now``.

    Returns:
        How many schedules this call moved on.
    """
    advanced = 0
    for schedule in await repo.due_schedules(now):
        due = schedule.next_run_at
        await repo.enqueue(
            kind=schedule.kind,
            payload=schedule.payload,
            now=now,
            run_at=due,
            max_attempts=max_attempts,
            idempotency_key=run_key(schedule.name, due),
        )
        moved = await repo.advance_schedule(
            schedule.name, due=due, next_run_at=next_run(schedule.cron, now), now=now
        )
        if moved:
            advanced += 1
            log.info("schedule %s: enqueued its run due at %s", schedule.name, due.isoformat())
    return advanced
