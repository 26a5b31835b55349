"""Which version serves a call: the active deployment of its model, and the call's arm in it.

A subject's arm comes from a stable hash of (deployment id, subject) into 10,000 buckets. The
candidate's arm takes the lowest ``percent × 100`` buckets, so assignment is sticky (the same
subject always lands in the same bucket) and raising the percentage only moves subjects from
stable to the candidate, never back. A new deployment reshuffles: its id is part of the hash.

After a deployment ends, the version it ended on keeps serving (the candidate if promoted, the
stable version if rolled back or completed) until another version is approved; a model that
never had a deployment is served by its newest approved version.

How each model is served is cached per model name for ``ttl_s`` by the injected clock, like the
registry's version cache: a change made in another process applies within that time. The cache
keeps the ``max_names`` names asked for most recently (any name can be asked for, registered or
not, so it must not grow with them).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ombud.core.clock import Clock
from ombud.deployments.repository import DeploymentRepository
from ombud.deployments.schemas import Arm, DeploymentMode, DeploymentStatus
from ombud.deployments.tables import DeploymentRow
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion, VersionStatus
from ombud.registry.service import RegistryService

BUCKETS = 10_000
CACHED_NAMES = 1_024
"""Model names whose routing a process keeps, least recently asked for dropped first."""


def bucket(deployment_id: str, subject: str) -> int:
    """The subject's bucket in ``[0, BUCKETS)``; the same inputs always give the same bucket."""
    digest = hashlib.sha256(f"{deployment_id}\x00{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def candidate_buckets(percent: float) -> int:
    """How many buckets (from 0) the candidate's arm takes at ``percent``."""
    return max(0, min(BUCKETS, round(percent * BUCKETS / 100.0)))


def choose_arm(mode: DeploymentMode, percent: float, subject_bucket: int) -> Arm:
    """The arm of a subject in ``subject_bucket`` for a deployment of ``mode`` at ``percent``."""
    if mode is DeploymentMode.SHADOW:
        return Arm.STABLE
    to_candidate = subject_bucket < candidate_buckets(percent)
    if mode is DeploymentMode.CANARY:
        return Arm.CANARY if to_candidate else Arm.STABLE
    return Arm.B if to_candidate else Arm.A


@dataclass(frozen=True, slots=True)
class ActiveDeployment:
    """What the request path needs of an active deployment."""

    id: str
    model: str
    mode: DeploymentMode
    percent: float
    stable: ModelVersion
    candidate: ModelVersion

    def route(self, subject: str) -> tuple[Arm, ModelVersion]:
        """The subject's arm and the version that serves it."""
        arm = choose_arm(self.mode, self.percent, bucket(self.id, subject))
        return arm, self.candidate if arm.is_candidate else self.stable


@dataclass(frozen=True, slots=True)
class PinnedVersion:
    """The version a model's last deployment ended on (its candidate if promoted, else its
    stable version), which serves while no version was approved after that deployment ended."""

    deployment_id: str
    version: ModelVersion


Routing = ActiveDeployment | PinnedVersion | None
"""How a model's calls are served: by an active deployment, by the version the last deployment
ended on, or (None) by the newest approved version."""


class DeploymentRouting:
    """How each model name is served (see :data:`Routing`), cached for ``ttl_s``, for at most
    ``max_names`` names (an LRU)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        ttl_s: float,
        *,
        max_names: int = CACHED_NAMES,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_names = max_names
        self._cache: OrderedDict[str, tuple[float, Routing]] = OrderedDict()

    @property
    def cached_names(self) -> int:
        """How many model names are cached (not ``__len__``: an empty cache is no less there)."""
        return len(self._cache)

    async def routing(self, model: str) -> Routing:
        """The model's active deployment or pinned version; None: its newest approved serves."""
        now = self._clock.monotonic()
        cached = self._cache.get(model)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(model)
            return cached[1]
        async with self._sessions() as session:
            found = await load_routing(session, self._clock, model)
        # Kept even with a ttl of 0 (then always stale), so ``peek`` sees what a call was routed by.
        self._cache[model] = (now + self._ttl_s, found)
        self._cache.move_to_end(model)
        while len(self._cache) > self._max_names:
            self._cache.popitem(last=False)
        return found

    def peek(self, model: str) -> ActiveDeployment | None:
        """The active deployment last loaded for ``model``, fresh or not, without any I/O."""
        cached = self._cache.get(model)
        return cached[1] if cached is not None and isinstance(cached[1], ActiveDeployment) else None

    def invalidate(self, model: str) -> None:
        """Forget the cached deployment of ``model``: a change made here applies at once."""
        self._cache.pop(model, None)


async def load_routing(session: AsyncSession, clock: Clock, model: str) -> Routing:
    """How ``model`` is served now (one to four queries)."""
    deployments = DeploymentRepository(session)
    registry = RegistryService(RegistryRepository(session), clock)
    row = await deployments.active_for_model(model)
    if row is None:
        ended = await deployments.last_ended(model)
        return None if ended is None else await _pinned(registry, ended)
    return ActiveDeployment(
        id=row.id,
        model=row.model_name,
        mode=DeploymentMode(row.mode),
        percent=row.percent,
        stable=await registry.version_view(model, row.stable_version),
        candidate=await registry.version_view(model, row.candidate_version),
    )


async def _pinned(registry: RegistryService, ended: DeploymentRow) -> PinnedVersion | None:
    """The version ``ended`` left serving, unless it is no longer approved or a version was
    approved after the deployment ended (then the newest approved version serves again)."""
    promoted = ended.status == DeploymentStatus.PROMOTED.value
    number = ended.candidate_version if promoted else ended.stable_version
    version = await registry.version_view(ended.model_name, number)
    if version.status is not VersionStatus.APPROVED or ended.ended_at is None:
        return None
    approved = await registry.approved_rows(ended.model_id)
    if any(v.decided_at is not None and v.decided_at > ended.ended_at for v in approved):
        return None
    return PinnedVersion(ended.id, version)
