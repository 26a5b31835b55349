"""The catalogue of built-in job kinds and their default schedules.

``default_registry()`` is the one registry the API process (embedded worker) and every
``ombud worker`` use, so all workers can run every kind that is enqueued. New kinds are
registered here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from ombud.audit.checkpoints import (
    CHECKPOINT_CRON,
    CHECKPOINT_JOB,
    CHECKPOINT_SCHEDULE,
    checkpoint_job,
)
from ombud.jobs.registry import JobContext, JobRegistry
from ombud.jobs.repository import JobRepository

if TYPE_CHECKING:
    from ombud.deployments.monitor import DeploymentJobs
    from ombud.features.materialize import MaterializeJobs
    from ombud.outcomes.jobs import KpiJobs
    from ombud.privacy.wiring import PrivacyJobs
    from ombud.review.jobs import ReviewJobs

log = logging.getLogger(__name__)

PRUNE = "jobs.prune"
"""Deletes finished jobs (succeeded or dead) older than ``older_than_days`` (payload)."""
PRUNE_SCHEDULE = "jobs.prune.nightly"
PRUNE_CRON = "0 2 * * *"
"""Every night at 02:00 UTC."""
DEFAULT_RETENTION_DAYS = 30


async def prune_jobs(context: JobContext) -> None:
    """Delete succeeded and dead jobs that finished more than the retention period ago.

    Payload: ``{"older_than_days": int}`` (default 30). Dead jobs are kept as long as
    succeeded ones so there is time to look at their last error.
    """
    days = retention_days(context.payload)
    cutoff = context.clock.now() - timedelta(days=days)
    deleted = await JobRepository(context.session).delete_finished_before(cutoff)
    log.info("pruned %d finished jobs older than %d days", deleted, days)


def retention_days(payload: Mapping[str, object]) -> int:
    """The ``older_than_days`` of a prune payload, checked.

    Raises:
        ValueError: It is not a whole number of days of at least 1.
    """
    days = payload.get("older_than_days", DEFAULT_RETENTION_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"older_than_days must be a whole number >= 1, not {days!r}")
    return days


def default_registry(
    *,
    review: ReviewJobs | None = None,
    deployments: DeploymentJobs | None = None,
    outcomes: KpiJobs | None = None,
    features: MaterializeJobs | None = None,
    privacy: PrivacyJobs | None = None,
) -> JobRegistry:
    """Every built-in job kind with its handler, and the default schedules.

    Args:
        review: The review domain's handlers (``review.webhook``, ``review.escalate``), which
            need the container's services; build them with ``ombud.review.wiring.review_jobs``.
        deployments: The rollback monitor (``deployments.monitor``, every minute); build it
            with ``ombud.deployments.wiring.deployment_jobs``.
        outcomes: The KPI gauge refresh (``outcomes.kpis``, every five minutes); build it
            with ``ombud.outcomes.wiring.kpi_jobs``.
        features: Online-store materialization (``features.materialize``, every five
            minutes); build it with ``ombud.features.wiring.materialize_jobs``.
        privacy: The erasure cascade (``privacy.erasure``) and the retention purge
            (``privacy.retention``, nightly); build them with ``ombud.privacy.wiring.privacy_jobs``.
    """
    registry = JobRegistry()
    registry.register(PRUNE, prune_jobs)
    registry.schedule(
        PRUNE_SCHEDULE, PRUNE, PRUNE_CRON, {"older_than_days": DEFAULT_RETENTION_DAYS}
    )
    registry.register(CHECKPOINT_JOB, checkpoint_job)
    registry.schedule(CHECKPOINT_SCHEDULE, CHECKPOINT_JOB, CHECKPOINT_CRON)
    if review is not None:
        review.register(registry)
    if deployments is not None:
        deployments.register(registry)
    if outcomes is not None:
        outcomes.register(registry)
    if features is not None:
        features.register(registry)
    if privacy is not None:
        privacy.register(registry)
    return registry
