"""The approval workflow: every status change of a version after registration.

One method, :meth:`ApprovalService.transition`, takes every step, whether asked over HTTP or from
the CLI: it authorizes the principal (the action's permission, then, for approve and reject, the
policy rule that nobody decides on their own submission), checks the state machine
(:mod:`ombud.registry.lifecycle`), writes the audit events, then applies the change and appends
it to the version's history. Several versions of a model may be approved at once: approving one
deprecates nothing (deprecation is its own, explicit step), and without an active deployment the
newest approved version serves. A version an active deployment routes to cannot be deprecated.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.authz import Authorizer, Resource
from ombud.core.clock import Clock
from ombud.core.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidRequest,
    PolicyDenied,
    Problem,
)
from ombud.core.ids import new_id
from ombud.deployments.repository import DeploymentRepository
from ombud.identity.principal import Principal
from ombud.records.writer import RecordWriter
from ombud.registry._views import resource_name, version_read
from ombud.registry.lifecycle import DECISIONS, Action, next_status, permission
from ombud.registry.promotion import PromotionGate
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import VersionRead, VersionStatus
from ombud.registry.service import RegistryService
from ombud.registry.tables import ModelVersionRow

RESOURCE_KIND = "model_version"


class ApprovalService:
    """The version state machine over one session.

    Args:
        session: The caller's unit of work; nothing here commits it.
        clock: Time of submissions, decisions and history entries.
        records: Where audit events go (the group-commit record writer).
        authorizer: Decides who may take which step.
        gate: The promotion gate every approval must pass first (no bypass: a model without a
            golden dataset cannot be approved).
    """

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        records: RecordWriter,
        authorizer: Authorizer,
        *,
        gate: PromotionGate,
    ) -> None:
        self._session = session
        self._gate = gate
        self._registry = RegistryService(RegistryRepository(session), clock)
        self._deployments = DeploymentRepository(session)
        self._clock = clock
        self._records = records
        self._authorizer = authorizer

    async def transition(
        self,
        principal: Principal,
        model: str,
        version: int,
        action: Action,
        reason: str | None = None,
        *,
        request_id: str | None = None,
    ) -> VersionRead:
        """Take ``action`` on ``model`` v``version`` as ``principal``.

        Raises:
            NotFound: unknown model or version.
            Forbidden: the principal lacks the action's permission.
            PolicyDenied: a decision on the principal's own submission.
            Conflict: the step is not allowed from the version's status.
            InvalidRequest: a rejection without a reason.
            PromotionRefused: an approval whose candidate fails the promotion gate, or of a
                model without a golden dataset (a computed report is stored either way).
        """
        resource = resource_name(model, version)
        try:
            model_row, row = await self._registry.version_rows(model, version)
            self._authorize(principal, action, row, resource)
            target = next_status(VersionStatus(row.status), action)
            _require_reason(action, reason)
            if action is Action.APPROVE:
                await self._gate.require_pass(
                    self._session, principal.id, model, version,
                    tenant_id=principal.tenant_id, request_id=request_id,
                )  # fmt: skip
            await self._check_unused(row, action)
        except Problem as exc:
            await self._refused(principal, action, resource, reason, request_id, exc)
            raise
        # Audited before anything is written: the record writer commits on connections of its
        # own and must not wait on a write lock this unit of work holds (SQLite has one writer).
        events = [self._event(principal, action, resource, reason, request_id, row.status, target)]
        await self._records.write(events)
        await self._apply(principal, row, action, target, reason)
        return version_read(model_row, row)

    def _authorize(
        self, principal: Principal, action: Action, row: ModelVersionRow, resource: str
    ) -> None:
        name = permission(action)
        self._authorizer.authorize(principal, name, Resource(kind=RESOURCE_KIND, id=resource))
        if action not in DECISIONS:
            return
        attributes = {"submitted_by": row.submitted_by, "status": row.status}
        decided = Resource(kind=RESOURCE_KIND, id=resource, attributes=attributes)
        try:
            self._authorizer.authorize(principal, name, decided)
        except Forbidden as exc:
            # The role allowed the step; a policy rule about this version refused it.
            raise PolicyDenied(detail=exc.detail) from exc

    async def _check_unused(self, row: ModelVersionRow, action: Action) -> None:
        """A version an active deployment routes to stays approved until the rollout ends."""
        if action is not Action.DEPRECATE:
            return
        deployment = await self._deployments.active_using(row.id)
        if deployment is not None:
            raise Conflict(
                detail=f"v{row.version} is used by the active deployment {deployment}; "
                "promote, roll back or complete it first"
            )

    async def _apply(
        self,
        principal: Principal,
        row: ModelVersionRow,
        action: Action,
        target: VersionStatus,
        reason: str | None,
    ) -> None:
        now = self._clock.now()
        values: dict[str, object] = {}
        if action is Action.SUBMIT:
            values = {"submitted_by": principal.id, "submitted_at": now, "decided_by": None,
                      "decided_at": None, "decision_reason": None}  # fmt: skip
        elif action in DECISIONS:
            values = {"decided_by": principal.id, "decided_at": now, "decision_reason": reason}
        await self._registry.move(
            row, action=action.value, to=target, actor=principal.id, reason=reason, values=values
        )

    def _event(
        self,
        principal: Principal,
        action: Action,
        resource: str,
        reason: str | None,
        request_id: str | None,
        before: str,
        after: VersionStatus,
    ) -> AuditEvent:
        return AuditEvent(
            event_id=new_id("evt"), occurred_at=self._clock.now(), actor=principal.id,
            action=f"registry.{action.value}", resource=resource, outcome=Outcome.SUCCESS,
            tenant_id=principal.tenant_id, request_id=request_id, reason=reason,
            detail={"from": before, "to": after.value},
        )  # fmt: skip

    async def _refused(
        self,
        principal: Principal,
        action: Action,
        resource: str,
        reason: str | None,
        request_id: str | None,
        problem: Problem,
    ) -> None:
        """Audit a refused step (nothing is written yet), so HTTP and CLI refusals alike are on
        the trail, naming the version rather than the URL."""
        await self._records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(), actor=principal.id,
                action=f"registry.{action.value}", resource=resource,
                outcome=Outcome.for_status(problem.status), tenant_id=principal.tenant_id,
                request_id=request_id, reason=problem.kind,
                detail={"status": problem.status, "detail": problem.detail[:500],
                        "reason": reason},
            )
        ])  # fmt: skip
        problem.audited = True


def _require_reason(action: Action, reason: str | None) -> None:
    if action is Action.REJECT and not (reason or "").strip():
        raise InvalidRequest(
            detail="a rejection needs a reason",
            errors=[FieldError(("body", "reason"), "a rejection needs a reason", "missing")],
        )
