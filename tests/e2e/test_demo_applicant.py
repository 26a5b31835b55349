"""``ombud demo`` seeds a data subject whose standing data is in the feature store: the banner's
second curl sends only the application and scores the same as the first, which sends it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

OMBUD = [sys.executable, "-m", "ombud"]
SUBJECT = "X-Ombud-Subject: "


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OMBUD_")}
    environment["OMBUD_DATABASE__URL"] = f"sqlite:///{tmp_path / 'ombud.db'}"
    environment["OMBUD_SERVING__ARTIFACT_DIR"] = str(tmp_path / "artifacts")
    environment["OMBUD_CRYPTO__KEYRING_PATH"] = str(tmp_path / "keyring.json")
    return environment


@contextmanager
def _demo(environment: dict[str, str]) -> Iterator[list[str]]:
    """``ombud demo --port 0`` serving; yields the two curl lines of its banner."""
    process = subprocess.Popen(
        [*OMBUD, "demo", "--port", "0"], env=environment, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    curls: list[str] = []
    try:
        for line in process.stdout:
            if line.startswith("curl "):
                curls.append(line.rstrip("\n"))
                if len(curls) == 2:
                    break
        yield curls
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)


def _run(curl: str) -> dict[str, Any]:
    result = subprocess.run(
        ["bash", "-c", curl + " -w '\\n%{http_code}'"], capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200", result.stdout + result.stderr
    answer: dict[str, Any] = json.loads(body)
    return answer


def test_the_demo_applicant_is_scored_from_the_feature_store_across_restarts(
    env: dict[str, str],
) -> None:
    with _demo(env) as (plain, fetched):
        assert SUBJECT + "sub_" in fetched
        assert '"checking_status"' in plain
        assert '"checking_status"' not in fetched
        whole, from_store = _run(plain), _run(fetched)
        assert from_store["score"] == whole["score"]
    # A second start finds the same applicant (seeding is idempotent) and it still scores.
    with _demo(env) as (_, again):
        assert (
            again.split("X-Ombud-Subject: ")[1][:36] == fetched.split("X-Ombud-Subject: ")[1][:36]
        )
        assert _run(again)["score"] == whole["score"]
