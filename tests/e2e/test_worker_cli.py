"""``ombud worker`` as an operator runs it: a real process on a real SQLite file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from pydantic import SecretStr

from ombud.config import DatabaseSettings, JobsSettings
from ombud.core.clock import SystemClock
from ombud.jobs.catalog import PRUNE
from ombud.jobs.queue import DatabaseJobQueue
from ombud.jobs.tables import JobStatus
from ombud.storage.database import create_engine, create_sessionmaker

pytestmark = pytest.mark.anyio

OMBUD = [sys.executable, "-m", "ombud"]


async def test_worker_runs_jobs_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ombud.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
    env |= {"OMBUD_DATABASE__URL": url, "OMBUD_JOBS__POLL_INTERVAL_S": "0.1"}
    env["OMBUD_CRYPTO__KEYRING_PATH"] = str(tmp_path / "keyring.json")
    migrated = subprocess.run(
        [*OMBUD, "migrate"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert migrated.returncode == 0, migrated.stderr

    engine = create_engine(DatabaseSettings(url=SecretStr(url)))
    queue = DatabaseJobQueue(create_sessionmaker(engine), SystemClock(), JobsSettings())
    log = tmp_path / "worker.log"
    try:
        job = await queue.enqueue(PRUNE, {"older_than_days": 7})
        with log.open("w") as out:
            worker = subprocess.Popen([*OMBUD, "worker"], env=env, stdout=out, stderr=out)
        try:
            with anyio.fail_after(20):
                while (done := await queue.get(job.id)) is None or done.status != "succeeded":
                    assert worker.poll() is None, log.read_text()
                    await anyio.sleep(0.1)
            assert "is running" in log.read_text()
        finally:
            worker.send_signal(signal.SIGTERM)
            returncode = worker.wait(timeout=20)
        assert returncode == 0, log.read_text()
        assert "ombud worker stopped" in log.read_text()
        assert done.status == JobStatus.SUCCEEDED
    finally:
        await engine.dispose()
