"""Benchmark: audit events per second through the group-commit writer, with the hash chain,
on SQLite and PostgreSQL, in one run.

Concurrent writers each append one event at a time and wait for its commit, as calls do.

    .venv/bin/python bench/audit.py [--writers 64] [--events 4000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from uuid import uuid4

from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from ombud.audit.events import AuditEvent, Outcome
from ombud.config import DatabaseSettings, Settings
from ombud.container import Container
from ombud.core.ids import new_id
from ombud.storage import migrate
from ombud.storage.database import database_url


async def _run(url: str, writers: int, events: int) -> tuple[float, float, float]:
    container = Container.create(Settings(database=DatabaseSettings(url=SecretStr(url))))
    try:
        await migrate.upgrade(container.engine)
        per_writer = events // writers

        async def writer() -> None:
            for _ in range(per_writer):
                event = AuditEvent(
                    event_id=new_id("evt"), occurred_at=container.clock.now(), actor="prn_bench",
                    action="bench.write", resource="bench", outcome=Outcome.SUCCESS,
                    tenant_id="ten_bench", detail={"n": 1},
                )  # fmt: skip
                await container.records.write([event])

        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        elapsed = time.perf_counter() - started
        commits = container.metrics.registry.get_sample_value(
            "ombud_record_commits_total", {"outcome": "ok"}
        )
        total = per_writer * writers
        return total / elapsed, total / (commits or 1), elapsed
    finally:
        await container.aclose()


async def _postgres_database(server: str) -> tuple[str, str]:
    name = f"ombud_bench_{uuid4().hex[:8]}"
    engine = create_async_engine(database_url(server), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return database_url(server).set(database=name).render_as_string(hide_password=False), name


async def _drop(server: str, name: str) -> None:
    engine = create_async_engine(database_url(server), isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=64)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite:///{Path(tmp) / 'bench.db'}"
        rows.append(
            ("SQLite (WAL, synchronous=FULL)", *await _run(sqlite, args.writers, args.events))
        )
    if args.postgres:
        url, name = await _postgres_database(args.postgres)
        try:
            rows.append(("PostgreSQL", *await _run(url, args.writers, args.events)))
        finally:
            await _drop(args.postgres, name)
    print(f"{args.events} chained audit events, {args.writers} concurrent writers\n")
    print("| database | events/s | events per commit | seconds |")
    print("|---|---:|---:|---:|")
    for name, rate, per_commit, seconds in rows:
        print(f"| {name} | {rate:,.0f} | {per_commit:.1f} | {seconds:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
