"""Which code runs each kind of job, and the schedules that come with it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from ombud.core.clock import Clock
from ombud.jobs.queue import Job, enqueue_in
from ombud.jobs.schedules import ScheduleSpec


@dataclass(frozen=True)
class JobContext:
    """What a handler gets for one attempt of one job.

    Attributes:
        job: The job being run.
        session: A session whose transaction also marks the job succeeded. Write the job's
            database effects through it and they commit together with the completion, or not
            at all; a handler must not commit or roll it back itself.
        clock: The worker's clock; use it, not the system time, for anything time-based.
        default_max_attempts: Attempts given to follow-up jobs that name none.
    """

    job: Job
    session: AsyncSession
    clock: Clock
    default_max_attempts: int

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def kind(self) -> str:
        return self.job.kind

    @property
    def payload(self) -> Mapping[str, object]:
        return self.job.payload

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""
        return self.job.attempt

    async def enqueue(
        self,
        kind: str,
        payload: Mapping[str, object] | None = None,
        *,
        idempotency_key: str | None = None,
        run_at: datetime | None = None,
        max_attempts: int | None = None,
    ) -> Job:
        """Enqueue a follow-up job in this transaction: it exists only if this job succeeds."""
        return await enqueue_in(
            self.session, self.clock, kind, payload, idempotency_key=idempotency_key,
            run_at=run_at, max_attempts=max_attempts or self.default_max_attempts,
        )  # fmt: skip


Handler = Callable[[JobContext], Awaitable[None]]
"""Runs one attempt of a job. Raising fails the attempt (it is retried with backoff)."""


class UnknownJobKind(LookupError):
    """No handler is registered for a job's kind."""


class JobRegistry:
    """Job kinds and their handlers, plus the schedules that enqueue them.

    Build one with ``ombud.jobs.catalog.default_registry()`` so the API process and every
    ``ombud worker`` know the same kinds.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._schedules: dict[str, ScheduleSpec] = {}

    def register(self, kind: str, handler: Handler) -> None:
        """Make ``handler`` run jobs of ``kind``.

        Raises:
            ValueError: ``kind`` is already registered (two owners of one kind is a bug).
        """
        if not kind or len(kind) > 100:
            raise ValueError("a job kind must have 1 to 100 characters")
        if kind in self._handlers:
            raise ValueError(f"job kind {kind!r} is already registered")
        self._handlers[kind] = handler

    def handler(self, kind: str) -> Handler:
        """The handler for ``kind``.

        Raises:
            UnknownJobKind: Nothing handles ``kind`` in this process.
        """
        try:
            return self._handlers[kind]
        except KeyError:
            raise UnknownJobKind(
                f"no handler is registered for job kind {kind!r} in this worker"
            ) from None

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def schedule(
        self, name: str, kind: str, cron: str, payload: Mapping[str, object] | None = None
    ) -> ScheduleSpec:
        """Declare a recurring run of ``kind``; workers upsert it into the queue at start.

        Raises:
            ValueError: The cron expression is invalid, ``kind`` is not registered, or
                ``name`` is taken.
        """
        if kind not in self._handlers:
            raise ValueError(f"schedule {name!r} names unregistered job kind {kind!r}")
        if name in self._schedules:
            raise ValueError(f"schedule {name!r} is already declared")
        spec = ScheduleSpec(name=name, kind=kind, cron=cron, payload=dict(payload or {}))
        self._schedules[name] = spec
        return spec

    @property
    def schedules(self) -> tuple[ScheduleSpec, ...]:
        return tuple(self._schedules.values())
