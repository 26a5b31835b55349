"""Composition root: settings → adapters → services, built once per process and closed at exit."""

from __future__ import annotations

from dataclasses import dataclass, field
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
from ombud.serving.artifacts import ArtifactRejectionAudit, ArtifactStore, build_artifact_store
from ombud.serving.ports import AnyRuntime
from ombud.serving.remote import RemoteRuntime
from ombud.serving.runtime import ModelRuntime
from ombud.serving.signing import artifact_trust
from ombud.storage.database import create_engine, create_sessionmaker

if TYPE_CHECKING:
    from openfeature.client import OpenFeatureClient

    from ombud.deployments.traffic import DeploymentTraffic
    from ombud.features.online_reads import OnlineFeatures
    from ombud.flags.provider import FlagProvider
    from ombud.llm.services import LlmServices
    from ombud.privacy.access import DataAccess
    from ombud.privacy.regions import RegionalStores


@dataclass
class Container:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    records_engine: AsyncEngine
    redis: Redis | None
    artifacts: ArtifactStore
    local_runtime: ModelRuntime
    """Models in this process. Work that needs the estimator itself (replay, the promotion
    gate, the inference server) uses this one, whatever the serving mode."""
    records: GroupCommitWriter
    metrics: Metrics
    authorizer: Authorizer
    policy: PolicyEngine
    jobs: DatabaseJobQueue
    rate_limiter: RateLimiter
    concurrency: ConcurrencyLimiter
    token_verifier: TokenVerifier | None
    runtime: AnyRuntime = field(init=False)
    """What the request path scores with: :attr:`local_runtime`, or an inference server's
    (``OMBUD_SERVING__MODE=remote``)."""

    def __post_init__(self) -> None:
        serving = self.settings.serving
        self.runtime = (
            RemoteRuntime.from_settings(serving) if serving.mode == "remote" else self.local_runtime
        )

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None) -> Container:
        """Build every long-lived object. Connections open lazily, on first use."""
        engine = create_engine(settings.database)
        sessions = create_sessionmaker(engine)
        # The record writer gets a pool of its own, so requests holding connections can never
        # starve the commits they are waiting for.
        records_engine = create_engine(settings.database)
        # Raises ArtifactTrustError (a startup error) outside dev with no trusted public key.
        trust = artifact_trust(settings.serving, dev=settings.is_dev)
        artifacts = build_artifact_store(settings.serving, trust)
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
            local_runtime=ModelRuntime(
                artifacts,
                threads=settings.serving.inference_threads,
                settings=settings.serving,
                clock=clock,
                on_rejected=ArtifactRejectionAudit(records, clock),
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
    def flag_provider(self) -> FlagProvider:
        """ombud's OpenFeature provider: the flags table, through a snapshot kept ``ttl_s``."""
        from ombud.flags.provider import FlagProvider, database_loader

        return FlagProvider(
            database_loader(self.sessions), self.clock, ttl_s=self.settings.flags.ttl_s
        )

    @cached_property
    def flags(self) -> OpenFeatureClient:
        """An OpenFeature client over :attr:`flag_provider`, bound under a domain of this
        container's own (the SDK's provider registry is process-wide)."""
        from ombud.flags.provider import open_client

        return open_client(self.flag_provider)

    @cached_property
    def deployments(self) -> DeploymentTraffic:
        """The rollouts' routing cache and shadow mirror, shared by the request path's stages."""
        from ombud.deployments.traffic import DeploymentTraffic

        return DeploymentTraffic.build(
            self.settings.deployments, sessions=self.sessions, runtime=self.runtime,
            records=self.records, metrics=self.metrics, clock=self.clock,
        )  # fmt: skip

    @cached_property
    def regions(self) -> RegionalStores:
        """The stores of the configured regions (residency) and where each subject lives."""
        from ombud.privacy.regions import RegionalStores

        return RegionalStores.build(
            self.settings.privacy, self.settings.database, self.engine, self.sessions
        )

    @cached_property
    def data_access(self) -> DataAccess:
        """The gate before subject data (purpose, categories, consent, tenancy, policy), with
        the purposes catalog loaded and validated on first use."""
        from ombud.privacy.access import DataAccess
        from ombud.privacy.purposes import load_catalog

        return DataAccess(
            self.regions, self.clock, self.records, self.authorizer,
            load_catalog(self.settings.privacy.purposes_file),
        )  # fmt: skip

    @cached_property
    def online_features(self) -> OnlineFeatures:
        """Consent-checked online feature reads over the configured online store, with the
        declared views loaded on first use.

        Raises:
            FeatureDeclarationError: a declaration is bad.
            ValueError: a view names a data category the purposes catalog lacks, or Redis is
                asked for without a URL.
        """
        from ombud.features.declarations import load_views
        from ombud.features.online_reads import OnlineFeatures, category_problems
        from ombud.features.online_regional import build_regional_online_store

        catalog = load_views(self.settings.features.views_dir)
        problems = category_problems(catalog, self.data_access.catalog)
        if problems:
            raise ValueError("feature views: " + "; ".join(problems))
        store = build_regional_online_store(
            self.settings.features, redis=self.redis, regions=self.regions
        )
        return OnlineFeatures(
            catalog, store, self.data_access, self.authorizer, self.clock, self.metrics
        )

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
        if "deployments" in self.__dict__:
            await self.deployments.aclose()
        if "llm" in self.__dict__:
            await self.llm.aclose()
        if "flags" in self.__dict__:
            from ombud.flags.provider import close_client

            close_client(self.flag_provider)
        await self.runtime.aclose()
        if self.local_runtime is not self.runtime:
            await self.local_runtime.aclose()
        await self.records.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if "regions" in self.__dict__:
            await self.regions.aclose()
        await self.records_engine.dispose()
        await self.engine.dispose()
