"""Materialization: the ``features.materialize`` job, which fills the online store.

Every five minutes (and whenever enqueued), for each view (or the one named in the payload)
and each tenant with events of its source type (or the one named), every entity's features
are computed as of now from the offline store, with the very code that builds training sets
(:func:`~ombud.features.historical.historical_features` at label time = now), and written to
the online store. So an online value equals the historical value at the run's time.

A run is idempotent: it overwrites each entity's row with what the offline store says now, so
running it twice, or two workers at once, leaves the same values. Entities are taken
:attr:`MaterializeJobs.batch` at a time in id order (keyset pages), each page read in a short
session of its own and written before the next is read, so memory stays bounded whatever the
store holds. A page whose events exceed the read budget is split in halves; a single entity
over it is skipped and logged (its online row keeps its last value and so goes stale).

Residency: each regional store (:mod:`ombud.privacy.regions`) is materialized from its own
events into its own online store, so an entity's features never leave its home store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.core.errors import InvalidRequest, NotFound
from ombud.features.definitions import FeatureCatalog, FeatureView
from ombud.features.historical import historical_features
from ombud.features.online import OnlineRecord
from ombud.features.online_reads import find_view
from ombud.features.online_regional import RegionalOnlineStore
from ombud.features.tables import FeatureEventRow
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.observability.metrics import Metrics
from ombud.privacy.regions import RegionalStores, RegionStore

log = logging.getLogger(__name__)

MATERIALIZE_JOB = "features.materialize"
MATERIALIZE_SCHEDULE = "features.materialize.every-5-minutes"
MATERIALIZE_CRON = "*/5 * * * *"


class MaterializationRepository:
    """The SQL materialization needs beyond the point-in-time read: which tenants and
    entities have events, and when each entity's latest event happened."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def tenants(self, event_type: str) -> list[str]:
        e = FeatureEventRow
        stmt = select(e.tenant_id).where(e.event_type == event_type).distinct()
        return sorted(str(t) for t in await self._session.scalars(stmt))

    async def entities(
        self, tenant_id: str, event_type: str, *, after: str | None, limit: int
    ) -> list[str]:
        """Up to ``limit`` entity ids with events of ``event_type``, in id order, after
        ``after`` (a keyset page)."""
        e = FeatureEventRow
        clauses = [e.tenant_id == tenant_id, e.event_type == event_type]
        if after is not None:
            clauses.append(e.entity_id > after)
        stmt = select(e.entity_id).where(*clauses).distinct().order_by(e.entity_id).limit(limit)
        return [str(entity) for entity in await self._session.scalars(stmt)]

    async def latest_event_times(
        self, tenant_id: str, event_type: str, entity_ids: Sequence[str], until: datetime
    ) -> dict[str, datetime]:
        """Each entity's latest event time at or before ``until``."""
        e = FeatureEventRow
        stmt = (
            select(e.entity_id, func.max(e.event_ts))
            .where(e.tenant_id == tenant_id, e.event_type == event_type,
                   e.entity_id.in_(entity_ids), e.event_ts <= until)
            .group_by(e.entity_id)
        )  # fmt: skip
        return {str(entity): at for entity, at in await self._session.execute(stmt)}


@dataclass(frozen=True, slots=True)
class Materialized:
    """What one run did: entities written and skipped (over the read budget), all views."""

    written: int
    skipped: int


