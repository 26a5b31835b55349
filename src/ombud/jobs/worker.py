"""The worker: claims due jobs, runs their handlers with a lease heartbeat, records outcomes.

Delivery is at least once: a job whose worker dies is claimed again when its lease runs out.
Effects are exactly once when handlers write through the session they are given, because that
transaction also marks the job succeeded (see ``JobContext``).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket

import anyio
from anyio.abc import TaskGroup
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.config import JobsSettings
from ombud.core.clock import Clock
from ombud.jobs.catalog import default_registry
from ombud.jobs.queue import DatabaseJobQueue, Job, JobOutcome, JobQueue, LeaseLost
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.observability.metrics import Metrics

log = logging.getLogger(__name__)

# Failures of the queue's own storage: the worker logs them and tries again at the next poll.
_STORAGE_ERRORS = (SQLAlchemyError, OSError)


def default_worker_id() -> str:
    """``host:pid:random``: unique per process, readable in ``jobs.lease_owner``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Runs jobs from a queue with the handlers of a registry.

    Args:
        queue: Where jobs come from and outcomes go.
        registry: The handlers by job kind, and the schedules to declare.
        clock: Time for leases, backoff and handlers; tests pass a ``FrozenClock``.
        settings: Concurrency, lease, poll interval and shutdown grace.
        metrics: Updated with queue depth and finished attempts.
        worker_id: This worker's name in leases.
    """

    def __init__(
        self,
        queue: JobQueue,
        registry: JobRegistry,
        clock: Clock,
        settings: JobsSettings,
        metrics: Metrics,
        worker_id: str,
    ) -> None:
        self._queue = queue
        self._registry = registry
        self._clock = clock
        self._settings = settings
        self._metrics = metrics
        self.worker_id = worker_id
        self._declared = False

    async def run_once(self) -> int:
        """One round: tick schedules, claim up to ``concurrency`` due jobs and run them.

        Returns:
            How many jobs reached an outcome (succeeded, retried, dead or lost).
        """
        await self._tick_schedules()
        # Shielded: a claim that commits must hand its jobs to ``_process``, which releases them
        # if the worker is stopping, rather than leave them leased to nobody until expiry.
        with anyio.CancelScope(shield=True):
            jobs = await self._queue.claim(self.worker_id, limit=self._settings.concurrency)
        finished = 0
        if jobs:
            async with anyio.create_task_group() as group:
                for job in jobs:
                    group.start_soon(self._process, job)
            finished = len(jobs)
        await self._observe_depth()
        return finished

    async def run(self, stop: anyio.Event) -> None:
        """Work until ``stop`` is set, then finish running jobs (or release them after the grace).

        Storage errors are logged and retried at the next poll, so a database restart does not
        end the worker.
        """
        log.info("job worker %s started", self.worker_id)
        while not stop.is_set():
            try:
                busy = await self._round_until(stop) > 0
            except Exception:
                # Deliberately broad: a bad row or a bug in one round must not kill the worker
                # (and, embedded, the server around it). Logged; the next round starts afresh.
                log.exception("job worker %s: round failed; continuing", self.worker_id)
                busy = False
            if not busy and not stop.is_set():
                with anyio.move_on_after(self._settings.poll_interval_s):
                    await stop.wait()
        log.info("job worker %s stopped", self.worker_id)

    async def _round_until(self, stop: anyio.Event) -> int:
        processed = 0

        async def cancel_after_grace(group: TaskGroup) -> None:
            await stop.wait()
            await anyio.sleep(self._settings.shutdown_grace_s)
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_after_grace, group)
            try:
                processed = await self.run_once()
            except _STORAGE_ERRORS as exc:
                log.error("job worker %s: storage error, retrying: %s", self.worker_id, exc)
            group.cancel_scope.cancel()
        return processed

    async def _tick_schedules(self) -> None:
        try:
            if not self._declared:
                for spec in self._registry.schedules:
                    await self._queue.declare_schedule(spec)
                self._declared = True
            await self._queue.tick_schedules()
        except _STORAGE_ERRORS as exc:
            # Schedules are retried on the next round; already-queued jobs can still run.
            log.error("job worker %s: schedule tick failed: %s", self.worker_id, exc)

    async def _observe_depth(self) -> None:
        for status, count in (await self._queue.counts()).items():
            self._metrics.job_queue_depth.labels(status=status.value).set(count)

    async def _process(self, job: Job) -> None:
        outcome: JobOutcome | None = None
        try:
            async with anyio.create_task_group() as group:
                with anyio.CancelScope() as attempt:
                    group.start_soon(self._keep_leased, job, attempt)
                    outcome = await self._attempt(job)
                group.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._release(job)
            raise
        if outcome is None:  # the heartbeat found the lease gone and cut the attempt short
            log.warning("job %s (%s): lease lost mid-attempt; abandoned", job.id, job.kind)
        elif outcome is not JobOutcome.LOST:
            self._metrics.jobs_processed.labels(kind=job.kind, outcome=outcome.value).inc()

    async def _attempt(self, job: Job) -> JobOutcome:
        try:
            handler = self._registry.handler(job.kind)

            async def effects(session: AsyncSession) -> None:
                context = JobContext(job, session, self._clock, self._settings.max_attempts)
                await handler(context)

            await self._queue.complete(job, effects)
        except LeaseLost:
            log.warning("job %s (%s): lease lost before completion; rolled back", job.id, job.kind)
            return JobOutcome.LOST
        except Exception as exc:
            # Deliberately broad: whatever a handler raises is that attempt's failure.
            log.warning(
                "job %s (%s) attempt %d/%d failed", job.id, job.kind, job.attempt,
                job.max_attempts, exc_info=exc,
            )  # fmt: skip
            return await self._record_failure(job, f"{type(exc).__name__}: {exc}")
        log.info("job %s (%s) succeeded on attempt %d", job.id, job.kind, job.attempt)
        return JobOutcome.SUCCEEDED

    async def _record_failure(self, job: Job, error: str) -> JobOutcome:
        try:
            outcome = await self._queue.fail(job, error)
        except _STORAGE_ERRORS as exc:
            # Unrecorded, the attempt ends when its lease expires and the job runs again.
            log.error("job %s: could not record its failure: %s", job.id, exc)
            return JobOutcome.LOST
        if outcome is JobOutcome.DEAD:
            log.error(
                "job %s (%s) is dead after %d attempts: %s", job.id, job.kind, job.attempt, error
            )
        return outcome

    async def _keep_leased(self, job: Job, attempt: anyio.CancelScope) -> None:
        interval = self._settings.lease_s / 3
        while True:
            await anyio.sleep(interval)
            try:
                # Shielded: cancelling a statement mid-flight could leave its connection unusable.
                with anyio.CancelScope(shield=True):
                    held = await self._queue.heartbeat(job)
            except _STORAGE_ERRORS as exc:
                log.error("job %s: heartbeat failed, will retry: %s", job.id, exc)
                continue
            if not held:
                attempt.cancel()
                return

    async def _release(self, job: Job) -> None:
        try:
            released = await self._queue.release(job)
        except _STORAGE_ERRORS as exc:
            # The lease will expire and another worker will take the job; nothing is lost.
            log.error("job %s: could not release on shutdown: %s", job.id, exc)
            return
        if released:
            log.info("job %s (%s): released unfinished on shutdown", job.id, job.kind)


def build_worker(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    settings: JobsSettings,
    metrics: Metrics,
    registry: JobRegistry | None = None,
    worker_id: str | None = None,
) -> Worker:
    """A worker on the database queue with the default catalogue of job kinds.

    The composition root (embedded worker) and ``ombud worker`` both build workers here.
    """
    return Worker(
        DatabaseJobQueue(sessions, clock, settings),
        registry if registry is not None else default_registry(),
        clock,
        settings,
        metrics,
        worker_id or default_worker_id(),
    )
