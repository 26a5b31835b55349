"""Auditing a control-plane access: one event per read, export or change made over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ombud.audit.events import AuditEvent, Outcome
from ombud.container import Container
from ombud.core.ids import new_id
from ombud.identity.principal import Principal


async def record_access(
    container: Container,
    request: Request,
    principal: Principal,
    action: str,
    resource: str,
    *,
    purpose: str | None = None,
    subject: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Write a successful ``action`` by ``principal`` on ``resource`` to the audit trail, and
    return once it is committed."""
    event = AuditEvent(
        event_id=new_id("evt"),
        occurred_at=container.clock.now(),
        actor=principal.id,
        action=action,
        resource=resource,
        outcome=Outcome.SUCCESS,
        tenant_id=principal.tenant_id,
        request_id=request.state.request_id,
        purpose=purpose,
        subject=subject,
        detail=detail or {},
    )
    await container.records.write([event])
