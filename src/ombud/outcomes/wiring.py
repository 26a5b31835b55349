"""Builds the outcomes domain's job handlers from the container (which must not know them)."""

from __future__ import annotations

from ombud.container import Container
from ombud.outcomes.jobs import KpiJobs


def kpi_jobs(container: Container) -> KpiJobs:
    """The ``outcomes.kpis`` handler for a worker of ``container``'s process."""
    settings = container.settings.outcomes
    return KpiJobs(
        metrics=container.metrics, windows=settings.kpi_windows, max_rows=settings.kpi_max_rows
    )
