"""Composition root: settings → adapters → services, built once per process and closed at exit."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ombud.authz import Authorizer
from ombud.config import Settings
from ombud.core.clock import Clock, SystemClock
from ombud.crypto import KeyManager, build_key_manager
from ombud.identity.key_cache import ApiKeyCache
from ombud.identity.oidc import TokenVerifier, build_token_verifier
from ombud.jobs.queue import DatabaseJobQueue
from ombud.observability.metrics import Metrics
from ombud.policy import PolicyEngine, RegoDecider, default_bundle_dir
from ombud.policy.log import RecordsDecisionLog
from ombud.ratelimit import (
    ConcurrencyLimiter,
    RateLimiter,
    build_concurrency_limiter,
    build_rate_limiter,
    parse_trusted_proxies,
)
from ombud.ratelimit.client_ip import IPNetwork
from ombud.records.writer import GroupCommitWriter
from ombud.serving.artifacts import ArtifactStore, LocalArtifactStore
from ombud.serving.runtime import ModelRuntime
from ombud.storage.database import create_engine, create_sessionmaker

if TYPE_CHECKING:
    from ombud.llm.services import LlmServices


@dataclass
class Container:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    records_engine: AsyncEngine
    redis: Redis | None
    artifacts: ArtifactStore
    runtime: ModelRuntime
    records: GroupCommitWriter
    metrics: Metrics
    authorizer: Authorizer
    policy: PolicyEngine
    jobs: DatabaseJobQueue
    rate_limiter: RateLimiter
    concurrency: ConcurrencyLimiter
    token_verifier: TokenVerifier | None

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None) -> Container:
        """Build every long-lived object. Connections open lazily, on first use."""
        engine = create_engine(settings.database)
        sessions = create_sessionmaker(engine)
        # The record writer gets a pool of its own, so requests holding connections can never
        # starve the commits they are waiting for.
        records_engine = create_engine(settings.database)
        artifacts = LocalArtifactStore(settings.serving.artifact_dir)
        redis_url = settings.redis.url
        metrics = Metrics()
        records = GroupCommitWriter(create_sessionmaker(records_engine), metrics)
        clock = clock or SystemClock()
        policy = PolicyEngine(
            settings.policy.bundle_dir or default_bundle_dir(),
            clock=clock,
            log=RecordsDecisionLog(records),
            reload_interval_s=settings.policy.reload_interval_s,
            decision_cache_size=settings.policy.decision_cache_size,
        )
        redis = (
            Redis.from_url(
                redis_url.get_secret_value(), socket_timeout=2.0, socket_connect_timeout=2.0
            )
            if redis_url is not None
            else None
        )
        return cls(
            settings=settings,
            clock=clock,
            engine=engine,
            sessions=sessions,
            records_engine=records_engine,
            redis=redis,
            artifacts=artifacts,
            runtime=ModelRuntime(
                artifacts,
                threads=settings.serving.inference_threads,
                settings=settings.serving,
                clock=clock,
            ),
            records=records,
            metrics=metrics,
            authorizer=Authorizer(RegoDecider(policy)),
            policy=policy,
            jobs=DatabaseJobQueue(sessions, clock, settings.jobs),
            rate_limiter=build_rate_limiter(settings.ratelimit, redis, clock, metrics),
            concurrency=build_concurrency_limiter(settings.ratelimit, metrics),
            token_verifier=build_token_verifier(settings, clock),
        )

    @cached_property
    def keys(self) -> KeyManager:
        """Key management, built on first use: commands that never encrypt (``migrate``) do not
        need the keyring, which outside dev mode must exist."""
        return build_key_manager(self.settings, self.sessions, self.clock)

    @cached_property
    def llm(self) -> LlmServices:
        """The LLM gateway's catalog, router, upstream client, cache and budgets."""
        from ombud.llm.services import LlmServices

        return LlmServices(
            self.settings, sessions=self.sessions, keys=self.keys, redis=self.redis,
            clock=self.clock, metrics=self.metrics,
        )  # fmt: skip

    @cached_property
    def api_key_cache(self) -> ApiKeyCache:
        return ApiKeyCache(self.clock, ttl_s=self.settings.security.api_key_cache_ttl_s)

    @cached_property
    def trusted_proxies(self) -> tuple[IPNetwork, ...]:
        return parse_trusted_proxies(self.settings.ratelimit.trusted_proxies)

    @property
    def api_key_pepper(self) -> bytes:
        return self.settings.security.api_key_pepper.get_secret_value().encode()

    async def aclose(self) -> None:
        if "llm" in self.__dict__:
            await self.llm.aclose()
        await self.runtime.aclose()
        await self.records.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.records_engine.dispose()
        await self.engine.dispose()
