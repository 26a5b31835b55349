"""SIGKILL the server under load: every call that was answered has its records in the database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import delete, select

from ombud.audit.tables import AuditEventRow
from ombud.config import DatabaseSettings, ServingSettings, Settings
from ombud.container import Container
from ombud.demo.example import EXAMPLE_APPLICANT
from ombud.demo.seed import seed_demo
from ombud.predictions.tables import PredictionRow
from ombud.storage.tables import metadata

CONCURRENCY = 24
ANSWERS_BEFORE_KILL = 100


async def _prepare(settings: Settings) -> str:
    container = Container.create(settings)
    try:
        return (await seed_demo(container)).api_key
    finally:
        await container.aclose()


async def _stored(settings: Settings) -> tuple[set[str], set[str]]:
    container = Container.create(settings)
    try:
        async with container.sessions() as session:
            predictions = set(await session.scalars(select(PredictionRow.id)))
            audited = set(
                await session.scalars(
                    select(AuditEventRow.request_id).where(AuditEventRow.action == "model.predict")
                )
            )
        async with container.engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(delete(table))
        return predictions, {r for r in audited if r}
    finally:
        await container.aclose()


async def _load(base: str, key: str, server: subprocess.Popen[str]) -> dict[str, str]:
    """Post predictions until enough were answered, then SIGKILL the server mid-flight."""
    answered: dict[str, str] = {}
    killed = asyncio.Event()

    async def worker(http: httpx.AsyncClient) -> None:
        while not killed.is_set():
            try:
                response = await http.post(
                    f"{base}/v1/models/credit-risk/predict",
                    json={"features": EXAMPLE_APPLICANT},
                    headers={"Authorization": f"Bearer {key}", "X-Ombud-Purpose": "credit_scoring"},
                )
            except httpx.TransportError:
                return
            if response.status_code == 200:
                answered[response.json()["prediction_id"]] = response.headers["X-Request-Id"]
            if len(answered) >= ANSWERS_BEFORE_KILL and not killed.is_set():
                killed.set()
                os.kill(server.pid, signal.SIGKILL)

    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        await asyncio.wait_for(asyncio.gather(*(worker(http) for _ in range(CONCURRENCY))), 60)
    return answered


def test_every_answered_call_survives_a_sigkill(database: str, tmp_path: Path) -> None:
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(database)),
        serving=ServingSettings(artifact_dir=tmp_path / "artifacts"),
    )
    key = asyncio.run(_prepare(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
    env.update(
        OMBUD_DATABASE__URL=database,
        OMBUD_SERVING__ARTIFACT_DIR=str(tmp_path / "artifacts"),
        OMBUD_JOBS__EMBEDDED_WORKER="false",
        OMBUD_CRYPTO__KEYRING_PATH=str(tmp_path / "keyring.json"),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "ombud", "serve", "--port", "0"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert "listening on" in first, first
        base = first.split()[-1]
        answered = asyncio.run(_load(base, key, server))
    finally:
        server.kill()
        server.wait(timeout=10)

    assert server.returncode == -signal.SIGKILL
    assert len(answered) >= ANSWERS_BEFORE_KILL
    predictions, audited_requests = asyncio.run(_stored(settings))
    assert set(answered) <= predictions
    assert set(answered.values()) <= audited_requests
