"""Retention: the ``privacy.retention`` job deletes what outlived its retention period.

Periods come from the purposes catalog (``purposes.yaml``): each data category and each
purpose has ``retention_days``. Every night (``30 3 * * *``, UTC,
``OMBUD_PRIVACY__RETENTION_CRON``) and whenever enqueued, on
every store (the main database and each regional one):

- ``feature_events``: an event type's events are kept for the longest retention of the data
  categories of the views built from it (a type no view reads: the longest category retention
  of the catalog); older events are deleted;
- ``online_features``: materialized rows older than their view's categories' retention (they
  are recomputed from the events that remain at the next materialization);
- ``subject_access_log``: an access is kept for its purpose's retention;
- ``predictions`` (main database) with their explanations, outcomes and shadow scores: a
  prediction is kept for its purpose's retention (one without a purpose: the longest purpose
  retention of the catalog);
- ``reviews`` (main database): a decided review's ``inputs`` and ``explanation`` (the data about
  the subject a reviewer saw) are blanked once its decision is older than the longest purpose
  retention of the catalog (a review does not record its purpose); the decision, its
  justification and the review's history stay as the record of the human decision.

Deletes go in batches of :data:`BATCH` rows (no long lock on a big table) until none is left.
The run audits what it removed (``privacy.retention``: rows per store and table, and each
cutoff applied). It is idempotent: running it again at the same time removes nothing more.
Consents and preferences are kept with their subject (their history is the proof of what the
subject chose) and go when the subject is erased; a withdrawn consent stops every further use
at the data access layer, and the data stays only as long as another purpose's retention
allows. The audit trail follows its own rules (docs/audit.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.ids import new_id
from ombud.deployments.tables import ShadowResultRow
from ombud.features.definitions import FeatureCatalog
from ombud.features.tables import FeatureEventRow, OnlineFeatureRow
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.outcomes.tables import PredictionOutcomeRow
from ombud.predictions.explanations import PredictionExplanationRow
from ombud.predictions.tables import PredictionRow
from ombud.privacy.purposes import PurposeCatalog
from ombud.privacy.regions import MAIN, RegionalStores
from ombud.privacy.tables import SubjectAccessRow
from ombud.records.writer import RecordWriter
from ombud.review.schemas import ReviewStatus
from ombud.review.tables import ReviewRow

log = logging.getLogger(__name__)

RETENTION_JOB = "privacy.retention"
RETENTION_SCHEDULE = "privacy.retention.nightly"
RETENTION_CRON = "30 3 * * *"
BATCH = 1000
ACTOR = "system:retention"


@dataclass(frozen=True)
class RetentionJobs:
    """Handler of ``privacy.retention`` (see the module docstring)."""

    regions: RegionalStores
    purposes: PurposeCatalog
    views: FeatureCatalog
    records: RecordWriter
    cron: str = RETENTION_CRON

    def register(self, registry: JobRegistry) -> None:
        registry.register(RETENTION_JOB, self.run)
        registry.schedule(RETENTION_SCHEDULE, RETENTION_JOB, self.cron)

    async def run(self, context: JobContext) -> None:
        removed, cutoffs = await self.purge(context.clock.now())
        await self.records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=context.clock.now(), actor=ACTOR,
                action=RETENTION_JOB, resource="retention", outcome=Outcome.SUCCESS,
                detail={"removed": removed, "cutoffs": cutoffs},
            )
        ])  # fmt: skip
        log.info("retention: removed %s", removed)

    async def purge(self, now: datetime) -> tuple[dict[str, dict[str, int]], dict[str, str]]:
        """Delete everything past its retention at ``now``: the rows removed per store and
        table, and the cutoffs applied (``<table>:<event type, view or purpose>`` → time)."""
        rules = self._rules(now)
        removed: dict[str, dict[str, int]] = {}
        for store in self.regions.stores:
            counts: dict[str, int] = {}
            for table, _, condition in rules:
                if table == "predictions" and store.name != MAIN:
                    continue
                counts[table] = counts.get(table, 0) + await _delete_batched(
                    store.sessions, table, condition
                )
            if store.name == MAIN:
                counts["reviews"] = await _blank_reviews(store.sessions, self._review_cutoff(now))
            removed[store.name] = {t: n for t, n in counts.items() if n}
        cutoffs = {f"{t}:{k}": c.isoformat() for t, k, c in self._cutoffs(now)}
        return {s: c for s, c in removed.items() if c}, cutoffs

    def _cutoffs(self, now: datetime) -> list[tuple[str, str, datetime]]:
        categories = self.purposes.categories
        longest_category = max((c.retention_days for c in categories.values()), default=3650)
        longest_purpose = max(
            (p.retention_days for p in self.purposes.purposes.values()), default=3650
        )
        found: list[tuple[str, str, datetime]] = []
        by_type: dict[str, int] = {}
        for view in self.views.views.values():
            days = max((categories[c].retention_days for c in view.data_categories
                        if c in categories), default=longest_category)  # fmt: skip
            by_type[view.source] = max(by_type.get(view.source, 0), days)
            found.append(("online_features", view.id, now - timedelta(days=days)))
        for event_type in self.views.event_types:
            days = by_type.get(event_type, longest_category)
            found.append(("feature_events", event_type, now - timedelta(days=days)))
        for name, purpose in self.purposes.purposes.items():
            cutoff = now - timedelta(days=purpose.retention_days)
            found.append(("subject_access_log", name, cutoff))
            found.append(("predictions", name, cutoff))
        found.append(("predictions", "", now - timedelta(days=longest_purpose)))
        found.append(("reviews", "decided", self._review_cutoff(now)))
        return found

    def _review_cutoff(self, now: datetime) -> datetime:
        purposes = self.purposes.purposes.values()
        return now - timedelta(days=max((p.retention_days for p in purposes), default=3650))

    def _rules(self, now: datetime) -> list[tuple[str, str, ColumnElement[bool]]]:
        rules: list[tuple[str, str, ColumnElement[bool]]] = []
        for table, key, cutoff in self._cutoffs(now):
            if table == "reviews":
                continue
            if table == "online_features":
                o = OnlineFeatureRow
                rules.append((table, key, (o.view_id == key) & (o.materialized_at < cutoff)))
            elif table == "feature_events":
                e = FeatureEventRow
                rules.append((table, key, (e.event_type == key) & (e.event_ts < cutoff)))
            elif table == "subject_access_log":
                a = SubjectAccessRow
                rules.append((table, key, (a.purpose == key) & (a.accessed_at < cutoff)))
            else:
                p = PredictionRow
                which = p.purpose.is_(None) if key == "" else p.purpose == key
                rules.append((table, key, which & (p.created_at < cutoff)))
        return rules


_TABLES: dict[str, Any] = {
    "online_features": OnlineFeatureRow,
    "feature_events": FeatureEventRow,
    "subject_access_log": SubjectAccessRow,
    "predictions": PredictionRow,
}


async def _delete_batched(
    sessions: async_sessionmaker[AsyncSession], table: str, condition: ColumnElement[bool]
) -> int:
    """Delete the rows of ``table`` matching ``condition``, :data:`BATCH` at a time."""
    model = _TABLES[table]
    key = _key_columns(model)
    total = 0
    while True:
        async with sessions.begin() as session:
            batch = list((await session.execute(select(*key).where(condition).limit(BATCH))).all())
            if not batch:
                return total
            if table == "predictions":
                ids = [row[0] for row in batch]
                await _delete_prediction_children(session, ids)
                await session.execute(delete(PredictionRow).where(PredictionRow.id.in_(ids)))
            elif len(key) == 1:
                await session.execute(delete(model).where(key[0].in_([row[0] for row in batch])))
            else:
                for row in batch:
                    await session.execute(
                        delete(model).where(
                            *(col == value for col, value in zip(key, row, strict=True))
                        )
                    )
            total += len(batch)


def _key_columns(model: Any) -> Sequence[Any]:
    if model is OnlineFeatureRow:
        return (model.tenant_id, model.view_id, model.entity_id)
    if model is SubjectAccessRow:
        return (model.seq,)
    return (model.id,)


async def _delete_prediction_children(session: AsyncSession, ids: list[str]) -> None:
    await session.execute(
        delete(PredictionExplanationRow).where(PredictionExplanationRow.prediction_id.in_(ids))
    )
    await session.execute(
        delete(PredictionOutcomeRow).where(PredictionOutcomeRow.prediction_id.in_(ids))
    )
    await session.execute(delete(ShadowResultRow).where(ShadowResultRow.prediction_id.in_(ids)))


async def _blank_reviews(sessions: async_sessionmaker[AsyncSession], cutoff: datetime) -> int:
    """Blank the inputs and explanation of the reviews decided before ``cutoff``,
    :data:`BATCH` at a time; reviews already blank are not counted again."""
    r = ReviewRow
    decided = (r.status == ReviewStatus.DECIDED.value, r.decided_at < cutoff)
    total, after = 0, ""
    while True:
        async with sessions.begin() as session:
            stmt = select(r.id, r.inputs, r.explanation).where(*decided, r.id > after)
            batch = list((await session.execute(stmt.order_by(r.id).limit(BATCH))).all())
            if not batch:
                return total
            after = batch[-1][0]
            ids = [row[0] for row in batch if row[1] or row[2] is not None]
            if ids:
                await session.execute(
                    update(r).where(r.id.in_(ids), *decided).values(inputs={}, explanation=None)
                )
            total += len(ids)
