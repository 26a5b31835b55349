"""``ombud crypto rotate`` as a user runs it, against a real SQLite file and keyring file."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from ombud.config import CryptoSettings, DatabaseSettings, Settings
from ombud.core.clock import SystemClock
from ombud.crypto import build_key_manager
from ombud.serving.signing import generate_key_pair
from ombud.storage.database import create_engine, create_sessionmaker

OMBUD = [sys.executable, "-m", "ombud"]
SECRETS = {f"sub_{n}": f"secret of subject {n}".encode() for n in range(3)}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
    environment["OMBUD_DATABASE__URL"] = f"sqlite:///{tmp_path / 'ombud.db'}"
    environment["OMBUD_SERVING__ARTIFACT_DIR"] = str(tmp_path / "artifacts")
    environment["OMBUD_CRYPTO__KEYRING_PATH"] = str(tmp_path / "keys" / "keyring.json")
    return environment


def ombud(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMBUD, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _settings(env: dict[str, str]) -> Settings:
    return Settings(
        database=DatabaseSettings(url=SecretStr(env["OMBUD_DATABASE__URL"])),
        crypto=CryptoSettings(keyring_path=Path(env["OMBUD_CRYPTO__KEYRING_PATH"])),
    )


async def _encrypt(settings: Settings) -> dict[str, bytes]:
    engine = create_engine(settings.database)
    try:
        manager = build_key_manager(settings, create_sessionmaker(engine), SystemClock())
        return {o: await manager.encrypt(v, scope="subject", owner=o) for o, v in SECRETS.items()}
    finally:
        await engine.dispose()


async def _decrypt(settings: Settings, ciphertexts: dict[str, bytes]) -> dict[str, bytes]:
    engine = create_engine(settings.database)
    try:
        manager = build_key_manager(settings, create_sessionmaker(engine), SystemClock())
        return {o: await manager.decrypt(c) for o, c in ciphertexts.items()}
    finally:
        await engine.dispose()


def test_rotate_rewraps_existing_data_keys(env: dict[str, str]) -> None:
    assert ombud(env, "migrate").returncode == 0
    settings = _settings(env)
    ciphertexts = asyncio.run(_encrypt(settings))
    keyring = Path(env["OMBUD_CRYPTO__KEYRING_PATH"])
    assert keyring.exists()

    result = ombud(env, "crypto", "rotate", "--batch-size", "2")

    assert result.returncode == 0, result.stderr
    assert "KEK version 2 is current" in result.stdout
    assert "re-wrapped 3 data keys" in result.stdout
    assert json.loads(keyring.read_text())["current"] == 2
    assert stat.S_IMODE(keyring.stat().st_mode) == 0o600
    assert asyncio.run(_decrypt(settings, ciphertexts)) == SECRETS


def test_rotate_outside_dev_needs_an_existing_keyring(env: dict[str, str]) -> None:
    # Outside dev every process needs a trusted artifact-signing key configured.
    _, public_key = generate_key_pair(Path(env["OMBUD_SERVING__ARTIFACT_DIR"]).parent / "signing")
    prod = {
        **env, "OMBUD_ENV": "prod", "OMBUD_SECURITY__API_KEY_PEPPER": "p" * 40,
        "OMBUD_SERVING__SIGNING_PUBLIC_KEYS": json.dumps([str(public_key)]),
    }  # fmt: skip
    assert ombud(prod, "migrate").returncode == 0

    result = ombud(prod, "crypto", "rotate")

    assert result.returncode == 1
    assert "no keyring" in result.stderr
    assert not Path(env["OMBUD_CRYPTO__KEYRING_PATH"]).exists()
    created = ombud(env, "crypto", "rotate")
    assert created.returncode == 0, created.stderr
    assert "re-wrapped 0 data keys" in created.stdout
    assert ombud(prod, "crypto", "rotate").returncode == 0
