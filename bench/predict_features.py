"""Benchmark: the credit-risk predict path with and without the feature fetch, in one run.

Side by side, in-process (ASGI, no network), one call at a time, over the whole governed path
(authentication, rate limits, policy, records committed before the answer):

- every input in the body (no subject: nothing is read from the feature store);
- the application only, with ``X-Ombud-Subject``: the applicant's standing data is read from
  the feature view ``credit_applicant_profile`` v1, through the data access layer (purpose and
  consent checked, the read audited and added to the access history), from the embedded
  (database) online store and from Redis.

Rate limits are raised so they do not refuse the bench's own calls. SQLite in a temporary
directory; Redis at ``--redis``.

    .venv/bin/python bench/predict_features.py [--calls 1000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from ombud.app import create_app
from ombud.config import (
    CryptoSettings,
    DatabaseSettings,
    FeatureSettings,
    JobsSettings,
    RateLimitSettings,
    RedisSettings,
    ServingSettings,
    Settings,
)
from ombud.container import Container
from ombud.demo.example import APPLICATION, EXAMPLE_APPLICANT
from ombud.demo.seed import seed_demo
from ombud.features.wiring import materialize_jobs
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.storage import migrate

VIEWS = Path(__file__).resolve().parents[1] / "features"
PREDICT = "/v1/models/credit-risk/predict"
PURPOSE = "credit_scoring"
STANDING = {
    k: v for k, v in EXAMPLE_APPLICANT.items() if k not in APPLICATION and k not in ("age", "sex")
}


def _ms(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(q * 1000) - 1] * 1000


async def _subject(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    subject: str = (await http.post("/v1/subjects", json={"region": "eu"}, headers=headers)).json()[
        "subject_id"
    ]
    consent = {"purpose": PURPOSE, "status": "granted", "source": "web_form"}
    await http.post(f"/v1/subjects/{subject}/consents", json=consent, headers=headers)
    return subject


async def _time(
    http: httpx.AsyncClient, headers: dict[str, str], body: object, calls: int
) -> tuple[float, float]:
    for _ in range(min(100, calls)):
        answer = await http.post(PREDICT, json=body, headers=headers)
        answer.raise_for_status()
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        answer = await http.post(PREDICT, json=body, headers=headers)
        samples.append(time.perf_counter() - start)
        assert answer.status_code == 200, answer.text
    return _ms(samples, 0.5), _ms(samples, 0.99)


async def _bench(
    store: str, calls: int, redis_url: str, tmp: Path
) -> list[tuple[str, float, float]]:
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(f"sqlite:///{tmp / store / 'ombud.db'}")),
        redis=RedisSettings(url=SecretStr(redis_url) if store == "redis" else None),
        crypto=CryptoSettings(keyring_path=tmp / store / "keyring.json"),
        serving=ServingSettings(artifact_dir=tmp / store / "artifacts"),
        jobs=JobsSettings(embedded_worker=False),
        features=FeatureSettings(views_dir=VIEWS, online_store=store),  # type: ignore[arg-type]
        ratelimit=RateLimitSettings(
            per_key_rate=1e6,
            per_key_burst=10**6,
            per_tenant_rate=1e6,
            per_tenant_burst=10**6,
            per_ip_rate=1e6,
            per_ip_burst=10**6,
            per_model_rate=1e6,
            per_model_burst=10**6,
        ),  # fmt: skip
    )
    owner = Container.create(settings)
    await migrate.upgrade(owner.engine)
    await owner.aclose()
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        container: Container = app.state.container
        await seed_demo(container)
        async with container.sessions.begin() as session:
            identity = IdentityService(
                IdentityRepository(session), container.api_key_pepper, container.clock
            )
            token = (await identity.create_api_key(tenant="demo", roles=("service",))).token
        headers = {"Authorization": f"Bearer {token}", "X-Ombud-Purpose": PURPOSE}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            subject = await _subject(http, headers)
            event = {
                "type": "applicant_profile", "entity_id": subject, "payload": STANDING,
                "timestamp": (container.clock.now() - timedelta(minutes=1)).isoformat(),
            }  # fmt: skip
            (await http.post("/v1/events", json=event, headers=headers)).raise_for_status()
            await materialize_jobs(container).materialize(
                list(container.online_features.catalog.views.values()), tenant_id=None,
                now=container.clock.now(),
            )  # fmt: skip
            full = {"features": EXAMPLE_APPLICANT}
            application = {"features": {k: EXAMPLE_APPLICANT[k] for k in APPLICATION}}
            with_subject = {**headers, "X-Ombud-Subject": subject}
            results = [
                (f"{store}: every input in the body", *await _time(http, headers, full, calls)),
                (f"{store}: standing data from the feature store",
                 *await _time(http, with_subject, application, calls)),
            ]  # fmt: skip
        if container.redis is not None:
            keys = [k async for k in container.redis.scan_iter(match="ombud:features:*")]
            if keys:
                await container.redis.delete(*keys)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    results: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for store in ("database", "redis"):
            (Path(tmp) / store).mkdir()
            results += asyncio.run(_bench(store, args.calls, args.redis, Path(tmp)))
    print("| predict | p50 ms | p99 ms | p50 ÷ body-only |")
    print("|---|---:|---:|---:|")
    for i, (name, p50, p99) in enumerate(results):
        baseline = results[i - i % 2][1]
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {p50 / baseline:.2f} |")


if __name__ == "__main__":
    main()
