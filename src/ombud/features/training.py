"""Serving a training set to a data scientist: audited, within the caller's tenant.

The audit event (counts only) is written before the events are read, so a refused or failed
read still leaves the request on the record.

Residency: each entity's events are read from its home store (:mod:`ombud.privacy.regions`),
a store at a time, and the rows come back in the order asked. The event budget applies to each
store's read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.ids import new_id
from ombud.features.definitions import FeatureView
from ombud.features.historical import historical_features
from ombud.features.schemas import HistoricalRequest, TrainingSet
from ombud.identity.principal import Principal
from ombud.privacy.exclusions import TrainingExclusions
from ombud.privacy.regions import MAIN, RegionalStores
from ombud.records.writer import RecordWriter

ACTION = "feature.historical"


class TrainingSetService:
    """Point-in-time training sets, read from each entity's home store.

    Args:
        regions: The stores of the regions (each read in a short session of its own).
        clock: Audit times.
        records: Where audit events go (the group-commit record writer).
        max_events: Most events one request may read.
        exclusions: The training-exclusion list (erased subjects); their rows are left out.
    """

    def __init__(
        self,
        regions: RegionalStores,
        clock: Clock,
        records: RecordWriter,
        *,
        max_events: int,
        exclusions: TrainingExclusions | None = None,
    ) -> None:
        self._regions = regions
        self._exclusions = exclusions
        self._clock = clock
        self._records = records
        self._max_events = max_events

    async def training_set(
        self,
        principal: Principal,
        view: FeatureView,
        body: HistoricalRequest,
        *,
        request_id: str | None,
        exclude: frozenset[str] = frozenset(),
    ) -> TrainingSet:
        """``view``'s features for each requested row (already authorized); rows of entities
        in ``exclude`` or on the exclusion list (those withdrawn from training) are left out.

        Raises:
            InvalidRequest: the rows need more events than one request may read.
        """
        rows = [(r.entity_id, r.label_time) for r in body.rows]
        if self._exclusions is not None:
            entities = (entity for entity, _ in rows)
            exclude = exclude | await self._exclusions.excluded(principal.tenant_id, entities)
        left_out = sum(1 for entity, _ in rows if entity in exclude)
        await self._audit(principal, view, len(rows), left_out, request_id)
        result = await self._read(principal.tenant_id, view, rows, exclude)
        return TrainingSet(
            view=view.id, name=view.name, version=view.version, entity=view.entity,
            features=[f.name for f in view.features], rows=result, excluded=left_out,
        )  # fmt: skip

    async def _read(
        self,
        tenant_id: str,
        view: FeatureView,
        rows: list[tuple[str, datetime]],
        exclude: frozenset[str],
    ) -> list[dict[str, Any]]:
        """Each store's rows from that store, merged back into the order asked."""
        homes = await self._regions.homes(
            dict.fromkeys(entity for entity, _ in rows), tenant_id=tenant_id
        )
        if len(homes) <= 1:
            store = self._regions.store(next(iter(homes), MAIN))
            async with store.sessions() as session:
                return await historical_features(
                    session, tenant_id, view, rows, exclude=exclude, max_events=self._max_events
                )
        placed: dict[int, dict[str, Any]] = {}
        for name, members in homes.items():
            local = set(members)
            indexed = [(i, row) for i, row in enumerate(rows) if row[0] in local]
            async with self._regions.store(name).sessions() as session:
                found = await historical_features(
                    session, tenant_id, view, [row for _, row in indexed],
                    exclude=exclude, max_events=self._max_events,
                )  # fmt: skip
            kept = [i for i, (entity, _) in indexed if entity not in exclude]
            placed.update(zip(kept, found, strict=True))
        return [placed[i] for i in sorted(placed)]

    async def _audit(
        self,
        principal: Principal,
        view: FeatureView,
        requested: int,
        excluded: int,
        request_id: str | None,
    ) -> None:
        detail: dict[str, Any] = {
            "rows": requested, "excluded": excluded, "returned": requested - excluded,
            "features": len(view.features),
        }  # fmt: skip
        await self._records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(), actor=principal.id,
                action=ACTION, resource=f"feature_view:{view.id}", outcome=Outcome.SUCCESS,
                tenant_id=principal.tenant_id, request_id=request_id, detail=detail,
            )
        ])  # fmt: skip
