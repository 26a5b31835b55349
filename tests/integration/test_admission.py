"""Admission at the HTTP edge: quotas, headers, Redis outages, trusted proxies, two replicas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from ombud.app import create_app
from ombud.audit.events import Outcome
from ombud.config import RedisSettings, Settings
from ombud.container import Container
from ombud.demo.seed import seed_demo
from tests.conftest import empty_database
from tests.integration.helpers import PREDICT, applicant, audit_for, bearer, prediction_count

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Container, str]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        container: Container = app.state.container
        key = (await seed_demo(container)).api_key
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ombud.test") as http:
            try:
                yield http, container, key
            finally:
                await empty_database(container)


def _limits(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"ratelimit": settings.ratelimit.model_copy(update=changes)})


async def test_a_burst_past_the_key_quota_gets_429_with_retry_after_audited_and_counted(
    settings: Settings,
) -> None:
    async with serving(_limits(settings, per_key_rate=0.5, per_key_burst=3)) as (http, c, key):
        answers = [
            await http.post(PREDICT, json=applicant(), headers=bearer(key)) for _ in range(5)
        ]

        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        ok, limited = answers[0], answers[3]
        assert ok.headers["RateLimit-Limit"] == "3"
        assert ok.headers["RateLimit-Remaining"] == "2"
        assert '"per-key"' in ok.headers["RateLimit-Policy"]
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["type"] == "urn:ombud:problem:rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["RateLimit-Remaining"] == "0"
        assert await prediction_count(c) == 3
        [event] = await audit_for(c, limited.json()["request_id"])
        assert (event.outcome, event.reason) == (Outcome.DENIED, "rate_limited")
        assert event.detail["stage"] == "rate_limit"
        metrics = c.metrics.registry
        assert (
            metrics.get_sample_value(
                "ombud_denials_total", {"stage": "rate_limit", "reason": "rate_limited"}
            )
            == 2
        )
        assert (
            metrics.get_sample_value(
                "ombud_ratelimit_decisions_total", {"limit": "per-key", "decision": "limited"}
            )
            == 2
        )


async def test_clients_behind_a_trusted_proxy_get_their_own_ip_quota(settings: Settings) -> None:
    trusted = _limits(settings, per_ip_rate=0.5, per_ip_burst=2, trusted_proxies=["127.0.0.0/8"])
    async with serving(trusted) as (http, _, key):

        async def from_client(address: str) -> int:
            headers = {**bearer(key), "X-Forwarded-For": address}
            return (await http.post(PREDICT, json=applicant(), headers=headers)).status_code

        first = [await from_client("203.0.113.7") for _ in range(3)]
        other = await from_client("203.0.113.8")
    assert first == [200, 200, 429]
    assert other == 200


async def test_forwarded_headers_from_untrusted_peers_are_ignored(settings: Settings) -> None:
    untrusted = _limits(settings, per_ip_rate=0.5, per_ip_burst=2, trusted_proxies=[])
    async with serving(untrusted) as (http, _, key):
        statuses = [
            (
                await http.post(
                    PREDICT,
                    json=applicant(),
                    headers={**bearer(key), "X-Forwarded-For": f"198.51.100.{n}"},
                )
            ).status_code
            for n in range(3)
        ]
    assert statuses == [200, 200, 429]  # all counted against the real peer address


@pytest.mark.parametrize(("mode", "status"), [("fail_closed", 503), ("local_fallback", 200)])
async def test_a_redis_outage_behaves_as_configured(
    settings: Settings, mode: str, status: int
) -> None:
    down = _limits(settings, redis_failure_mode=mode).model_copy(
        update={"redis": RedisSettings(url=SecretStr("redis://127.0.0.1:1/0"))}
    )
    async with serving(down) as (http, container, key):
        response = await http.post(PREDICT, json=applicant(), headers=bearer(key))
        assert response.status_code == status
        behaviour = "fail_closed" if mode == "fail_closed" else "local"
        failures = container.metrics.registry.get_sample_value(
            "ombud_ratelimit_backend_failures_total", {"behaviour": behaviour}
        )
        assert failures is not None
        assert failures >= 1
    if status == 503:
        assert response.json()["type"] == "urn:ombud:problem:rate_limit_unavailable"
        assert int(response.headers["Retry-After"]) >= 1


@pytest.mark.redis
def test_two_replicas_sharing_redis_enforce_one_limit(
    database: str, redis_url: str, artifact_dir: Path
) -> None:
    """Two server processes, one Redis: a burst of 6 per key holds across both together."""
    from tests.e2e.servers import prepare_demo, reset_database, running_server

    key = prepare_demo(database, artifact_dir)
    env = {
        "OMBUD_DATABASE__URL": database,
        "OMBUD_SERVING__ARTIFACT_DIR": str(artifact_dir),
        "OMBUD_REDIS__URL": redis_url,
        "OMBUD_RATELIMIT__PER_KEY_RATE": "0.01",
        "OMBUD_RATELIMIT__PER_KEY_BURST": "6",
        "OMBUD_JOBS__EMBEDDED_WORKER": "false",
    }
    statuses = []
    try:
        with (
            running_server(env) as first,
            running_server(env) as second,
            httpx.Client(timeout=60) as http,
        ):
            for n in range(16):
                base = first if n % 2 == 0 else second
                response = http.post(f"{base}{PREDICT}", json=applicant(), headers=bearer(key))
                statuses.append(response.status_code)
    finally:
        reset_database(database)
    assert statuses.count(200) == 6, statuses
    assert statuses.count(429) == 10
