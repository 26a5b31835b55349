"""The request path's share of the deployments domain: one routing cache and one shadow mirror
per process, shared by the ``model.resolve`` and ``model.shadow`` stages and the monitor."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.config import DeploymentSettings
from ombud.core.clock import Clock
from ombud.deployments.routing import DeploymentRouting
from ombud.deployments.shadow import ShadowMirror
from ombud.observability.metrics import Metrics
from ombud.records.writer import RecordWriter
from ombud.serving.ports import AnyRuntime


@dataclass(frozen=True)
class DeploymentTraffic:
    routing: DeploymentRouting
    shadow: ShadowMirror

    @classmethod
    def build(
        cls,
        settings: DeploymentSettings,
        *,
        sessions: async_sessionmaker[AsyncSession],
        runtime: AnyRuntime,
        records: RecordWriter,
        metrics: Metrics,
        clock: Clock,
    ) -> DeploymentTraffic:
        return cls(
            routing=DeploymentRouting(sessions, clock, settings.cache_ttl_s),
            shadow=ShadowMirror(runtime, records, metrics, clock, settings),
        )

    async def aclose(self) -> None:
        await self.shadow.aclose()
