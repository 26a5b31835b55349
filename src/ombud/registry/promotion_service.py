"""Setting the bar and reading the results: golden datasets, promotion policies, reports.

Evaluating a candidate is :class:`~ombud.registry.promotion.PromotionGate`'s job; this service
holds what the gate reads. It never commits: the request or command owns the unit of work.
Writes are split into *prepare* (validate, store the rows' artifact) and *save* (the database
row), so the caller can audit between the two, before its unit of work takes a write lock.
"""

from __future__ import annotations

from ombud.core.clock import Clock
from ombud.core.errors import NotFound
from ombud.registry.golden import GoldenService, golden_read
from ombud.registry.promotion import policy_of
from ombud.registry.promotion_repository import PromotionRepository
from ombud.registry.promotion_schemas import (
    GoldenCreate,
    GoldenRead,
    PromotionPolicy,
    PromotionPolicyRead,
    PromotionReport,
)
from ombud.registry.promotion_tables import GoldenDatasetRow, PromotionPolicyRow
from ombud.registry.repository import RegistryRepository
from ombud.registry.service import RegistryService
from ombud.registry.tables import RegisteredModelRow
from ombud.serving.artifacts import ArtifactStore


class PromotionService:
    def __init__(
        self, repository: PromotionRepository, registry: RegistryRepository,
        artifacts: ArtifactStore, clock: Clock,
    ) -> None:  # fmt: skip
        self._repo = repository
        self._registry = RegistryService(registry, clock)
        self._golden = GoldenService(repository, artifacts, clock)
        self._clock = clock

    async def prepare_golden(self, model: str, body: GoldenCreate, *, actor: str) -> GoldenRead:
        """Validate the rows against the newest version's inputs and store them (no row yet).

        Raises:
            NotFound: unknown model.
            Conflict: the model has no version yet.
            InvalidRequest: bad rows (each named), or a single label class.
        """
        return await self._golden.store(await self._registry.model_row(model), body, actor=actor)

    async def save_golden(self, prepared: GoldenRead) -> GoldenRead:
        """Make the prepared rows the model's golden dataset, replacing the previous one."""
        model = await self._registry.model_row(prepared.model)
        await self._repo.save(
            GoldenDatasetRow(
                model_id=model.id, uri=prepared.uri, sha256=prepared.sha256,
                row_count=prepared.rows, description=prepared.description,
                created_by=prepared.created_by, created_at=prepared.created_at,
            )
        )  # fmt: skip
        return prepared

    async def golden(self, model: str) -> GoldenRead:
        row = await self._repo.golden((await self._registry.model_row(model)).id)
        if row is None:
            raise NotFound(detail=f"model {model!r} has no golden dataset")
        return golden_read(model, row)

    async def policy(self, model: str) -> PromotionPolicyRead:
        """The model's policy, or the defaults (``updated_by`` null) when none was set."""
        model_row = await self._registry.model_row(model)
        return _policy_read(model_row, await self._repo.policy(model_row.id))

    async def put_policy(
        self, model: str, body: PromotionPolicy, *, actor: str
    ) -> PromotionPolicyRead:
        model_row = await self._registry.model_row(model)
        row = PromotionPolicyRow(
            model_id=model_row.id, max_metric_drop=dict(body.max_metric_drop),
            min_metrics=dict(body.min_metrics), max_score_change=body.max_score_change,
            max_decision_change_fraction=body.max_decision_change_fraction,
            updated_by=actor, updated_at=self._clock.now(),
        )  # fmt: skip
        await self._repo.save(row)
        return _policy_read(model_row, row)

    async def latest_report(self, model: str, version: int) -> PromotionReport:
        """The newest stored report of ``model`` v``version``; :class:`NotFound` if none."""
        _, row = await self._registry.version_rows(model, version)
        found = await self._repo.latest_report(row.id)
        if found is None:
            raise NotFound(detail=f"{model} v{version} has no promotion report yet")
        return PromotionReport.model_validate(found.report)


def _policy_read(model: RegisteredModelRow, row: PromotionPolicyRow | None) -> PromotionPolicyRead:
    policy = policy_of(row)
    return PromotionPolicyRead(
        **policy.model_dump(), model=model.name,
        updated_by=row.updated_by if row else None, updated_at=row.updated_at if row else None,
    )  # fmt: skip
