"""Recording a refusal: counted by stage and reason, and written to the audit trail."""

from __future__ import annotations

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


class DenialRecorder:
    def __init__(self, records: RecordWriter, metrics: Metrics, clock: Clock) -> None:
        self._records = records
        self._metrics = metrics
        self._clock = clock

    async def record(self, call: Call, stage: str, problem: Problem) -> None:
        """Count and audit ``problem``; shielded, so a timing-out call still leaves its record."""
        self._metrics.denials.labels(stage, problem.kind).inc()
        principal = call.principal
        event = AuditEvent(
            event_id=new_id("evt"),
            occurred_at=self._clock.now(),
            actor=principal.id if principal else ANONYMOUS,
            action=call.route,
            resource=call_resource(call),
            outcome=Outcome.for_status(problem.status),
            tenant_id=principal.tenant_id if principal else None,
            request_id=call.request_id,
            purpose=call.purpose,
            subject=call.subject,
            reason=problem.kind,
            detail={"stage": stage, "status": problem.status, "detail": problem.detail[:500]},
        )
        with anyio.CancelScope(shield=True):
            await self._records.write([event])
        problem.audited = True
