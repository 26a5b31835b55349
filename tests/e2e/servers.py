"""Starting real ``ombud serve`` processes for tests."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from ombud.config import DatabaseSettings, ServingSettings, Settings
from ombud.container import Container
from ombud.demo.seed import seed_demo


def keyring_for(database: str) -> str:
    """One keyring per test database, outside the working directory; processes sharing a
    database share it, as replicas of one deployment do."""
    digest = hashlib.sha256(database.encode()).hexdigest()[:16]
    return str(Path(tempfile.gettempdir()) / "ombud-test-keyrings" / f"{digest}.json")


def reset_database(database: str) -> None:
    """Delete every row, so later tests on this worker's database start empty."""
    from tests.conftest import empty_database

    async def reset() -> None:
        container = Container.create(Settings(database=DatabaseSettings(url=SecretStr(database))))
        try:
            await empty_database(container)
        finally:
            await container.aclose()

    asyncio.run(reset())


def prepare_demo(database: str, artifact_dir: Path) -> str:
    """Seed the demo into ``database``; return its API key."""

    async def seed() -> str:
        settings = Settings(
            database=DatabaseSettings(url=SecretStr(database)),
            serving=ServingSettings(artifact_dir=artifact_dir),
        )
        container = Container.create(settings)
        try:
            return (await seed_demo(container)).api_key
        finally:
            await container.aclose()

    return asyncio.run(seed())


@contextmanager
def running_server(env: dict[str, str]) -> Iterator[str]:
    """``ombud serve --port 0`` with ``env``; yields its base URL, stops it afterwards."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
    clean["OMBUD_CRYPTO__KEYRING_PATH"] = keyring_for(env.get("OMBUD_DATABASE__URL", "default"))
    process = subprocess.Popen(
        [sys.executable, "-m", "ombud", "serve", "--port", "0"], env={**clean, **env},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"server did not start: {line!r}")
        yield line.split()[-1]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
