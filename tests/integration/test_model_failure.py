"""A model that raises on valid input: a clear, audited 500 problem, and no prediction record."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ombud.audit.events import Outcome
from ombud.container import Container
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer, prediction_count

pytestmark = pytest.mark.anyio


async def test_a_model_error_is_a_500_problem_and_is_audited(
    client: httpx.AsyncClient,
    container: Container,
    api_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(model: Any, features: dict[str, Any]) -> float:
        raise ValueError("Input contains NaN")

    before = await prediction_count(container)
    monkeypatch.setattr(container.runtime, "score", broken)
    response = await client.post(PREDICT, json=applicant(), headers=bearer(api_key))

    assert response.status_code == 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith(":model_error")
    assert "failed to score" in body["detail"]
    assert "NaN" not in body["detail"]  # the model's own message stays in the server's log
    assert await prediction_count(container) == before
    events = await audit_for(container, response.headers["x-request-id"])
    assert [e.outcome for e in events] == [Outcome.ERROR]
