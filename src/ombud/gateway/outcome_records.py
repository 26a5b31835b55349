"""Recording how a call ended early — refused, or sent to human review — in metrics and the
audit trail. (A completed call is recorded by its route's record stage, with its result.)"""

from __future__ import annotations

from typing import Any

import anyio

from ombud.audit.events import ANONYMOUS, AuditEvent, Outcome
from ombud.core.clock import Clock
from ombud.core.errors import Problem
from ombud.core.ids import new_id
from ombud.gateway.call import Call
from ombud.observability.metrics import Metrics
from ombud.records.writer import RecordWriter


def call_resource(call: Call) -> str:
    """How the audit trail names what a call was about."""
    if call.model_version is not None:
        return f"model:{call.model_version.model}:v{call.model_version.version}"
    return f"model:{call.target}" if call.target else call.route


class OutcomeRecorder:
    def __init__(self, records: RecordWriter, metrics: Metrics, clock: Clock) -> None:
        self._records = records
        self._metrics = metrics
        self._clock = clock

    async def deny(self, call: Call, stage: str, problem: Problem) -> None:
        """Count and audit ``problem``; shielded, so a timing-out call still leaves its record."""
        self._metrics.denials.labels(stage, problem.kind).inc()
        detail = {"stage": stage, "status": problem.status, "detail": problem.detail[:500]}
        await self._write(call, Outcome.for_status(problem.status), problem.kind, detail)
        problem.audited = True

    async def review(self, call: Call, stage: str, review_id: str, reason: str) -> None:
        """Audit that ``stage`` sent the call to human review."""
        detail = {"stage": stage, "review_id": review_id, "detail": reason[:500]}
        await self._write(call, Outcome.PENDING_REVIEW, "sent_to_review", detail)

    async def _write(
        self, call: Call, outcome: Outcome, reason: str, detail: dict[str, Any]
    ) -> None:
        principal = call.principal
        event = AuditEvent(
            event_id=new_id("evt"),
            occurred_at=self._clock.now(),
            actor=principal.id if principal else ANONYMOUS,
            action=call.route,
            resource=call_resource(call),
            outcome=outcome,
            tenant_id=principal.tenant_id if principal else None,
            request_id=call.request_id,
            purpose=call.purpose,
            subject=call.subject,
            reason=reason,
            detail=detail,
        )
        with anyio.CancelScope(shield=True):
            await self._records.write([event])
