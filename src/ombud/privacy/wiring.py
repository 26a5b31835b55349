"""Builds the privacy domain's services and job handlers from the container."""

from __future__ import annotations

from dataclasses import dataclass

from ombud.container import Container
from ombud.features.declarations import load_views
from ombud.jobs.registry import JobRegistry
from ombud.privacy.erasure import ErasureDeps, ErasureJobs
from ombud.privacy.retention import RetentionJobs


@dataclass(frozen=True)
class PrivacyJobs:
    """The privacy domain's job handlers: the erasure cascade and the retention purge."""

    erasure: ErasureJobs
    retention: RetentionJobs

    def register(self, registry: JobRegistry) -> None:
        self.erasure.register(registry)
        self.retention.register(registry)


def lookup_key(container: Container) -> bytes:
    """Key of the HMACs that index external ids and erased subjects
    (``OMBUD_PRIVACY__LOOKUP_SECRET``, else the API-key pepper)."""
    secret = container.settings.privacy.lookup_secret
    return secret.get_secret_value().encode() if secret else container.api_key_pepper


def erasure_deps(container: Container) -> ErasureDeps:
    llm_cache = container.llm.cache if container.settings.llm.cache_enabled else None
    return ErasureDeps(
        regions=container.regions, sessions=container.sessions, keys=container.keys,
        records=container.records, clock=container.clock, authorizer=container.authorizer,
        lookup_key=lookup_key(container), redis=container.redis, llm_cache=llm_cache,
        max_attempts=container.settings.jobs.max_attempts,
    )  # fmt: skip


def privacy_jobs(container: Container) -> PrivacyJobs:
    """The ``privacy.erasure`` and ``privacy.retention`` handlers for a worker of
    ``container``'s process."""
    retention = RetentionJobs(
        regions=container.regions, purposes=container.data_access.catalog,
        views=load_views(container.settings.features.views_dir), records=container.records,
        cron=container.settings.privacy.retention_cron,
    )  # fmt: skip
    return PrivacyJobs(ErasureJobs(erasure_deps(container)), retention)
