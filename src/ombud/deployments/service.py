"""Deployment rules: creating a rollout, changing its split, and ending it.

Every change is audited through the record writer before this unit of work writes anything (the
writer commits on connections of its own and must not wait on a write lock this transaction
holds: SQLite has one writer), then applied with optimistic locking and appended to the
deployment's history. When that write loses a race (another change got there first: 409), the
unit of work is rolled back and a compensating event is recorded (same action and resource,
outcome ``error``, reason ``conflict``, ``detail.compensates`` naming the success event), so the
trail never shows a change as made without also showing that it did not happen. The service
never commits: the request or job that uses it owns the unit of work. Authorization is the
caller's (the router; the monitor acts as the system).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.errors import Conflict, FieldError, InvalidRequest, NotFound
from ombud.core.ids import new_id
from ombud.deployments._views import deployment_read, event_read
from ombud.deployments.compatibility import narrower_features
from ombud.deployments.repository import DeploymentRepository
from ombud.deployments.schemas import (
    DeploymentCreate,
    DeploymentEventRead,
    DeploymentMode,
    DeploymentRead,
    DeploymentStatus,
    DeploymentUpdate,
    ShadowSummary,
)
from ombud.deployments.tables import DeploymentEventRow, DeploymentRow
from ombud.records.writer import RecordWriter
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import FeatureSpec, VersionStatus
from ombud.registry.service import RegistryService
from ombud.registry.tables import ModelVersionRow, RegisteredModelRow

CREATED = "created"
PERCENT_CHANGED = "percent_changed"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
COMPLETED = "completed"
MANUAL = "manual"
AUTOMATIC = "automatic"
CONFLICT = "conflict"
"""The reason of a compensating audit event: the change it names lost a race."""


@dataclass(frozen=True)
class Actor:
    """Who makes a change, and the request it came with (for the audit trail)."""

    id: str
    tenant_id: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Rollback:
    """A rollback to make: which deployment, why, and the numbers behind it."""

    deployment_id: str
    reason: str
    trigger: str = MANUAL
    numbers: dict[str, Any] = field(default_factory=dict)


class DeploymentService:
    """Rollouts over one session.

    Args:
        session: The caller's unit of work; nothing here commits it.
        clock: Time of changes and history entries.
        records: Where audit events go (the group-commit record writer).
    """

    def __init__(self, session: AsyncSession, clock: Clock, records: RecordWriter) -> None:
        self._repo = DeploymentRepository(session)
        self._registry = RegistryService(RegistryRepository(session), clock)
        self._clock = clock
        self._records = records

    async def create(self, actor: Actor, body: DeploymentCreate) -> DeploymentRead:
        """Start a rollout; 409 when the model has an active one or a version is not approved,
        422 when the candidate would refuse features the stable version accepts."""
        model = await self._registry.model_row(body.model)
        stable = await self._approved(model, body.stable_version, "stable_version")
        candidate = await self._approved(model, body.candidate_version, "candidate_version")
        _check_compatible(model.name, stable, candidate)
        current = await self._repo.active_for_model(model.name)
        if current is not None:
            raise Conflict(detail=f"{model.name!r} already has an active deployment {current.id}")
        now = self._clock.now()
        row = DeploymentRow(
            id=new_id("dep"), model_id=model.id, model_name=model.name, active_model_id=model.id,
            mode=body.mode.value, status=DeploymentStatus.ACTIVE.value,
            stable_version_id=stable.id, candidate_version_id=candidate.id,
            stable_version=stable.version, candidate_version=candidate.version,
            percent=body.candidate_percent,
            weights=body.weights.model_dump() if body.weights else None,
            guards=body.guards.model_dump(), created_by=actor.id, created_at=now,
            updated_at=now, revision=1,
        )  # fmt: skip
        detail = {"model": model.name, "mode": row.mode, "stable_version": stable.version,
                  "candidate_version": candidate.version, "percent": row.percent,
                  "weights": row.weights, "guards": row.guards}  # fmt: skip
        event = self._event(actor, "deployment.create", row.id, body.reason, detail)
        await self._records.write([event])
        self._repo.add(row)
        try:
            await self._repo.flush()
        except IntegrityError:
            # Another request started a deployment of this model between our check and insert.
            await self._compensate(event)
            raise Conflict(detail=f"{model.name!r} already has an active deployment") from None
        await self._history(row, CREATED, actor.id, body.reason, detail)
        return deployment_read(row)

    async def listing(
        self, *, model: str | None, status: DeploymentStatus | None, limit: int
    ) -> list[DeploymentRead]:
        rows = await self._repo.listing(
            model=model, status=status.value if status else None, limit=limit
        )
        return [deployment_read(row) for row in rows]

    async def get(self, deployment_id: str) -> DeploymentRead:
        return deployment_read(await self._row(deployment_id))

    async def events(self, deployment_id: str) -> list[DeploymentEventRead]:
        await self._row(deployment_id)
        return [event_read(e) for e in await self._repo.events(deployment_id)]

    async def update(
        self, actor: Actor, deployment_id: str, body: DeploymentUpdate
    ) -> DeploymentRead:
        """Change an active canary's percent or an A/B deployment's weights."""
        row = await self._active(deployment_id)
        percent, weights = _new_split(DeploymentMode(row.mode), body)
        detail = {"from": row.percent, "to": percent, "weights": weights}
        event = self._event(actor, "deployment.update", row.id, body.reason, detail)
        await self._records.write([event])
        now = self._clock.now()
        await self._move(row, {"percent": percent, "weights": weights, "updated_at": now}, event)
        await self._history(row, PERCENT_CHANGED, actor.id, body.reason, detail)
        return deployment_read(row)

    async def promote(self, actor: Actor, deployment_id: str, reason: str | None) -> DeploymentRead:
        """End the rollout with the candidate serving the model from now on (until another
        version is approved or deployed)."""
        row = await self._active(deployment_id)
        detail = {"candidate_version": row.candidate_version, "stable_version": row.stable_version}
        event = self._event(actor, "deployment.promote", row.id, reason, detail)
        await self._records.write([event])
        await self._end(row, DeploymentStatus.PROMOTED, event)
        await self._history(row, PROMOTED, actor.id, reason, detail)
        return deployment_read(row)

    async def complete(
        self, actor: Actor, deployment_id: str, reason: str | None
    ) -> DeploymentRead:
        """End the rollout without promoting (e.g. a finished shadow run): stable serves on."""
        row = await self._active(deployment_id)
        event = self._event(actor, "deployment.complete", row.id, reason, {})
        await self._records.write([event])
        await self._end(row, DeploymentStatus.COMPLETED, event)
        await self._history(row, COMPLETED, actor.id, reason, {})
        return deployment_read(row)

    async def rollback(self, actor: Actor, rollback: Rollback) -> DeploymentRead:
        """End the rollout with all traffic back on the stable version.

        Raises:
            NotFound: an unknown deployment.
            Conflict: a deployment that is no longer active (nothing is audited as done), or
                one that changed meanwhile (its success event is compensated).
        """
        row = await self._active(rollback.deployment_id)
        detail = _rollback_detail(rollback)
        event = self._event(actor, "deployment.rollback", row.id, rollback.reason, detail)
        await self._records.write([event])
        await self._end(row, DeploymentStatus.ROLLED_BACK, event)
        await self._history(row, ROLLED_BACK, actor.id, rollback.reason, detail)
        return deployment_read(row)

    async def shadow_summary(self, deployment_id: str) -> ShadowSummary:
        """How the candidate compares with stable on the deployment's mirrored calls."""
        row = await self._row(deployment_id)
        stable = await self._registry.version_view(row.model_name, row.stable_version)
        candidate = await self._registry.version_view(row.model_name, row.candidate_version)
        totals = await self._repo.shadow_totals(
            row.id, stable.serving.threshold, candidate.serving.threshold
        )
        return ShadowSummary(
            deployment_id=row.id, count=totals.count, compared=totals.compared,
            errors=totals.errors,
            agreement_rate=totals.agreements / totals.compared if totals.compared else None,
            mean_abs_score_diff=totals.mean_abs_diff,
        )  # fmt: skip

    async def _approved(
        self, model: RegisteredModelRow, number: int, field_name: str
    ) -> ModelVersionRow:
        row = await self._version(model, number, field_name)
        if row.status != VersionStatus.APPROVED.value:
            raise Conflict(
                detail=f"{model.name} v{number} is {row.status}; only approved versions can be "
                "deployed"
            )
        return row

    async def _version(
        self, model: RegisteredModelRow, number: int, field_name: str
    ) -> ModelVersionRow:
        try:
            _, row = await self._registry.version_rows(model.name, number)
        except NotFound:
            message = f"{model.name} has no version {number}"
            raise InvalidRequest(
                detail=message, errors=[FieldError(("body", field_name), message, "not_found")]
            ) from None
        return row

    async def _row(self, deployment_id: str) -> DeploymentRow:
        row = await self._repo.get(deployment_id)
        if row is None:
            raise NotFound(detail=f"no deployment {deployment_id!r}")
        return row

    async def _active(self, deployment_id: str) -> DeploymentRow:
        row = await self._row(deployment_id)
        if row.status != DeploymentStatus.ACTIVE.value:
            raise Conflict(detail=f"the deployment is {row.status}, no longer active")
        return row

    async def _end(self, row: DeploymentRow, status: DeploymentStatus, event: AuditEvent) -> None:
        now = self._clock.now()
        values = {"status": status.value, "active_model_id": None, "ended_by": event.actor,
                  "ended_at": now, "end_reason": event.reason, "updated_at": now}  # fmt: skip
        await self._move(row, values, event)

    async def _move(
        self, row: DeploymentRow, values: Mapping[str, object], event: AuditEvent
    ) -> None:
        """Apply ``values`` unless the row changed since it was read; then ``event`` (already
        written) is compensated and 409 raised."""
        if not await self._repo.update_guarded(row.id, row.revision, values):
            await self._compensate(event)
            raise Conflict(detail="the deployment changed meanwhile; read it again")
        await self._repo.refresh(row)

    async def _compensate(self, event: AuditEvent) -> None:
        """Record that ``event``'s change did not happen. This unit of work is rolled back
        first: its caller would roll it back anyway, and on SQLite it holds the one write lock
        the record writer needs."""
        await self._repo.rollback()
        await self._records.write([compensation(event, self._clock.now(), new_id("evt"))])

    async def _history(
        self, row: DeploymentRow, action: str, actor: str, reason: str | None,
        detail: dict[str, Any],
    ) -> None:  # fmt: skip
        self._repo.add(
            DeploymentEventRow(
                id=new_id("dpe"), deployment_id=row.id,
                seq=await self._repo.next_event_seq(row.id), action=action, actor=actor,
                reason=reason, detail=detail, occurred_at=self._clock.now(),
            )
        )  # fmt: skip
        await self._repo.flush()

    def _event(
        self, actor: Actor, action: str, deployment_id: str, reason: str | None,
        detail: dict[str, Any],
    ) -> AuditEvent:  # fmt: skip
        return AuditEvent(
            event_id=new_id("evt"), occurred_at=self._clock.now(), actor=actor.id,
            action=action, resource=f"deployment:{deployment_id}", outcome=Outcome.SUCCESS,
            tenant_id=actor.tenant_id, request_id=actor.request_id, reason=reason,
            detail=detail,
        )  # fmt: skip


