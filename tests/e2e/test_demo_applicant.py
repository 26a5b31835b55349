"""``ombud demo`` seeds a data subject whose standing data is in the feature store: the banner's
second curl sends only the application and scores the same as the first, which sends it all."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.demo import demo_env, running_demo

SUBJECT = "X-Ombud-Subject: "


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return demo_env(tmp_path)


@contextmanager
def _demo(environment: dict[str, str]) -> Iterator[list[str]]:
    """``ombud demo --port 0`` serving; yields the two curl lines of its banner."""
    with running_demo(environment, curls=2) as lines:
        yield [line for line in lines if line.startswith("curl ")]


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
