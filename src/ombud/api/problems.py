"""RFC 9457 problem+json for every error ombud's own routes answer, and auditing of refusals.

Every refusal on a matched route (401, 403, 404, 413, 422, ...) is written to the audit trail
before the response leaves, so denials are as visible as successes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from ombud.audit.events import ANONYMOUS, AuditEvent, Outcome
from ombud.core.errors import (
    BadRequest,
    FieldError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    RecordsUnavailable,
)
from ombud.core.ids import new_id
from ombud.gateway.call import Call
from ombud.identity.principal import Principal

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemDetails(BaseModel):
    """The problem+json body (RFC 9457) with ombud's extension members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:ombud:problem:validation_error"])
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDetails, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": text}
    for status, text in {
        401: "Missing, unknown or revoked credentials",
        403: "Not allowed",
        404: "Unknown or unapproved model",
        413: "Request body too large",
        422: "Invalid request; `errors` lists each offending field",
        503: "Model or dependency unavailable",
    }.items()
}


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_problem(request: Request, exc: Problem) -> JSONResponse:
    return await respond(request, exc)


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        FieldError(loc=tuple(e.get("loc", ())), msg=str(e.get("msg", "")), type=str(e.get("type")))
        for e in exc.errors()
    ]
    fields = ", ".join(".".join(str(p) for p in e.loc) for e in errors)
    return await respond(request, InvalidRequest(detail=f"invalid fields: {fields}", errors=errors))


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    problem: Problem
    if exc.status_code == 404:
        problem = NotFound(detail=f"no route for {request.url.path}")
    elif exc.status_code == 413:
        problem = PayloadTooLarge(detail=str(exc.detail))
    elif exc.status_code == 405:
        problem = MethodNotAllowed(detail=f"{request.method} is not allowed here")
    elif exc.status_code < 500:
        problem = BadRequest(detail=str(exc.detail))
    else:
        problem = Problem(detail=str(exc.detail))
    return await respond(request, problem)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return await respond(request, Problem(detail="unexpected error; see the server log"))


ProblemRenderer = Callable[[Problem, "str | None", str], dict[str, Any]]
"""Renders a problem as another protocol's error body: (problem, request id, path) → body."""


async def respond(
    request: Request,
    problem: Problem,
    *,
    audit: bool = True,
    render: ProblemRenderer | None = None,
) -> JSONResponse:
    """Audit ``problem`` (when it happened on a route) and render it as problem+json.

    ``audit=False`` is for answers about ombud itself, such as readiness probes, which must not
    depend on the very services they report on.
    """
    request_id = getattr(request.state, "request_id", None)
    if audit and isinstance(request.scope.get("route"), Route) and not problem.audited:
        try:
            await _audit(request, problem, request_id)
        except Exception:
            # A refusal that cannot be audited is not answered as such: the caller gets 503.
            log.exception("could not audit a %d answer; answering 503", problem.status)
            if problem.status < 500:
                problem = RecordsUnavailable(detail="the refusal could not be audited")
    headers = dict(problem.headers)
    if request_id:
        headers["X-Request-Id"] = request_id
    if render is not None:
        return JSONResponse(
            render(problem, request_id, request.url.path),
            status_code=problem.status,
            headers=headers,
        )
    body: dict[str, Any] = {
        "type": problem.type_uri,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        "request_id": request_id,
    }
    if problem.errors:
        body["errors"] = [e.as_dict() for e in problem.errors]
    return JSONResponse(
        body, status_code=problem.status, headers=headers, media_type=PROBLEM_MEDIA_TYPE
    )


async def _audit(request: Request, problem: Problem, request_id: str | None) -> None:
    container = request.app.state.container
    container.metrics.denials.labels("edge", problem.kind).inc()
    call: Call | None = getattr(request.state, "call", None)
    principal: Principal | None = getattr(request.state, "principal", None) or (
        call.principal if call else None
    )
    route = request.scope["route"]
    event = AuditEvent(
        event_id=new_id("evt"),
        occurred_at=container.clock.now(),
        actor=principal.id if principal else ANONYMOUS,
        action=route.name,
        resource=f"{request.method} {request.url.path}",
        outcome=Outcome.for_status(problem.status),
        tenant_id=principal.tenant_id if principal else None,
        request_id=request_id,
        purpose=call.purpose if call else None,
        subject=call.subject if call else None,
        reason=problem.kind,
        detail={"status": problem.status, "detail": problem.detail[:500]},
    )
    await container.records.write([event])
