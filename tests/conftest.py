"""Shared fixtures: one database per backend per test worker, the app, an HTTP client.

Storage and integration tests run on SQLite and on PostgreSQL (``OMBUD_TEST_POSTGRES_URL``).
Outside CI a missing service skips its tests; in CI (``CI`` set) it fails them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from ombud.app import create_app
from ombud.config import (
    CryptoSettings,
    DatabaseSettings,
    JobsSettings,
    RateLimitSettings,
    RedisSettings,
    ServingSettings,
    Settings,
)
from ombud.container import Container
from ombud.serving.signing import dev_key_dir, dev_key_pair
from ombud.storage import migrate
from ombud.storage.database import create_engine, database_url
from ombud.storage.tables import metadata


def service_url(variable: str, what: str) -> str:
    """The URL of a real service for tests, failing in CI and skipping elsewhere when unset."""
    url = os.environ.get(variable)
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail(f"{variable} is not set: CI must run the {what} tests")
    pytest.skip(f"set {variable} to run the {what} tests")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


async def _migrate(url: str) -> None:
    engine = create_engine(DatabaseSettings(url=SecretStr(url)))
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()


async def _admin(admin_url: str, statement: str) -> None:
    engine = create_async_engine(database_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    return service_url("OMBUD_TEST_POSTGRES_URL", "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return service_url("OMBUD_TEST_REDIS_URL", "Redis")


def _fresh_database(
    backend: str,
    name: str,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[str]:
    """A migrated, empty database of ``backend`` (a SQLite file, or a PostgreSQL database on
    the test server), dropped afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp(name) / f'{name}.db'}"
        asyncio.run(_migrate(url))
        yield url
        return
    server = request.getfixturevalue("postgres_server_url")
    database = f"{name}_{uuid4().hex[:12]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{database}"'))
    url = make_url(server).set(database=database).render_as_string(hide_password=False)
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database of each backend, private to this test worker."""
    yield from _fresh_database(request.param, "ombud_test", tmp_path_factory, request)


@pytest.fixture(scope="session")
def regional_database(
    database: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A second migrated, empty database of ``database``'s backend: the store of a region
    with a database of its own (``OMBUD_PRIVACY__REGION_DATABASES``)."""
    backend = "sqlite" if database.startswith("sqlite") else "postgres"
    yield from _fresh_database(backend, "ombud_region", tmp_path_factory, request)


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="session")
def signing_keys(artifact_dir: Path) -> tuple[Path, Path]:
    """The session's artifact-signing key pair (private, public): the pair dev mode uses for
    ``artifact_dir``, so servers started without keys trust what the tests sign."""
    return dev_key_pair(dev_key_dir(ServingSettings(artifact_dir=artifact_dir)))


@pytest.fixture
def settings(database: str, artifact_dir: Path, signing_keys: tuple[Path, Path]) -> Settings:
    return Settings(
        database=DatabaseSettings(url=SecretStr(database)),
        serving=ServingSettings(
            artifact_dir=artifact_dir,
            inference_threads=2,
            signing_private_key=signing_keys[0],
            signing_public_keys=[signing_keys[1]],
        ),
        redis=RedisSettings(),
        # A keyring per test worker: never the working directory's var/keyring.json.
        crypto=CryptoSettings(keyring_path=artifact_dir.parent / "keyring.json"),
        # Job tests drive their own workers; the embedded one is tested on its own.
        jobs=JobsSettings(embedded_worker=False),
        # Default rates (50/s, burst 100 per key); room for the load tests' concurrent calls.
        ratelimit=RateLimitSettings(max_concurrent_per_key=256),
    )


async def empty_database(container: Container) -> None:
    """Delete every row of the main database and of every regional one the container opened."""
    engines = [container.engine]
    if "regions" in container.__dict__:
        engines += [store.engine for store in container.regions.stores[1:]]
    for engine in engines:
        async with engine.begin() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(delete(table))


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running; the database is emptied afterwards."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application
        await empty_database(application.state.container)


@pytest.fixture
def container(app: FastAPI) -> Container:
    result: Container = app.state.container
    return result


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
        yield http
