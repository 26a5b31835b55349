"""All SQL of the outcomes domain, and the prediction counts its KPIs are measured against."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ombud.outcomes.kpis import Labelled
from ombud.outcomes.tables import PredictionOutcomeRow
from ombud.predictions.tables import PredictionRow

Group = tuple[int, str | None]
"""A model version and the arm that served it (``None``: no deployment)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Which predictions a KPI query covers: one model, ``[since, until)``, optionally one
    tenant (``None``: every tenant) and one version."""

    model: str
    since: datetime
    until: datetime
    tenant_id: str | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class LabelCounts:
    labelled: int
    positives: int


class OutcomeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, prediction_id: str) -> PredictionOutcomeRow | None:
        return await self._session.get(PredictionOutcomeRow, prediction_id)

    async def add(self, row: PredictionOutcomeRow) -> bool:
        """Insert ``row``; ``False`` when an outcome of its prediction exists already (a
        concurrent first recording won), leaving the unit of work usable."""
        try:
            async with self._session.begin_nested():
                self._session.add(row)
        except IntegrityError:
            return False
        return True

    async def replace(self, prediction_id: str, revision: int, values: dict[str, Any]) -> bool:
        """Apply ``values`` if the outcome is still at ``revision`` (which they must advance);
        ``False`` when another correction got there first."""
        result = await self._session.execute(
            update(PredictionOutcomeRow)
            .where(
                PredictionOutcomeRow.prediction_id == prediction_id,
                PredictionOutcomeRow.revision == revision,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def prediction_counts(self, scope: Scope) -> dict[Group, int]:
        """Predictions made in the scope, per version and arm."""
        p = PredictionRow
        stmt = (
            select(p.model_version, p.arm, func.count())
            .where(*_filters(scope, p.model_name, p.created_at, p.tenant_id, p.model_version))
            .group_by(p.model_version, p.arm)
        )
        return {(v, arm): int(n) for v, arm, n in await self._session.execute(stmt)}

    async def label_counts(self, scope: Scope) -> dict[Group, LabelCounts]:
        """Labelled predictions of the scope and how many of them are positive."""
        o = PredictionOutcomeRow
        stmt = (
            select(o.model_version, o.arm, func.count(), func.coalesce(func.sum(o.label), 0))
            .where(*_outcome_filters(scope))
            .group_by(o.model_version, o.arm)
        )
        return {
            (v, arm): LabelCounts(int(n), int(pos))
            for v, arm, n, pos in await self._session.execute(stmt)
        }

    async def labelled(self, scope: Scope, *, limit: int) -> list[tuple[Group, Labelled]]:
        """The scope's labelled predictions, newest first, at most ``limit``."""
        o = PredictionOutcomeRow
        stmt = (
            select(o.model_version, o.arm, o.score, o.threshold, o.label)
            .where(*_outcome_filters(scope))
            .order_by(o.predicted_at.desc(), o.prediction_id)
            .limit(limit)
        )
        return [
            ((v, arm), Labelled(score=score, threshold=threshold, label=label))
            for v, arm, score, threshold, label in await self._session.execute(stmt)
        ]


def _outcome_filters(scope: Scope) -> list[ColumnElement[bool]]:
    o = PredictionOutcomeRow
    return _filters(scope, o.model_name, o.predicted_at, o.tenant_id, o.model_version)


def _filters(
    scope: Scope,
    model: InstrumentedAttribute[str],
    at: InstrumentedAttribute[datetime],
    tenant: InstrumentedAttribute[str],
    version: InstrumentedAttribute[int],
) -> list[ColumnElement[bool]]:
    """The scope as WHERE clauses on a table's model, time, tenant and version columns."""
    clauses = [model == scope.model, at >= scope.since, at < scope.until]
    if scope.tenant_id is not None:
        clauses.append(tenant == scope.tenant_id)
    if scope.version is not None:
        clauses.append(version == scope.version)
    return clauses
