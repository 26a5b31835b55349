"""``/v1/registry/models/{name}/golden``, ``.../promotion-policy`` and
``.../versions/{v}/promotion-report``: the promotion gate's data, bar and verdicts.

Permissions: ``registry.approve`` to set a golden dataset or the policy (the approver side owns
the bar: an author who could replace the golden rows could pick the rows their version passes
on), ``registry.write`` or
``registry.approve`` for a dry run, ``registry.read`` to read any of them. Every access is
audited before anything is written; the gate audits its own reports.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.container import Container
from ombud.core.errors import Forbidden
from ombud.identity.principal import Principal
from ombud.registry._views import resource_name
from ombud.registry.lifecycle import APPROVE, READ, WRITE
from ombud.registry.promotion import build_gate
from ombud.registry.promotion_repository import PromotionRepository
from ombud.registry.promotion_schemas import (
    GoldenCreate,
    GoldenRead,
    PromotionPolicy,
    PromotionPolicyRead,
    PromotionReport,
)
from ombud.registry.promotion_service import PromotionService
from ombud.registry.repository import RegistryRepository
from ombud.registry.router import ModelName, VersionNumber

router = APIRouter(prefix="/v1/registry/models", tags=["registry"])

RESPONSES = {
    **PROBLEM_RESPONSES,
    409: {"description": "No version or golden dataset to evaluate with"},
}


def get_promotion(container: ContainerDep, session: SessionDep) -> PromotionService:
    return PromotionService(
        PromotionRepository(session), RegistryRepository(session), container.artifacts,
        container.clock,
    )  # fmt: skip


PromotionDep = Annotated[PromotionService, Depends(get_promotion)]


def _authorize(container: Container, principal: Principal, action: str) -> None:
    container.authorizer.authorize(principal, action, Resource(kind="registry"))


@router.put(
    "/{name}/golden", name="registry.golden.put", summary="Set the golden dataset",
    responses=RESPONSES,
)  # fmt: skip
async def put_golden(
    name: ModelName,
    body: GoldenCreate,
    request: Request,
    principal: PrincipalDep,
    promotion: PromotionDep,
    container: ContainerDep,
) -> GoldenRead:
    """Replace the model's golden dataset: labelled rows of the newest version's inputs.

    Approvers only (``registry.approve``), like the policy. Every row is validated first; one
    bad row refuses the whole set (422, each row named) and nothing is stored.
    """
    _authorize(container, principal, APPROVE)
    prepared = await promotion.prepare_golden(name, body, actor=principal.id)
    detail = {"sha256": prepared.sha256, "rows": prepared.rows}
    await record_access(
        container, request, principal, "registry.golden.put", f"model:{name}", detail=detail
    )
    return await promotion.save_golden(prepared)


@router.get(
    "/{name}/golden", name=READ, summary="Read the golden dataset's summary",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def read_golden(
    name: ModelName,
    request: Request,
    principal: PrincipalDep,
    promotion: PromotionDep,
    container: ContainerDep,
) -> GoldenRead:
    _authorize(container, principal, READ)
    read = await promotion.golden(name)
    await record_access(container, request, principal, READ, f"model:{name}")
    return read


@router.put(
    "/{name}/promotion-policy", name="registry.promotion_policy.put",
    summary="Set the promotion thresholds", responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def put_policy(
    name: ModelName,
    body: PromotionPolicy,
    request: Request,
    principal: PrincipalDep,
    promotion: PromotionDep,
    container: ContainerDep,
) -> PromotionPolicyRead:
    """Replace the bar the model's candidates must clear; omitted fields take the defaults."""
    _authorize(container, principal, APPROVE)
    await promotion.policy(name)  # 404 before the audit event
    await record_access(
        container, request, principal, "registry.promotion_policy.put", f"model:{name}",
        detail=body.model_dump(mode="json"),
    )  # fmt: skip
    return await promotion.put_policy(name, body, actor=principal.id)


@router.get(
    "/{name}/promotion-policy", name=READ, summary="Read the promotion thresholds",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def read_policy(
    name: ModelName,
    request: Request,
    principal: PrincipalDep,
    promotion: PromotionDep,
    container: ContainerDep,
) -> PromotionPolicyRead:
    _authorize(container, principal, READ)
    read = await promotion.policy(name)
    await record_access(container, request, principal, READ, f"model:{name}")
    return read


@router.post(
    "/{name}/versions/{version}/promotion-report", name="registry.promotion_gate",
    summary="Run the promotion gate without approving", status_code=201, responses=RESPONSES,
)  # fmt: skip
async def evaluate(
    name: ModelName,
    version: VersionNumber,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
) -> PromotionReport:
    """A dry run: the report approval would produce now, stored and audited; nothing else
    changes, whatever the verdict."""
    try:
        _authorize(container, principal, WRITE)
    except Forbidden:
        _authorize(container, principal, APPROVE)
    return await build_gate(container).evaluate(
        session, principal.id, name, version, dry_run=True, tenant_id=principal.tenant_id,
        request_id=request.state.request_id,
    )  # fmt: skip


@router.get(
    "/{name}/versions/{version}/promotion-report", name=READ,
    summary="Read the latest promotion report", responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def read_report(
    name: ModelName,
    version: VersionNumber,
    request: Request,
    principal: PrincipalDep,
    promotion: PromotionDep,
    container: ContainerDep,
) -> PromotionReport:
    """The newest report on the version, from a dry run or an approval (passed or refused)."""
    _authorize(container, principal, READ)
    report = await promotion.latest_report(name, version)
    await record_access(container, request, principal, READ, resource_name(name, version))
    return report
