"""The rollback monitor: the ``deployments.monitor`` job, every minute.

For each active canary or A/B deployment it looks at the last ``window_s`` seconds of the
candidate arm: its error rate (failed invocations over all its calls), the 99th percentile of
its model latency, and the population stability index (PSI) of its scores against the stable
arm's. Once the candidate arm has seen ``min_requests`` calls, any breached guard rolls the
deployment back: status, history entry, audit event with the numbers, and
``ombud_deployment_rollbacks_total{model,reason}``.

The numbers are read in the job's transaction; each rollback is a transaction of its own, so one
deployment that was ended or changed meanwhile (by hand, or by another worker) neither undoes the
others nor leaves a success event behind: one that already ended is skipped before anything is
audited, and one that changed between the check and the write gets its event compensated (see
:mod:`ombud.deployments.service`). A rollback committed by a job attempt that then fails is not
repeated by the retry: the deployment is no longer active. This process's routing cache forgets a
model only once its rollback committed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.core.clock import Clock
from ombud.core.errors import Conflict
from ombud.deployments.repository import ArmObservations, DeploymentRepository
from ombud.deployments.schemas import Arm, DeploymentMode, Guards
from ombud.deployments.service import AUTOMATIC, Actor, DeploymentService, Rollback
from ombud.deployments.tables import DeploymentRow
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.observability.metrics import Metrics
from ombud.records.writer import RecordWriter

log = logging.getLogger(__name__)

MONITOR_JOB = "deployments.monitor"
MONITOR_SCHEDULE = "deployments.monitor.every-minute"
MONITOR_CRON = "* * * * *"
MONITOR_ACTOR = "system:deployments.monitor"
SAMPLE_LIMIT = 50_000
"""Newest successful calls per arm that scores and latencies are computed over."""
PSI_BINS = 10
_PSI_FLOOR = 1e-4

ARMS = {DeploymentMode.CANARY: (Arm.STABLE, Arm.CANARY), DeploymentMode.AB: (Arm.A, Arm.B)}


def p99(values: Sequence[float]) -> float | None:
    """The nearest-rank 99th percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def psi(expected: Sequence[float], actual: Sequence[float], bins: int = PSI_BINS) -> float:
    """Population stability index of ``actual`` against ``expected``.

    Bins are the deciles of ``expected`` (so each holds about a tenth of it), plus one below its
    minimum and one above its maximum, so a shift out of its range always shows even when it is
    constant. Empty bins are floored at 0.01%, so one does not make the index infinite.
    """
    base = np.asarray(expected, dtype=float)
    inner = np.quantile(base, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    edges = np.unique(np.concatenate([[base.min()], inner, [np.nextafter(base.max(), np.inf)]]))
    e = np.bincount(np.searchsorted(edges, base, side="right"), minlength=len(edges) + 1)
    a = np.bincount(
        np.searchsorted(edges, np.asarray(actual, dtype=float), side="right"),
        minlength=len(edges) + 1,
    )
    e_frac = np.maximum(e / max(len(base), 1), _PSI_FLOOR)
    a_frac = np.maximum(a / max(len(actual), 1), _PSI_FLOOR)
    return float(np.sum((a_frac - e_frac) * np.log(a_frac / e_frac)))


@dataclass(frozen=True)
class Verdict:
    """What the monitor measured for one deployment, and which guards that breaches."""

    deployment_id: str
    model: str
    numbers: dict[str, Any]
    breaches: list[str]


def evaluate(
    deployment_id: str,
    model: str,
    guards: Guards,
    stable: ArmObservations,
    candidate: ArmObservations,
) -> Verdict:
    """Measure the candidate arm against ``guards``; no breach below ``min_requests`` calls."""
    requests = candidate.successes + candidate.failures
    error_rate = candidate.failures / requests if requests else 0.0
    latency = p99(candidate.latencies_ms)
    score_psi = (
        psi(stable.scores, candidate.scores)
        if stable.successes >= guards.min_requests and candidate.scores
        else None
    )
    numbers: dict[str, Any] = {
        "requests": requests, "errors": candidate.failures, "error_rate": error_rate,
        "p99_latency_ms": latency, "score_psi": score_psi,
        "stable_requests": stable.successes + stable.failures, "window_s": guards.window_s,
    }  # fmt: skip
    breaches: list[str] = []
    if requests >= guards.min_requests:
        if guards.max_error_rate is not None and error_rate > guards.max_error_rate:
            breaches.append("error_rate")
        if _above(latency, guards.max_p99_latency_ms):
            breaches.append("p99_latency")
        if _above(score_psi, guards.max_score_psi):
            breaches.append("score_psi")
    return Verdict(deployment_id, model, numbers, breaches)


def _above(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value > limit


class RollbackMonitor:
    """Checks every active canary and A/B deployment and rolls back those that breach.

    Args:
        sessions: Where each rollback gets a transaction of its own.
        records: The audit record writer.
        metrics: Where rollbacks are counted.
        on_rollback: Told each rolled-back model's name once its rollback committed (this
            process's routing cache forgets its deployment at once; other processes follow
            within their cache ttl).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        records: RecordWriter,
        metrics: Metrics,
        on_rollback: Callable[[str], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._records = records
        self._metrics = metrics
        self._on_rollback = on_rollback

    async def run(self, context: JobContext) -> None:
        """The ``deployments.monitor`` handler."""
        await self.check(context.session, context.clock)

    async def check(self, session: AsyncSession, clock: Clock) -> list[Verdict]:
        """Measure every active canary and A/B deployment (in ``session``); roll back those
        that breach, each in a transaction of its own.

        Returns:
            The verdicts that led to a rollback (not those skipped: ended or changed meanwhile).
        """
        repo = DeploymentRepository(session)
        now = clock.now()
        breached: list[Verdict] = []
        for row in await repo.active([m.value for m in ARMS]):
            verdict = await self._measure(repo, row, now)
            if verdict.breaches:
                breached.append(verdict)
        return [v for v in breached if await self._roll_back(v, clock)]

    async def _roll_back(self, verdict: Verdict, clock: Clock) -> bool:
        """Roll one deployment back and commit; False (nothing changed) on a 409."""
        rollback = Rollback(verdict.deployment_id, _reason(verdict), AUTOMATIC,
                            {**verdict.numbers, "breaches": verdict.breaches})  # fmt: skip
        async with self._sessions() as session:
            try:
                await DeploymentService(session, clock, self._records).rollback(
                    Actor(MONITOR_ACTOR), rollback
                )
            except Conflict as exc:
                await session.rollback()
                log.info("skipped the rollback of deployment %s: %s", verdict.deployment_id,
                         exc.detail)  # fmt: skip
                return False
            await session.commit()
        self._metrics.deployment_rollbacks.labels(verdict.model, verdict.breaches[0]).inc()
        log.warning("rolled back deployment %s of %s: %s", verdict.deployment_id,
                    verdict.model, rollback.reason)  # fmt: skip
        if self._on_rollback is not None:
            self._on_rollback(verdict.model)
        return True

    @staticmethod
    async def _measure(repo: DeploymentRepository, row: DeploymentRow, now: datetime) -> Verdict:
        guards = Guards.model_validate(row.guards)
        since = now - timedelta(seconds=guards.window_s)
        stable_arm, candidate_arm = ARMS[DeploymentMode(row.mode)]
        stable = await repo.observations(row.id, stable_arm.value, since, now, limit=SAMPLE_LIMIT)
        candidate = await repo.observations(
            row.id, candidate_arm.value, since, now, limit=SAMPLE_LIMIT
        )
        return evaluate(row.id, row.model_name, guards, stable, candidate)


_DESCRIBE = {
    "error_rate": ("error rate", "error_rate", "{:.3f}"),
    "p99_latency": ("p99 latency", "p99_latency_ms", "{:.1f} ms"),
    "score_psi": ("score PSI", "score_psi", "{:.3f}"),
}


def _reason(verdict: Verdict) -> str:
    n = verdict.numbers
    parts = []
    for breach in verdict.breaches:
        label, key, shape = _DESCRIBE[breach]
        parts.append(f"{label} {shape.format(n[key])}")
    return f"automatic: {', '.join(parts)} over {n['requests']} requests in {n['window_s']} s"


@dataclass(frozen=True)
class DeploymentJobs:
    """The deployments domain's jobs, built from the container by ``deployment_jobs``."""

    monitor: RollbackMonitor

    def register(self, registry: JobRegistry) -> None:
        """Register ``deployments.monitor`` and its every-minute schedule."""
        registry.register(MONITOR_JOB, self.monitor.run)
        registry.schedule(MONITOR_SCHEDULE, MONITOR_JOB, MONITOR_CRON)
