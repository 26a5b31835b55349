"""A worker process for the kill test: ``python -m tests.e2e.jobs_worker_proc DB_URL MARKER_DIR``.

Its one job kind writes a database effect (a follow-up job) through the handler's session, then,
on the first attempt only, announces itself with a marker file and hangs until it is killed.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
from pydantic import SecretStr

from ombud.config import DatabaseSettings, JobsSettings
from ombud.core.clock import SystemClock
from ombud.jobs.queue import DatabaseJobQueue
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.jobs.worker import Worker
from ombud.observability.metrics import Metrics
from ombud.storage.database import create_engine, create_sessionmaker

KIND = "e2e.effectful"
EFFECT = "e2e.effect"
MARKER = "attempt-started"
NEVER = datetime(2999, 1, 1, tzinfo=UTC)
SETTINGS = JobsSettings(
    lease_s=1.0, poll_interval_s=0.05, max_attempts=3, concurrency=1, shutdown_grace_s=0
)


def registry(marker_dir: Path) -> JobRegistry:
    async def effectful(context: JobContext) -> None:
        await context.enqueue(EFFECT, {"of": context.id}, run_at=NEVER)
        if context.attempt == 1:
            (marker_dir / MARKER).write_text(context.id)
            await anyio.sleep(3600)

    jobs = JobRegistry()
    jobs.register(KIND, effectful)
    return jobs


def worker(url: str, marker_dir: Path, worker_id: str) -> Worker:
    engine = create_engine(DatabaseSettings(url=SecretStr(url)))
    clock = SystemClock()
    queue = DatabaseJobQueue(create_sessionmaker(engine), clock, SETTINGS)
    return Worker(queue, registry(marker_dir), clock, SETTINGS, Metrics(), worker_id)


async def main(url: str, marker_dir: Path) -> None:
    await worker(url, marker_dir, "doomed").run(anyio.Event())


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], Path(sys.argv[2]))
