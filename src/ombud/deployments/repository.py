"""All SQL of the deployments domain."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import and_, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.deployments.records import DeploymentFailure, ShadowResult
from ombud.deployments.tables import (
    DeploymentEventRow,
    DeploymentFailureRow,
    DeploymentRow,
    ShadowResultRow,
)
from ombud.predictions.tables import PredictionRow

ACTIVE = "active"


@dataclasses.dataclass(frozen=True, slots=True)
class ShadowTotals:
    count: int
    compared: int
    errors: int
    agreements: int
    mean_abs_diff: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class ArmObservations:
    """One arm's successful calls (score, latency) in a window, and its failures."""

    successes: int
    scores: list[float]
    latencies_ms: list[float]
    failures: int


class DeploymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, row: DeploymentRow | DeploymentEventRow) -> None:
        self._session.add(row)

    async def flush(self) -> None:
        await self._session.flush()

    async def rollback(self) -> None:
        """Undo the unit of work (a change that lost a race; see the service)."""
        await self._session.rollback()

    async def get(self, deployment_id: str) -> DeploymentRow | None:
        return await self._session.get(DeploymentRow, deployment_id)

    async def refresh(self, row: DeploymentRow) -> None:
        await self._session.refresh(row)

    async def listing(
        self, *, model: str | None, status: str | None, limit: int
    ) -> Sequence[DeploymentRow]:
        stmt = select(DeploymentRow).order_by(DeploymentRow.created_at.desc()).limit(limit)
        if model is not None:
            stmt = stmt.where(DeploymentRow.model_name == model)
        if status is not None:
            stmt = stmt.where(DeploymentRow.status == status)
        return (await self._session.scalars(stmt)).all()

    async def active_for_model(self, model_name: str) -> DeploymentRow | None:
        return await self._session.scalar(
            select(DeploymentRow).where(
                DeploymentRow.model_name == model_name, DeploymentRow.status == ACTIVE
            )
        )

    async def last_ended(self, model_name: str) -> DeploymentRow | None:
        """The model's deployment that ended most recently, if any did."""
        stmt = (
            select(DeploymentRow)
            .where(DeploymentRow.model_name == model_name, DeploymentRow.status != ACTIVE)
            .order_by(DeploymentRow.ended_at.desc())
            .limit(1)
        )
        return await self._session.scalar(stmt)

    async def active(self, modes: Sequence[str]) -> Sequence[DeploymentRow]:
        stmt = (
            select(DeploymentRow)
            .where(DeploymentRow.status == ACTIVE, DeploymentRow.mode.in_(modes))
            .order_by(DeploymentRow.created_at)
        )
        return (await self._session.scalars(stmt)).all()

    async def active_using(self, version_id: str) -> str | None:
        """The id of the active deployment routing to ``version_id``, if any."""
        uses = (DeploymentRow.stable_version_id == version_id) | (
            DeploymentRow.candidate_version_id == version_id
        )
        stmt = select(DeploymentRow.id).where(DeploymentRow.status == ACTIVE, uses).limit(1)
        return await self._session.scalar(stmt)

    async def update_guarded(
        self, deployment_id: str, revision: int, values: Mapping[str, object]
    ) -> bool:
        """Update a deployment only if nobody changed it since ``revision`` was read."""
        result = await self._session.execute(
            update(DeploymentRow)
            .where(DeploymentRow.id == deployment_id, DeploymentRow.revision == revision)
            .values(**values, revision=revision + 1)
            .execution_options(synchronize_session="fetch")
        )
        return bool(getattr(result, "rowcount", 0))

    async def events(self, deployment_id: str) -> Sequence[DeploymentEventRow]:
        stmt = (
            select(DeploymentEventRow)
            .where(DeploymentEventRow.deployment_id == deployment_id)
            .order_by(DeploymentEventRow.seq)
        )
        return (await self._session.scalars(stmt)).all()

    async def next_event_seq(self, deployment_id: str) -> int:
        current = await self._session.scalar(
            select(func.max(DeploymentEventRow.seq)).where(
                DeploymentEventRow.deployment_id == deployment_id
            )
        )
        return (current or 0) + 1

    async def add_shadow_results(self, results: Sequence[ShadowResult]) -> None:
        if results:
            await self._session.execute(
                insert(ShadowResultRow), [dataclasses.asdict(r) for r in results]
            )

    async def add_failures(self, failures: Sequence[DeploymentFailure]) -> None:
        if failures:
            await self._session.execute(
                insert(DeploymentFailureRow), [dataclasses.asdict(f) for f in failures]
            )

    async def shadow_totals(
        self, deployment_id: str, stable_threshold: float, candidate_threshold: float
    ) -> ShadowTotals:
        """Counts over every shadow result of a deployment; agreement is on the decision each
        version's own threshold gives."""
        stable, candidate = ShadowResultRow.stable_score, ShadowResultRow.candidate_score
        agree = case(
            (and_(stable >= stable_threshold, candidate >= candidate_threshold), 1),
            (and_(stable < stable_threshold, candidate < candidate_threshold), 1),
            else_=0,
        )
        stmt = select(
            func.count(),
            func.count(candidate),
            func.count(ShadowResultRow.error),
            func.coalesce(func.sum(agree), 0),
            func.avg(func.abs(stable - candidate)),
        ).where(ShadowResultRow.deployment_id == deployment_id)
        count, compared, errors, agreements, mean = (await self._session.execute(stmt)).one()
        return ShadowTotals(
            count=int(count), compared=int(compared), errors=int(errors),
            agreements=int(agreements), mean_abs_diff=None if mean is None else float(mean),
        )  # fmt: skip

    async def observations(
        self, deployment_id: str, arm: str, since: datetime, until: datetime, *, limit: int
    ) -> ArmObservations:
        """An arm's successful calls in ``[since, until]`` (scores and latencies of the newest
        ``limit``), and how many of its calls failed in that time."""
        score = PredictionRow.outputs["score"].as_float()
        stmt = (
            select(score, PredictionRow.latency_ms)
            .where(
                PredictionRow.deployment_id == deployment_id,
                PredictionRow.arm == arm,
                PredictionRow.created_at >= since,
                PredictionRow.created_at <= until,
            )
            .order_by(PredictionRow.created_at.desc())
            .limit(limit)
        )
        rows = (await self._session.execute(stmt)).all()
        successes = await self._session.scalar(
            select(func.count()).where(
                PredictionRow.deployment_id == deployment_id,
                PredictionRow.arm == arm,
                PredictionRow.created_at >= since,
                PredictionRow.created_at <= until,
            )
        )
        failures = await self._session.scalar(
            select(func.count()).where(
                DeploymentFailureRow.deployment_id == deployment_id,
                DeploymentFailureRow.arm == arm,
                DeploymentFailureRow.created_at >= since,
                DeploymentFailureRow.created_at <= until,
            )
        )
        return ArmObservations(
            successes=int(successes or 0),
            scores=[float(r[0]) for r in rows if r[0] is not None],
            latencies_ms=[float(r[1]) for r in rows],
            failures=int(failures or 0),
        )
