"""``/v1/deployments``: rollouts of a model's approved versions (canary, shadow, A/B).

Reads need ``deployment.read``; changes need ``deployment.manage``. Each route authorizes its
action first; reads are audited as control-plane accesses, and every change audits itself (with
its actor and reason) in :class:`~ombud.deployments.service.DeploymentService`. A change drops
this process's cached routing of its model once the request's transaction has committed (a
background task runs after the response, hence after the commit: dropped earlier, a concurrent
call could cache the state from before the change again), so it applies here at once and in
other processes within ``OMBUD_DEPLOYMENTS__CACHE_TTL_S``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.container import Container
from ombud.deployments.schemas import (
    MODEL_NAME_PATTERN,
    DeploymentCreate,
    DeploymentEventRead,
    DeploymentRead,
    DeploymentStatus,
    DeploymentUpdate,
    PromoteBody,
    RollbackBody,
    ShadowSummary,
)
from ombud.deployments.service import MANUAL, Actor, DeploymentService, Rollback
from ombud.identity.principal import Principal

router = APIRouter(prefix="/v1/deployments", tags=["deployments"])

READ = "deployment.read"
MANAGE = "deployment.manage"
DeploymentId = Annotated[str, Path(pattern=r"^dep_[0-9a-f]{32}$")]
RESPONSES = {**PROBLEM_RESPONSES, 409: {"description": "Not allowed in the current state"}}


def get_service(container: ContainerDep, session: SessionDep) -> DeploymentService:
    return DeploymentService(session, container.clock, container.records)


ServiceDep = Annotated[DeploymentService, Depends(get_service)]


def _authorize(container: Container, principal: Principal, action: str, resource: str) -> None:
    container.authorizer.authorize(principal, action, Resource(kind="deployment", id=resource))


def _actor(request: Request, principal: Principal) -> Actor:
    return Actor(principal.id, principal.tenant_id, request.state.request_id)


async def _read(
    container: Container, request: Request, principal: Principal, resource: str
) -> None:
    _authorize(container, principal, READ, resource)
    await record_access(container, request, principal, READ, resource)


def _after_commit(background: BackgroundTasks, container: Container, model: str) -> None:
    """Drop this process's cached routing of ``model`` once the change has committed."""
    background.add_task(_forget, container, model)


async def _forget(container: Container, model: str) -> None:
    # ``async``: Starlette runs a plain function in a thread, and the cache is the loop's.
    container.deployments.routing.invalidate(model)


@router.post(
    "", name="deployment.create", status_code=201, summary="Start a deployment",
    responses=RESPONSES,
)  # fmt: skip
async def create_deployment(
    body: DeploymentCreate,
    request: Request,
    background: BackgroundTasks,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> DeploymentRead:
    """Roll ``candidate_version`` out against ``stable_version`` (both approved). 409 when the
    model already has an active deployment or a version is not approved."""
    _authorize(container, principal, MANAGE, f"model:{body.model}")
    created = await service.create(_actor(request, principal), body)
    _after_commit(background, container, created.model)
    return created


@router.get("", name=READ, summary="List deployments", responses=PROBLEM_RESPONSES)
async def list_deployments(
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
    model: Annotated[str | None, Query(pattern=MODEL_NAME_PATTERN)] = None,
    status: DeploymentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeploymentRead]:
    """Deployments, newest first, optionally of one model and in one status."""
    await _read(container, request, principal, "deployments")
    return await service.listing(model=model, status=status, limit=limit)


@router.get("/{deployment_id}", name=READ, summary="Read a deployment", responses=RESPONSES)
async def read_deployment(
    deployment_id: DeploymentId,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> DeploymentRead:
    await _read(container, request, principal, f"deployment:{deployment_id}")
    return await service.get(deployment_id)


@router.patch(
    "/{deployment_id}", name="deployment.update", summary="Change a deployment's split",
    responses=RESPONSES,
)  # fmt: skip
async def update_deployment(
    deployment_id: DeploymentId,
    body: DeploymentUpdate,
    request: Request,
    background: BackgroundTasks,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> DeploymentRead:
    """A canary's ``percent`` or an A/B deployment's ``weights``. Raising a canary's percent
    only moves subjects from stable to the candidate."""
    _authorize(container, principal, MANAGE, f"deployment:{deployment_id}")
    updated = await service.update(_actor(request, principal), deployment_id, body)
    _after_commit(background, container, updated.model)
    return updated


@router.post(
    "/{deployment_id}/promote", name="deployment.promote", summary="Promote the candidate",
    responses=RESPONSES,
)  # fmt: skip
async def promote_deployment(
    deployment_id: DeploymentId,
    body: PromoteBody,
    request: Request,
    background: BackgroundTasks,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> DeploymentRead:
    """End the deployment; the candidate serves the model from now on."""
    _authorize(container, principal, MANAGE, f"deployment:{deployment_id}")
    promoted = await service.promote(_actor(request, principal), deployment_id, body.reason)
    _after_commit(background, container, promoted.model)
    return promoted


@router.post(
    "/{deployment_id}/rollback", name="deployment.rollback", summary="Roll a deployment back",
    responses=RESPONSES,
)  # fmt: skip
async def rollback_deployment(
    deployment_id: DeploymentId,
    body: RollbackBody,
    request: Request,
    background: BackgroundTasks,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> DeploymentRead:
    """End the deployment; every call goes back to the stable version."""
    _authorize(container, principal, MANAGE, f"deployment:{deployment_id}")
    rollback = Rollback(deployment_id, body.reason, MANUAL)
    rolled_back = await service.rollback(_actor(request, principal), rollback)
    _after_commit(background, container, rolled_back.model)
    background.add_task(
        container.metrics.deployment_rollbacks.labels(rolled_back.model, MANUAL).inc
    )
    return rolled_back


@router.post(
    "/{deployment_id}/complete", name="deployment.complete",
    summary="End a deployment without promoting", responses=RESPONSES,
)  # fmt: skip
async def complete_deployment(
    deployment_id: DeploymentId,
    body: PromoteBody,
    request: Request,
    background: BackgroundTasks,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> DeploymentRead:
    """End the deployment (e.g. a finished shadow run); the stable version serves on."""
    _authorize(container, principal, MANAGE, f"deployment:{deployment_id}")
    completed = await service.complete(_actor(request, principal), deployment_id, body.reason)
    _after_commit(background, container, completed.model)
    return completed


@router.get(
    "/{deployment_id}/events", name=READ, summary="A deployment's history", responses=RESPONSES
)
async def deployment_events(
    deployment_id: DeploymentId,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> list[DeploymentEventRead]:
    """Every change, oldest first: created, percent_changed, promoted, rolled_back, completed."""
    await _read(container, request, principal, f"deployment:{deployment_id}")
    return await service.events(deployment_id)


@router.get("/{deployment_id}/shadow", name=READ, summary="Shadow comparison", responses=RESPONSES)
async def shadow_summary(
    deployment_id: DeploymentId,
    request: Request,
    principal: PrincipalDep,
    service: ServiceDep,
    container: ContainerDep,
) -> ShadowSummary:
    """Agreement rate, mean |score difference| and errors of the candidate on mirrored calls."""
    await _read(container, request, principal, f"deployment:{deployment_id}")
    return await service.shadow_summary(deployment_id)
