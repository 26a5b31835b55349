"""The ``ombud`` command as a user runs it: a real process on a real SQLite file."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.demo import OMBUD, demo_env, running_demo


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return demo_env(tmp_path)


def ombud(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMBUD, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_apikeys_create_list_revoke(env: dict[str, str]) -> None:
    assert ombud(env, "migrate").returncode == 0

    created = ombud(env, "apikeys", "create", "--tenant", "acme", "--role", "analyst")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("omb_")
    prefix = token.split("_")[1]

    listed = ombud(env, "apikeys", "list", "--tenant", "acme", "--json")
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["prefix"] == prefix
    assert row["roles"] == ["analyst"]
    assert row["revoked_at"] is None
    assert token not in listed.stdout

    assert ombud(env, "apikeys", "revoke", prefix).returncode == 0
    listed = ombud(env, "apikeys", "list", "--json")
    assert json.loads(listed.stdout)["revoked_at"] is not None

    again = ombud(env, "apikeys", "revoke", prefix)
    assert again.returncode == 1
    assert "no live API key" in again.stderr


def test_invalid_tenant_slug_is_refused(env: dict[str, str]) -> None:
    assert ombud(env, "migrate").returncode == 0
    result = ombud(env, "apikeys", "create", "--tenant", "Not Valid", "--role", "analyst")
    assert result.returncode == 1
    assert "tenant slug" in result.stderr


def test_demo_refuses_production_mode(env: dict[str, str]) -> None:
    result = ombud({**env, "OMBUD_ENV": "prod"}, "demo")
    assert result.returncode == 2
    assert "demo value" in result.stderr


@pytest.fixture
def demo_server(env: dict[str, str]) -> Iterator[list[str]]:
    """``ombud demo --port 0``; yields the lines it printed before serving."""
    with running_demo(env) as lines:
        yield lines


def test_demo_prints_url_docs_key_and_a_working_curl(demo_server: list[str]) -> None:
    banner = "\n".join(demo_server)
    urls = [word for line in demo_server for word in line.split() if word.startswith("http")]
    assert urls[0].startswith("http://127.0.0.1:")
    assert urls[1] == urls[0] + "/docs"
    assert "omb_" in banner
    curl = demo_server[-1]
    assert curl.startswith("curl ")

    result = subprocess.run(
        ["bash", "-c", curl + " -w '\\n%{http_code}'"], capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200", result.stdout + result.stderr
    prediction = json.loads(body)
    assert prediction["model"] == "credit-risk"
    assert prediction["decision"] in {"approve", "decline"}
