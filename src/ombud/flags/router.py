"""``/v1/flags``: the feature flags that switch AI features on and off.

Reads need ``flag.read``, changes ``flag.manage``; the service authorizes and audits. A change
drops this process's flag snapshot once the request's transaction has committed (a background
task runs after the response, hence after the commit), so it applies here at once and in other
processes within ``OMBUD_FLAGS__TTL_S``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request, Response

from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.flags.schemas import (
    FLAG_KEY_PATTERN,
    EvaluationRead,
    EvaluationRequest,
    FlagRead,
    FlagWrite,
)
from ombud.flags.service import FlagService

router = APIRouter(prefix="/v1/flags", tags=["flags"])

FlagKey = Annotated[str, Path(pattern=FLAG_KEY_PATTERN)]


def get_flags(container: ContainerDep, session: SessionDep) -> FlagService:
    return FlagService(session, container.clock, container.records, container.authorizer)


FlagsDep = Annotated[FlagService, Depends(get_flags)]


@router.get("", name="flag.list", summary="List flags", responses=PROBLEM_RESPONSES)
async def list_flags(principal: PrincipalDep, flags: FlagsDep) -> list[FlagRead]:
    """Every flag, by key."""
    return await flags.list_flags(principal)


@router.get("/{key}", name="flag.read", summary="Read a flag", responses=PROBLEM_RESPONSES)
async def read_flag(key: FlagKey, principal: PrincipalDep, flags: FlagsDep) -> FlagRead:
    """One flag; 404 when there is none (for ``ai.`` flags: the feature is on)."""
    return await flags.get(principal, key)


@router.put(
    "/{key}", name="flag.put", summary="Create or replace a flag", responses=PROBLEM_RESPONSES
)
async def put_flag(
    key: FlagKey,
    body: FlagWrite,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    principal: PrincipalDep,
    flags: FlagsDep,
    container: ContainerDep,
) -> FlagRead:
    """Create the flag (201) or replace it whole (200); audited with its value before and after."""
    flag, created = await flags.put(principal, key, body, request_id=request.state.request_id)
    response.status_code = 201 if created else 200
    background.add_task(container.flag_provider.invalidate)
    return flag


@router.delete(
    "/{key}", name="flag.delete", status_code=204, summary="Delete a flag",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def delete_flag(
    key: FlagKey,
    request: Request,
    background: BackgroundTasks,
    principal: PrincipalDep,
    flags: FlagsDep,
    container: ContainerDep,
) -> Response:
    """Delete the flag; what it gated is on again (no flag means on)."""
    await flags.delete(principal, key, request_id=request.state.request_id)
    background.add_task(container.flag_provider.invalidate)
    return Response(status_code=204, background=background)


@router.post(
    "/{key}/evaluate", name="flag.evaluate", summary="Dry-run a flag for a caller",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def evaluate_flag(
    key: FlagKey, body: EvaluationRequest, principal: PrincipalDep, flags: FlagsDep
) -> EvaluationRead:
    """What the flag as stored now would serve a tenant and subject (or principal); changes
    nothing and bypasses the snapshot."""
    return await flags.evaluate(principal, key, body)
