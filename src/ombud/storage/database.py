"""Engines and sessions for the configured database (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ombud.config import DatabaseSettings

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def database_url(raw: str) -> URL:
    """Parse a database URL, choosing the async driver when the URL names none.

    ``sqlite:///var/x.db`` and ``postgresql://host/db`` are accepted as written.
    """
    url = make_url(raw)
    backend = url.get_backend_name()
    if backend not in _ASYNC_DRIVERS:
        raise ValueError(f"unsupported database backend {backend!r}; use sqlite or postgresql")
    if "+" not in url.drivername:
        url = url.set(drivername=_ASYNC_DRIVERS[backend])
    return url


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    """Create the process's engine. SQLite gets WAL, foreign keys and a busy timeout."""
    url = database_url(settings.url.get_secret_value())
    pool = {"pool_size": settings.pool_size, "max_overflow": settings.max_overflow}
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, echo=settings.echo, pool=pool)
    return create_async_engine(
        url,
        echo=settings.echo,
        pool_pre_ping=True,
        pool_timeout=settings.connect_timeout_s,
        # Statement parameters hold personal data; keep them out of error messages and logs.
        hide_parameters=True,
        connect_args={
            "timeout": settings.connect_timeout_s,
            "command_timeout": settings.command_timeout_s,
        },
        **pool,
    )


def _sqlite_engine(url: URL, *, echo: bool, pool: dict[str, int]) -> AsyncEngine:
    if not url.database or url.database == ":memory:":
        raise ValueError("use a SQLite file: an in-memory database is private to one connection")
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url, echo=echo, hide_parameters=True, connect_args={"timeout": 30}, **pool
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not only a crash. Group commit amortizes the fsync.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros: an erased subject's data leaves the file.
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
