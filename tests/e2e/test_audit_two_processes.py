"""Two ``ombud serve`` processes on one PostgreSQL database write one audit chain."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from ombud.audit.tables import AuditEventRow
from ombud.config import DatabaseSettings, Settings
from ombud.container import Container
from ombud.demo.example import EXAMPLE_APPLICANT
from tests.e2e.servers import keyring_for, prepare_demo, reset_database, running_server

CALLS_PER_SERVER = 60
CONCURRENCY = 12


async def _predict(bases: list[str], key: str) -> int:
    """Post predictions to every server at once; the number answered 200."""
    answered = 0
    headers = {"Authorization": f"Bearer {key}", "X-Ombud-Purpose": "credit_scoring"}

    async def worker(http: httpx.AsyncClient, base: str, calls: int) -> None:
        nonlocal answered
        for _ in range(calls):
            response = await http.post(
                f"{base}/v1/models/credit-risk/predict",
                json={"features": EXAMPLE_APPLICANT},
                headers=headers,
            )
            answered += response.status_code == 200

    async with httpx.AsyncClient(timeout=20) as http:
        per_worker = CALLS_PER_SERVER // CONCURRENCY
        await asyncio.gather(
            *(worker(http, base, per_worker) for base in bases for _ in range(CONCURRENCY))
        )
    return answered


async def _chain_shape(database: str) -> tuple[int, int, int, int]:
    """Rows, distinct event ids, lowest and highest seq."""
    container = Container.create(Settings(database=DatabaseSettings(url=SecretStr(database))))
    try:
        async with container.sessions() as session:
            row = (
                await session.execute(
                    select(
                        func.count(),
                        func.count(func.distinct(AuditEventRow.event_id)),
                        func.min(AuditEventRow.seq),
                        func.max(AuditEventRow.seq),
                    )
                )
            ).one()
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])
    finally:
        await container.aclose()


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
def test_two_servers_write_one_verifiable_chain(database: str, artifact_dir: Path) -> None:
    key = prepare_demo(database, artifact_dir)
    env = {
        "OMBUD_DATABASE__URL": database,
        "OMBUD_SERVING__ARTIFACT_DIR": str(artifact_dir),
        "OMBUD_JOBS__EMBEDDED_WORKER": "false",
    }
    try:
        with running_server(env) as first, running_server(env) as second:
            answered = asyncio.run(_predict([first, second], key))
        assert answered == 2 * CALLS_PER_SERVER
        clean = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
        clean["OMBUD_CRYPTO__KEYRING_PATH"] = keyring_for(database)
        verify = subprocess.run(
            [sys.executable, "-m", "ombud", "audit", "verify"], env={**clean, **env},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert verify.returncode == 0, verify.stderr
        assert "audit chain OK" in verify.stdout
        rows, distinct, low, high = asyncio.run(_chain_shape(database))
        assert rows == distinct >= answered
        assert (low, high) == (1, rows)
    finally:
        reset_database(database)
