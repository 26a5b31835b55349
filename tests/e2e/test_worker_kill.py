"""A worker killed mid-job: the job still completes, and its effect lands exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from ombud.config import DatabaseSettings
from ombud.core.clock import SystemClock
from ombud.jobs.queue import DatabaseJobQueue
from ombud.jobs.tables import JobRow, JobStatus
from ombud.storage import migrate
from ombud.storage.database import create_engine, create_sessionmaker
from tests.e2e import jobs_worker_proc as proc

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


async def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    with anyio.fail_after(timeout):
        while not path.exists():
            assert process.poll() is None, "the worker process exited early"
            await anyio.sleep(0.05)


async def test_a_killed_workers_job_completes_exactly_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    engine = create_engine(DatabaseSettings(url=SecretStr(url)))
    try:
        await migrate.upgrade(engine)
        queue = DatabaseJobQueue(create_sessionmaker(engine), SystemClock(), proc.SETTINGS)
        job = await queue.enqueue(proc.KIND)

        env = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
        doomed = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.jobs_worker_proc", url, str(tmp_path)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            await _wait_for(tmp_path / proc.MARKER, doomed, timeout=10)
        finally:
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=5)
        assert (tmp_path / proc.MARKER).read_text() == job.id

        survivor = proc.worker(url, tmp_path, "survivor")
        with anyio.fail_after(10):
            while (current := await queue.get(job.id)) is None or current.status in (
                JobStatus.QUEUED, JobStatus.RUNNING,
            ):  # fmt: skip
                if await survivor.run_once() == 0:
                    await anyio.sleep(0.1)  # the dead worker's lease (1 s) runs out

        assert (current.status, current.attempt) == (JobStatus.SUCCEEDED, 2)
        async with create_sessionmaker(engine)() as session:
            effects = await session.scalar(
                select(func.count()).select_from(JobRow).where(JobRow.kind == proc.EFFECT)
            )
        assert effects == 1
    finally:
        await engine.dispose()