@dataclass(frozen=True)
class MaterializeJobs:
    """Handler of ``features.materialize``.

    Attributes:
        catalog: The declared views.
        store: The online store written to (each regional store's part of it).
        regions: The regional stores; each one's offline store is read (a short session per
            page) and written to its own online store.
        metrics: Holds ``ombud_features_materialized_total``.
        batch: Entities per page (``OMBUD_FEATURES__MATERIALIZE_BATCH``).
        max_events: Most events one page may read (``OMBUD_FEATURES__HISTORICAL_MAX_EVENTS``).
    """

    catalog: FeatureCatalog
    store: RegionalOnlineStore
    regions: RegionalStores
    metrics: Metrics
    batch: int
    max_events: int

    def register(self, registry: JobRegistry) -> None:
        """Register the kind and its every-five-minutes schedule."""
        registry.register(MATERIALIZE_JOB, self.run)
        registry.schedule(MATERIALIZE_SCHEDULE, MATERIALIZE_JOB, MATERIALIZE_CRON)

    async def run(self, context: JobContext) -> None:
        """Payload: ``{"view": <view id or name>, "tenant": <tenant id>}``, both optional
        (absent: every view, every tenant).

        Raises:
            ValueError: the payload names no declared view, or is malformed.
        """
        views, tenant_id = self._targets(context.payload)
        done = await self.materialize(views, tenant_id=tenant_id, now=context.clock.now())
        log.info(
            "features materialized: %d entities written, %d skipped, %d views",
            done.written, done.skipped, len(views),
        )  # fmt: skip

    def _targets(self, payload: Mapping[str, object]) -> tuple[list[FeatureView], str | None]:
        view, tenant = payload.get("view"), payload.get("tenant")
        if view is not None and not isinstance(view, str):
            raise ValueError(f"view must be a view id or name, not {view!r}")
        if tenant is not None and (not isinstance(tenant, str) or not tenant):
            raise ValueError(f"tenant must be a tenant id, not {tenant!r}")
        if view is None:
            return list(self.catalog.views.values()), tenant
        try:
            return [find_view(self.catalog, view)], tenant
        except NotFound as exc:
            raise ValueError(exc.detail) from exc

    async def materialize(
        self, views: Sequence[FeatureView], *, tenant_id: str | None, now: datetime
    ) -> Materialized:
        """Write every entity's features as of ``now`` for ``views`` (in ``tenant_id``, or
        every tenant with events)."""
        written = skipped = 0
        for store in self.regions.stores:
            for view in views:
                for tenant in await self._tenants(store, view, tenant_id):
                    w, s = await self._materialize_tenant(store, view, tenant, now)
                    written, skipped = written + w, skipped + s
                    self.metrics.features_materialized.labels(view=view.id).inc(w)
        return Materialized(written, skipped)

    async def _tenants(
        self, store: RegionStore, view: FeatureView, tenant_id: str | None
    ) -> list[str]:
        if tenant_id is not None:
            return [tenant_id]
        async with store.sessions() as session:
            return await MaterializationRepository(session).tenants(view.source)

    async def _materialize_tenant(
        self, store: RegionStore, view: FeatureView, tenant_id: str, now: datetime
    ) -> tuple[int, int]:
        written = skipped = 0
        after: str | None = None
        online = self.store.store(store.name)
        while True:
            async with store.sessions() as session:
                repository = MaterializationRepository(session)
                page = await repository.entities(
                    tenant_id, view.source, after=after, limit=self.batch
                )
                if not page:
                    return written, skipped
                records = await self._compute(session, view, tenant_id, page, now)
            # The read session is closed before the write: SQLite has one writer.
            await online.write(tenant_id, view.id, records)
            written += len(records)
            skipped += len(page) - len(records)
            after = page[-1]

    async def _compute(
        self,
        session: AsyncSession,
        view: FeatureView,
        tenant_id: str,
        entities: list[str],
        now: datetime,
    ) -> dict[str, OnlineRecord]:
        try:
            rows = await historical_features(
                session, tenant_id, view, [(e, now) for e in entities],
                max_events=self.max_events,
            )  # fmt: skip
        except InvalidRequest:
            if len(entities) == 1:
                log.warning(
                    "features.materialize: %s of tenant %s has more than %d events; skipped",
                    entities[0], tenant_id, self.max_events,
                )  # fmt: skip
                return {}
            half = len(entities) // 2
            first = await self._compute(session, view, tenant_id, entities[:half], now)
            return first | await self._compute(session, view, tenant_id, entities[half:], now)
        times = await MaterializationRepository(session).latest_event_times(
            tenant_id, view.source, entities, now
        )
        return {
            row["entity_id"]: OnlineRecord(
                values={f.name: row[f.name] for f in view.features},
                event_ts=times.get(row["entity_id"]),
                materialized_at=now,
            )
            for row in rows
        }
