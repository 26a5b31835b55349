"""``/v1/registry/models``: models, versions, the approval workflow and model cards.

Registry objects are platform-wide (every tenant calls the same models), so no route checks a
tenant; each authorizes its action first: ``registry.read`` for reads, ``registry.write`` to
create models and versions, and the workflow steps as :mod:`ombud.registry.lifecycle` says.
Reads and creations are audited like every control-plane access; workflow steps audit
themselves in :class:`~ombud.registry.approvals.ApprovalService`.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Path, Request, Response

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.container import Container
from ombud.core.errors import Conflict, FieldError, InvalidRequest
from ombud.identity.principal import Principal
from ombud.registry._views import resource_name
from ombud.registry.approvals import ApprovalService
from ombud.registry.cards import build_card, render_markdown
from ombud.registry.feature_source import feature_view_problems
from ombud.registry.lifecycle import READ, WRITE, Action
from ombud.registry.promotion import build_gate
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import (
    MODEL_NAME_PATTERN,
    DecisionBody,
    ModelCard,
    ModelCreate,
    ModelRead,
    RejectionBody,
    VersionCreate,
    VersionRead,
)
from ombud.registry.service import RegistryService
from ombud.serving.explain import verify_explainable

router = APIRouter(prefix="/v1/registry/models", tags=["registry"])

ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN)]
VersionNumber = Annotated[int, Path(ge=1)]
RESPONSES = {**PROBLEM_RESPONSES, 409: {"description": "Not allowed in the version's state"}}
MARKDOWN = "text/markdown"
CARD_RESPONSES = {
    **PROBLEM_RESPONSES,
    200: {"content": {MARKDOWN: {"schema": {"type": "string"}}},
          "description": "The model card (JSON, or Markdown with `Accept: text/markdown`)"},
}  # fmt: skip


def get_registry(container: ContainerDep, session: SessionDep) -> RegistryService:
    return RegistryService(RegistryRepository(session), container.clock)


def get_approvals(container: ContainerDep, session: SessionDep) -> ApprovalService:
    return ApprovalService(
        session, container.clock, container.records, container.authorizer,
        gate=build_gate(container),
    )  # fmt: skip


RegistryDep = Annotated[RegistryService, Depends(get_registry)]
ApprovalsDep = Annotated[ApprovalService, Depends(get_approvals)]


async def _allowed(
    container: Container, request: Request, principal: Principal, action: str, resource: str
) -> None:
    """Authorize ``action``, then audit it (before anything is written: the record writer must
    not wait on this request's write lock)."""
    container.authorizer.authorize(principal, action, Resource(kind="registry"))
    await record_access(container, request, principal, action, resource)


@router.get("", name=READ, summary="List models", responses=PROBLEM_RESPONSES)
async def list_models(
    request: Request, principal: PrincipalDep, registry: RegistryDep, container: ContainerDep
) -> list[ModelRead]:
    """Every registered model, by name, with its approved and newest version numbers."""
    await _allowed(container, request, principal, READ, "registry")
    return await registry.list_models()


@router.post(
    "", name="registry.model.create", status_code=201, summary="Register a model",
    responses=RESPONSES,
)  # fmt: skip
async def create_model(
    body: ModelCreate,
    request: Request,
    principal: PrincipalDep,
    registry: RegistryDep,
    container: ContainerDep,
) -> ModelRead:
    """A new model name (409 when taken); its versions are added under it."""
    container.authorizer.authorize(principal, WRITE, Resource(kind="registry"))
    if await registry.exists(body.name):
        raise Conflict(detail=f"a model named {body.name!r} already exists")
    resource = f"model:{body.name}"
    await record_access(container, request, principal, "registry.model.create", resource)
    return await registry.create_model(body)


@router.get("/{name}", name=READ, summary="Read a model", responses=PROBLEM_RESPONSES)
async def read_model(
    name: ModelName,
    request: Request,
    principal: PrincipalDep,
    registry: RegistryDep,
    container: ContainerDep,
) -> ModelRead:
    container.authorizer.authorize(principal, READ, Resource(kind="registry"))
    model = await registry.get_model(name)
    await record_access(container, request, principal, READ, f"model:{name}")
    return model


@router.get("/{name}/versions", name=READ, summary="List versions", responses=PROBLEM_RESPONSES)
async def list_versions(
    name: ModelName,
    request: Request,
    principal: PrincipalDep,
    registry: RegistryDep,
    container: ContainerDep,
) -> list[VersionRead]:
    container.authorizer.authorize(principal, READ, Resource(kind="registry"))
    versions = await registry.list_versions(name)
    await record_access(container, request, principal, READ, f"model:{name}")
    return versions


@router.post(
    "/{name}/versions", name="registry.version.create", status_code=201,
    summary="Register a version", responses=RESPONSES,
)  # fmt: skip
async def create_version(
    name: ModelName,
    body: VersionCreate,
    request: Request,
    principal: PrincipalDep,
    registry: RegistryDep,
    container: ContainerDep,
) -> VersionRead:
    """A new draft version: artifact reference and digest, input contract, model card."""
    container.authorizer.authorize(principal, WRITE, Resource(kind="registry"))
    await registry.model_row(name)
    _check_regions(body, container.settings.privacy.regions)
    _check_feature_view(body, container)
    if body.serving_config.explain:
        # A high-impact version must be able to explain each prediction: load it now, not at
        # its first call, and refuse (422) what could not.
        await anyio.to_thread.run_sync(verify_explainable, container.artifacts, body)
    detail = {"sha256": body.sha256, "format": body.format.value}
    await record_access(
        container, request, principal, "registry.version.create", f"model:{name}", detail=detail
    )
    return await registry.create_version(name, body, actor=principal.id)


def _check_regions(body: VersionCreate, known: list[str]) -> None:
    """422 when the version declares regions that are not configured (residency): a misspelt
    region would leave the version allowed nowhere it was meant to serve."""
    unknown = body.serving_config.unknown_regions(known)
    if unknown:
        message = f"unknown regions {unknown}; the configured regions are {sorted(known)}"
        raise InvalidRequest(
            detail=message,
            errors=[FieldError(("body", "serving_config", "regions"), message, "enum")],
        )


def _check_feature_view(body: VersionCreate, container: Container) -> None:
    """422 when the version reads inputs from a feature view that is not declared or does not
    fit its inputs (:mod:`ombud.registry.feature_source`)."""
    source = body.serving_config.feature_view
    if source is None:
        return
    problems = feature_view_problems(body.input_schema, source, container.online_features.catalog)
    if problems:
        raise InvalidRequest(
            detail="; ".join(p.message for p in problems),
            errors=[
                FieldError(
                    ("body", "serving_config", "feature_view", *p.loc), p.message, "value_error"
                )
                for p in problems
            ],
        )


@router.get(
    "/{name}/versions/{version}", name=READ, summary="Read a version", responses=PROBLEM_RESPONSES
)
async def read_version(
    name: ModelName,
    version: VersionNumber,
    request: Request,
    principal: PrincipalDep,
    registry: RegistryDep,
    container: ContainerDep,
) -> VersionRead:
    container.authorizer.authorize(principal, READ, Resource(kind="registry"))
    read = await registry.get_version(name, version)
    await record_access(container, request, principal, READ, resource_name(name, version))
    return read


@router.get(
    "/{name}/versions/{version}/card", name=READ, summary="Read a model card",
    response_model=ModelCard, responses=CARD_RESPONSES,
)  # fmt: skip
async def read_card(
    name: ModelName,
    version: VersionNumber,
    request: Request,
    principal: PrincipalDep,
    registry: RegistryDep,
    container: ContainerDep,
    accept: Annotated[str, Header()] = "application/json",
) -> ModelCard | Response:
    """The version's model card, as JSON or (``Accept: text/markdown``) as Markdown."""
    container.authorizer.authorize(principal, READ, Resource(kind="registry"))
    model, _ = await registry.version_rows(name, version)
    read = await registry.get_version(name, version)
    card = build_card(read, model.owner, model.description, await registry.history(read.id))
    await record_access(container, request, principal, READ, resource_name(name, version))
    if MARKDOWN in accept:
        return Response(render_markdown(card), media_type=f"{MARKDOWN}; charset=utf-8")
    return card


async def _step(
    approvals: ApprovalService,
    request: Request,
    principal: Principal,
    name: str,
    version: int,
    action: Action,
    reason: str | None = None,
) -> VersionRead:
    return await approvals.transition(
        principal, name, version, action, reason, request_id=request.state.request_id
    )


@router.post(
    "/{name}/versions/{version}/submit", name="registry.submit", summary="Submit for review",
    responses=RESPONSES,
)  # fmt: skip
async def submit_version(
    name: ModelName,
    version: VersionNumber,
    request: Request,
    principal: PrincipalDep,
    approvals: ApprovalsDep,
) -> VersionRead:
    """Ask for review of a draft; the submitter cannot decide on it afterwards."""
    return await _step(approvals, request, principal, name, version, Action.SUBMIT)


@router.post(
    "/{name}/versions/{version}/approve", name="registry.approve", summary="Approve a version",
    responses=RESPONSES,
)  # fmt: skip
async def approve_version(
    name: ModelName,
    version: VersionNumber,
    body: DecisionBody,
    request: Request,
    principal: PrincipalDep,
    approvals: ApprovalsDep,
) -> VersionRead:
    """Approve a version under review, after the promotion gate on the model's golden dataset.

    Without an active rollout the newest approved version serves the model name; earlier
    approved versions stay approved (a rollout may serve them) until deprecated."""
    return await _step(approvals, request, principal, name, version, Action.APPROVE, body.reason)


@router.post(
    "/{name}/versions/{version}/reject", name="registry.reject", summary="Reject a version",
    responses=RESPONSES,
)  # fmt: skip
async def reject_version(
    name: ModelName,
    version: VersionNumber,
    body: RejectionBody,
    request: Request,
    principal: PrincipalDep,
    approvals: ApprovalsDep,
) -> VersionRead:
    """Reject a version under review, with the reason its authors need to revise it."""
    return await _step(approvals, request, principal, name, version, Action.REJECT, body.reason)


@router.post(
    "/{name}/versions/{version}/deprecate", name="registry.deprecate",
    summary="Deprecate a version", responses=RESPONSES,
)  # fmt: skip
async def deprecate_version(
    name: ModelName,
    version: VersionNumber,
    body: DecisionBody,
    request: Request,
    principal: PrincipalDep,
    approvals: ApprovalsDep,
) -> VersionRead:
    """Retire an approved version: it never serves again (409 while a rollout uses it); the
    newest remaining approved version, if any, serves the model name."""
    return await _step(approvals, request, principal, name, version, Action.DEPRECATE, body.reason)


@router.post(
    "/{name}/versions/{version}/revise", name="registry.revise",
    summary="Reopen a rejected version", responses=RESPONSES,
)  # fmt: skip
async def revise_version(
    name: ModelName,
    version: VersionNumber,
    request: Request,
    principal: PrincipalDep,
    approvals: ApprovalsDep,
) -> VersionRead:
    """Return a rejected version to draft, to be submitted again."""
    return await _step(approvals, request, principal, name, version, Action.REVISE)