def compensation(event: AuditEvent, now: datetime, event_id: str) -> AuditEvent:
    """The event saying that ``event``'s change was not made: it lost a race (409)."""
    return dataclasses.replace(
        event, event_id=event_id, occurred_at=now, outcome=Outcome.ERROR, reason=CONFLICT,
        detail={"compensates": event.event_id, "reason": event.reason},
    )  # fmt: skip


def _check_compatible(model: str, stable: ModelVersionRow, candidate: ModelVersionRow) -> None:
    """422 when ``candidate`` would refuse features that ``stable`` accepts: its subjects would
    get a 422 on every call, which the rollback monitor cannot see."""
    problems = narrower_features(
        [FeatureSpec.model_validate(f) for f in stable.input_schema],
        [FeatureSpec.model_validate(f) for f in candidate.input_schema],
    )
    if not problems:
        return
    message = (
        f"{model} v{candidate.version} would refuse calls that v{stable.version} accepts: "
        + "; ".join(problems)
    )
    raise InvalidRequest(
        detail=message,
        errors=[FieldError(("body", "candidate_version"), message, "incompatible_schema")],
    )


def _rollback_detail(rollback: Rollback) -> dict[str, Any]:
    return {"trigger": rollback.trigger, **rollback.numbers}


def _new_split(mode: DeploymentMode, body: DeploymentUpdate) -> tuple[float, dict[str, int] | None]:
    """The percent (and weights) ``body`` sets for a deployment of ``mode``; 422 if it cannot."""
    if mode is DeploymentMode.CANARY and body.percent is not None:
        return body.percent, None
    if mode is DeploymentMode.AB and body.weights is not None:
        return body.weights.percent_b, body.weights.model_dump()
    wanted = {DeploymentMode.CANARY: "percent", DeploymentMode.AB: "weights"}.get(mode)
    message = (
        f"a {mode.value} deployment takes {wanted}" if wanted
        else "a shadow deployment has no split to change"
    )  # fmt: skip
    given = "percent" if body.percent is not None else "weights"
    raise InvalidRequest(
        detail=message, errors=[FieldError(("body", given), message, "not_allowed")]
    )
