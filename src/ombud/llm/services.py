"""The LLM gateway's long-lived parts, built once per process from settings."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.config import Settings
from ombud.core.clock import Clock
from ombud.crypto.service import KeyManager
from ombud.llm.cache import ResponseCache
from ombud.llm.catalog import CatalogConfig, DeploymentConfig, load_catalog
from ombud.llm.credentials import ProviderCredentials
from ombud.llm.providers import Provider, UpstreamClient, build_providers
from ombud.llm.routing import Router
from ombud.llm.types import Target
from ombud.llm.usage.budgets import BudgetService
from ombud.net.outbound import OutboundPolicy
from ombud.observability.metrics import Metrics


class LlmServices:
    """Catalog and router, the one upstream client and its adapters, credentials, cache and
    budgets. Adapters get credentials only inside the :class:`Target` of one attempt."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        keys: KeyManager,
        redis: Redis | None,
        clock: Clock,
        metrics: Metrics,
        catalog: CatalogConfig | None = None,
    ) -> None:
        llm = settings.llm
        self.settings = llm
        self.catalog = catalog or load_catalog(llm.catalog_file)
        self.router = Router(self.catalog, clock=clock, metrics=metrics)
        self.client = UpstreamClient(
            outbound=OutboundPolicy(settings.network),
            pool_size=llm.pool_size,
            pool_size_per_host=llm.pool_size_per_host,
        )
        self.providers: dict[str, Provider] = build_providers(self.client)
        self.credentials = ProviderCredentials(sessions, keys, clock)
        self.cache = (
            ResponseCache(
                clock=clock,
                metrics=metrics,
                redis=redis if llm.cache_redis else None,
                ttl_s=llm.cache_ttl_s,
                max_entries=llm.cache_max_entries,
                max_entry_bytes=llm.cache_max_entry_bytes,
            )
            if llm.cache_enabled
            else None
        )
        self.budgets = BudgetService(sessions=sessions, redis=redis, clock=clock, metrics=metrics)

    def provider(self, deployment: DeploymentConfig) -> Provider:
        kind = self.catalog.providers[deployment.provider].kind
        return self.providers[kind]

    def provider_kind(self, deployment: DeploymentConfig) -> str:
        return self.catalog.providers[deployment.provider].kind

    async def target(self, deployment: DeploymentConfig) -> Target:
        """Where one attempt at ``deployment`` goes, with its provider's secret resolved."""
        provider = self.catalog.providers[deployment.provider]
        secret = await self.credentials.secret(provider.credential) if provider.credential else None
        return Target(
            deployment=deployment.id,
            base_url=provider.base_url,
            model=deployment.model,
            api_key=secret,
            timeout_s=deployment.timeout_s,
            headers=dict(provider.headers),
            options=dict(provider.options),
        )

    async def aclose(self) -> None:
        await self.client.aclose()
