"""Managing flags: reading, replacing, deleting and dry-running them, each step authorized and
every change audited.

Flags are platform-wide (see :mod:`ombud.flags.tables`), so reads need ``flag.read`` and
changes ``flag.manage``, whatever the caller's tenant. A change is written to the audit trail,
with the flag before and after, ahead of the change itself: the record writer commits on
connections of its own and must not wait on a write lock this unit of work holds (SQLite has
one writer). Refusals are audited by the HTTP edge.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ombud.audit.events import AuditEvent, Outcome
from ombud.authz import Authorizer, Resource
from ombud.core.clock import Clock
from ombud.core.errors import Conflict, FieldError, InvalidRequest, NotFound
from ombud.core.ids import new_id
from ombud.flags._views import definition, flag_read, stored_values
from ombud.flags.evaluation import FlagType, evaluate
from ombud.flags.repository import FlagRepository
from ombud.flags.schemas import GATE_PREFIX, EvaluationRead, EvaluationRequest, FlagRead, FlagWrite
from ombud.flags.tables import FeatureFlagRow
from ombud.identity.principal import Principal
from ombud.records.writer import RecordWriter

READ = "flag.read"
MANAGE = "flag.manage"
RESOURCE_KIND = "flag"


class FlagService:
    """The flags of one unit of work.

    Args:
        session: The caller's unit of work; nothing here commits it.
        clock: Time of changes and their audit events.
        records: Where audit events go (the group-commit record writer).
        authorizer: Decides who may read and change flags.
    """

    def __init__(
        self, session: AsyncSession, clock: Clock, records: RecordWriter, authorizer: Authorizer
    ) -> None:
        self._repo = FlagRepository(session)
        self._clock = clock
        self._records = records
        self._authorizer = authorizer

    async def list_flags(self, principal: Principal) -> list[FlagRead]:
        self._authorize(principal, READ)
        return [flag_read(row) for row in await self._repo.all()]

    async def get(self, principal: Principal, key: str) -> FlagRead:
        self._authorize(principal, READ, key)
        return flag_read(await self._row(key))

    async def put(
        self, principal: Principal, key: str, body: FlagWrite, *, request_id: str | None = None
    ) -> tuple[FlagRead, bool]:
        """Create or replace ``key``; the flag, and whether it was created.

        Raises:
            Forbidden: the principal may not manage flags.
            InvalidRequest: an ``ai.`` flag that is not boolean.
            Conflict: another request created the same flag at the same moment.
        """
        self._authorize(principal, MANAGE, key)
        _require_boolean_gate(key, body)
        row = await self._repo.get(key)
        before = flag_read(row).model_dump(mode="json") if row is not None else None
        values = stored_values(body)
        action = "flag.create" if row is None else "flag.update"
        await self._audit(principal, action, key, request_id, {"before": before, "after": values})
        now = self._clock.now()
        if row is None:
            row = FeatureFlagRow(key=key, updated_by=principal.id, updated_at=now, **values)
            self._repo.add(row)
        else:
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_by, row.updated_at = principal.id, now
        try:
            await self._repo.flush()
        except IntegrityError as exc:
            raise Conflict(detail=f"flag {key!r} was created concurrently; retry") from exc
        return flag_read(row), before is None

    async def delete(
        self, principal: Principal, key: str, *, request_id: str | None = None
    ) -> None:
        """Delete ``key``; calls it gated are allowed again (no flag means on)."""
        self._authorize(principal, MANAGE, key)
        row = await self._row(key)
        before = flag_read(row).model_dump(mode="json")
        await self._audit(principal, "flag.delete", key, request_id, {"before": before})
        await self._repo.delete(key)

    async def evaluate(
        self, principal: Principal, key: str, body: EvaluationRequest
    ) -> EvaluationRead:
        """What ``key`` as stored now serves the caller ``body`` describes (no snapshot, no
        cache, nothing written)."""
        self._authorize(principal, READ, key)
        flag = definition(await self._row(key))
        targeting_key = body.subject or body.principal
        resolved = evaluate(flag, body.tenant, targeting_key)
        return EvaluationRead(
            key=key, value=resolved.value, variant=resolved.variant,
            reason=str(resolved.reason), targeting_key=targeting_key,
        )  # fmt: skip

    async def _row(self, key: str) -> FeatureFlagRow:
        row = await self._repo.get(key)
        if row is None:
            raise NotFound(detail=f"no flag {key!r}")
        return row

    def _authorize(self, principal: Principal, action: str, key: str | None = None) -> None:
        self._authorizer.authorize(principal, action, Resource(kind=RESOURCE_KIND, id=key))

    async def _audit(
        self,
        principal: Principal,
        action: str,
        key: str,
        request_id: str | None,
        detail: dict[str, Any],
    ) -> None:
        await self._records.write([
            AuditEvent(
                event_id=new_id("evt"), occurred_at=self._clock.now(), actor=principal.id,
                action=action, resource=f"{RESOURCE_KIND}:{key}", outcome=Outcome.SUCCESS,
                tenant_id=principal.tenant_id, request_id=request_id, detail=detail,
            )
        ])  # fmt: skip


def _require_boolean_gate(key: str, body: FlagWrite) -> None:
    if key.startswith(GATE_PREFIX) and body.type is not FlagType.BOOLEAN:
        message = f"flags under {GATE_PREFIX!r} switch AI calls on and off: they are boolean"
        raise InvalidRequest(
            detail=message, errors=[FieldError(("body", "type"), message, "value_error")]
        )
