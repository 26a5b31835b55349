"""``/v1/audit``: querying and exporting the audit trail, tenant-scoped, itself audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.audit.chain import ChainLink
from ombud.audit.events import Outcome
from ombud.audit.repository import AuditFilter, AuditRepository
from ombud.audit.verify import export_lines
from ombud.authz import Resource
from ombud.container import Container
from ombud.core.errors import Forbidden
from ombud.identity.principal import Principal

PLATFORM_AUDITOR = "platform_auditor"
"""The operator role that may read every tenant's audit events (never granted by a tenant)."""

router = APIRouter(prefix="/v1/audit", tags=["audit"])

ACTION_READ = "audit.read"
ACTION_EXPORT = "audit.export"
MAX_LIMIT = 500
JSONL = "application/jsonl"


class AuditQuery(BaseModel):
    """Filters shared by the query and the export."""

    since: datetime | None = Field(None, description="Events at or after this time.")
    until: datetime | None = Field(None, description="Events before this time.")
    actor: str | None = None
    action: str | None = None
    outcome: Outcome | None = None
    subject: str | None = Field(None, description="Pseudonymous data-subject id.")
    resource_prefix: str | None = Field(None, max_length=500)
    request_id: str | None = None


class AuditPage(AuditQuery):
    after: int = Field(0, ge=0, description="Cursor: the seq to continue after.")
    limit: int = Field(100, ge=1, le=MAX_LIMIT)


class AuditEventRead(BaseModel):
    seq: int
    event_id: str
    occurred_at: datetime
    actor: str
    action: str
    resource: str
    outcome: Outcome
    tenant_id: str | None
    request_id: str | None
    purpose: str | None
    subject: str | None
    reason: str | None
    detail: dict[str, object]
    prev_hash: str
    hash: str


class AuditEventList(BaseModel):
    events: list[AuditEventRead]
    next_cursor: int | None = Field(description="Pass as ``after`` for the next page.")


PurposeHeader = Annotated[str | None, Header(alias="X-Ombud-Purpose", max_length=64)]


def _selection(principal: Principal, query: AuditQuery) -> AuditFilter:
    # Only the dedicated platform role reads across tenants; a tenant's own admin does not.
    tenant = None if PLATFORM_AUDITOR in principal.roles else principal.tenant_id
    return AuditFilter(tenant_id=tenant, **query.model_dump(exclude={"after", "limit"}))


async def _audit_access(
    container: Container, request: Request, principal: Principal, action: str, purpose: str | None
) -> None:
    detail = {"query": str(request.url.query)}
    await record_access(container, request, principal, action, "audit", purpose=purpose,
                        detail=detail)  # fmt: skip


def _read(link: ChainLink) -> AuditEventRead:
    event = link.event
    assert event is not None  # queried rows always carry their event
    return AuditEventRead(
        seq=link.seq, event_id=event.event_id, occurred_at=event.occurred_at, actor=event.actor,
        action=event.action, resource=event.resource, outcome=event.outcome,
        tenant_id=event.tenant_id, request_id=event.request_id, purpose=event.purpose,
        subject=event.subject, reason=event.reason, detail=event.detail,
        prev_hash=link.prev_hash, hash=link.hash,
    )  # fmt: skip


@router.get("/events", name=ACTION_READ, summary="Query audit events", responses=PROBLEM_RESPONSES)
async def list_events(
    query: Annotated[AuditPage, Query()],
    request: Request,
    principal: PrincipalDep,
    container: ContainerDep,
    purpose: PurposeHeader = None,
) -> AuditEventList:
    """Events of the caller's tenant (every tenant for ``admin``), by seq, a page at a time."""
    context = {"purpose": purpose}
    container.authorizer.authorize(principal, ACTION_READ, Resource(kind="audit"), context)
    selection = _selection(principal, query)
    # The read is recorded before anything is shown, like every access to personal data.
    await _audit_access(container, request, principal, ACTION_READ, purpose)
    async with container.sessions() as session:
        links = await AuditRepository(session).find(
            selection, after_seq=query.after, limit=query.limit
        )
    cursor = links[-1].seq if len(links) == query.limit else None
    return AuditEventList(events=[_read(link) for link in links], next_cursor=cursor)


@router.get(
    "/export", name=ACTION_EXPORT, summary="Export audit events as JSON Lines",
    responses={**PROBLEM_RESPONSES, 200: {"content": {JSONL: {}}}},
    response_class=StreamingResponse,
)  # fmt: skip
async def export_events(
    query: Annotated[AuditQuery, Query()],
    request: Request,
    principal: PrincipalDep,
    container: ContainerDep,
    purpose: PurposeHeader = None,
) -> StreamingResponse:
    """The selected events with their hashes, the checkpoints and the public keys.

    Needs a declared purpose (``X-Ombud-Purpose``). Events of other tenants in the exported
    range appear as content-free links (seq and hashes only), so the export verifies offline.
    """
    context = {"purpose": purpose}
    container.authorizer.authorize(principal, ACTION_EXPORT, Resource(kind="audit"), context)
    if not purpose:
        raise Forbidden(detail="an audit export needs a declared purpose (X-Ombud-Purpose)")
    selection = _selection(principal, query)
    await _audit_access(container, request, principal, ACTION_EXPORT, purpose)

    async def body() -> AsyncIterator[bytes]:
        lines = export_lines(container.sessions, selection, exported_at=container.clock.now())
        async for line in lines:
            yield line.encode()

    return StreamingResponse(body(), media_type=JSONL)
