"""Benchmark: online feature reads, for one entity and for ten, from Redis and from the embedded
(database) store, in one run, in-process.

Two layers are timed separately, so the consent check's cost is visible: the store adapter's
``read`` alone, and ``OnlineFeatures.get_features`` (``feature.read``, then the data access
layer's purpose and consent check of every subject, audited, then the read). SQLite in a
temporary directory; Redis at ``--redis`` (its ``ombud:features:`` keys of the bench tenant are
deleted at the end).

    .venv/bin/python bench/features.py [--reads 2000] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
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
    RedisSettings,
    Settings,
)
from ombud.container import Container
from ombud.features.online import DatabaseOnlineStore, OnlineRecord, OnlineStore, RedisOnlineStore
from ombud.features.online_reads import OnlineFeatures
from ombud.features.online_regional import RegionalOnlineStore
from ombud.identity.principal import Principal
from ombud.identity.repository import IdentityRepository
from ombud.identity.service import IdentityService
from ombud.storage import migrate

VIEWS = Path(__file__).resolve().parents[1] / "features"
VIEW = "credit_applicant_v1"
PURPOSE = "credit_scoring"


def _ms(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=1000, method="inclusive")[int(q * 1000) - 1] * 1000


async def _time(call: Callable[[], Awaitable[object]], reads: int) -> tuple[float, float]:
    for _ in range(min(200, reads)):  # warm up connections and caches
        await call()
    samples = []
    for _ in range(reads):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return _ms(samples, 0.5), _ms(samples, 0.99)


async def _principal(container: Container) -> tuple[str, Principal]:
    async with container.sessions.begin() as session:
        identity = IdentityService(
            IdentityRepository(session), container.api_key_pepper, container.clock
        )
        token = (await identity.create_api_key(tenant="bench", roles=("service",))).token
        return token, await identity.authenticate(token)


async def _subjects(http: httpx.AsyncClient, token: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    ids = []
    for i in range(count):
        body = {"region": "eu", "name": f"Bench {i}", "email": f"b{i}@example.org"}
        subject = (await http.post("/v1/subjects", json=body, headers=headers)).json()["subject_id"]
        consent = {"purpose": PURPOSE, "status": "granted", "source": "web_form"}
        await http.post(f"/v1/subjects/{subject}/consents", json=consent, headers=headers)
        ids.append(subject)
    return ids


async def _bench(reads: int, redis_url: str, tmp: Path) -> list[tuple[str, int, float, float]]:
    settings = Settings(
        database=DatabaseSettings(url=SecretStr(f"sqlite:///{tmp / 'ombud.db'}")),
        redis=RedisSettings(url=SecretStr(redis_url)),
        crypto=CryptoSettings(keyring_path=tmp / "keyring.json"),
        jobs=JobsSettings(embedded_worker=False),
        features=FeatureSettings(views_dir=VIEWS),
    )
    engine_owner = Container.create(settings)
    await migrate.upgrade(engine_owner.engine)
    await engine_owner.aclose()
    app = create_app(settings)
    results: list[tuple[str, int, float, float]] = []
    async with app.router.lifespan_context(app):
        container: Container = app.state.container
        token, principal = await _principal(container)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench"
        ) as http:
            subjects = await _subjects(http, token, 10)
        online = container.online_features
        assert container.redis is not None
        stores: list[OnlineStore] = [
            RedisOnlineStore(container.redis),
            DatabaseOnlineStore(container.sessions),
        ]
        now = container.clock.now()
        record = OnlineRecord(
            values={f.name: 1.0 for f in online.catalog.view("credit_applicant").features},
            event_ts=now - timedelta(minutes=1), materialized_at=now,
        )  # fmt: skip
        try:
            for store in stores:
                await store.write(principal.tenant_id, VIEW, dict.fromkeys(subjects, record))
                regional = RegionalOnlineStore(
                    {s.name: store for s in container.regions.stores}, container.regions
                )
                reader = OnlineFeatures(
                    online.catalog, regional, container.data_access, container.authorizer,
                    container.clock, container.metrics,
                )  # fmt: skip
                for n in (1, 10):
                    wanted = subjects[:n]

                    async def raw(s: OnlineStore = store, w: list[str] = wanted) -> object:
                        return await s.read(principal.tenant_id, VIEW, w)

                    async def checked(r: OnlineFeatures = reader, w: list[str] = wanted) -> object:
                        return await r.get_features(VIEW, w, PURPOSE, principal=principal)

                    results.append((f"{store.name} store read", n, *await _time(raw, reads)))
                    checked_reads = max(50, reads // (5 * n))
                    timing = await _time(checked, checked_reads)
                    results.append((f"{store.name} get_features (consent checked)", n, *timing))
        finally:
            keys = [k async for k in container.redis.scan_iter(match="ombud:features:*")]
            if keys:
                await container.redis.delete(*keys)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(_bench(args.reads, args.redis, Path(tmp)))
    print("| read | entities | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    for name, n, p50, p99 in results:
        print(f"| {name} | {n} | {p50:.3f} | {p99:.3f} |")


if __name__ == "__main__":
    main()
