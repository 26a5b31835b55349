"""Builds the feature store's online pieces from the container (which must not know them)."""

from __future__ import annotations

from ombud.container import Container
from ombud.features.materialize import MaterializeJobs


def materialize_jobs(container: Container) -> MaterializeJobs:
    """The ``features.materialize`` handler for a worker of ``container``'s process."""
    online = container.online_features
    settings = container.settings.features
    return MaterializeJobs(
        catalog=online.catalog, store=online.store, regions=container.regions,
        metrics=container.metrics, batch=settings.materialize_batch,
        max_events=settings.historical_max_events,
    )  # fmt: skip
