"""Builds the deployments domain's jobs from the container (which must not know about them)."""

from __future__ import annotations

from ombud.container import Container
from ombud.deployments.monitor import DeploymentJobs, RollbackMonitor


def deployment_jobs(container: Container) -> DeploymentJobs:
    """The ``deployments.monitor`` handler for a worker of ``container``'s process."""
    monitor = RollbackMonitor(
        container.sessions,
        container.records,
        container.metrics,
        container.deployments.routing.invalidate,
    )
    return DeploymentJobs(monitor=monitor)
