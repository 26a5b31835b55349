"""Serving a training set to a data scientist: audited, within the caller's tenant.

The audit event (counts only) is written before the events are read, so a refused or failed
read still leaves the request on the record.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.ids import new_id
from ombud.features.definitions import FeatureView
from ombud.features.historical import historical_features
from ombud.features.schemas import HistoricalRequest, TrainingSet
from ombud.identity.principal import Principal
from ombud.records.writer import RecordWriter

ACTION = "feature.historical"


class TrainingSetService:
    """Point-in-time training sets over one session (nothing here commits it).

    Args:
        session: The caller's unit of work.
        clock: Audit times.
        records: Where audit events go (the group-commit record writer).
        max_events: Most events one request may read.
    """

    def __init__(
        self, session: AsyncSession, clock: Clock, records: RecordWriter, *, max_events: int
    ) -> None:
        self._session = session
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
        in ``exclude`` (those withdrawn from training) are left out.

        Raises:
            InvalidRequest: the rows need more events than one request may read.
        """
        rows = [(r.entity_id, r.label_time) for r in body.rows]
        left_out = sum(1 for entity, _ in rows if entity in exclude)
        await self._audit(principal, view, len(rows), left_out, request_id)
        result = await historical_features(
            self._session, principal.tenant_id, view, rows,
            exclude=exclude, max_events=self._max_events,
        )  # fmt: skip
        return TrainingSet(
            view=view.id, name=view.name, version=view.version, entity=view.entity,
            features=[f.name for f in view.features], rows=result, excluded=left_out,
        )  # fmt: skip

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
