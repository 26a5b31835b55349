"""``/v1/registry/models/{name}/kpis``: a model's quality on the caller's labelled predictions.

The registry is platform-wide, predictions are not: a report covers the caller's tenant's
predictions only, so no tenant learns anything of another's traffic or outcomes. The
``ombud_model_kpi`` gauges (``outcomes.kpis`` job) are the operators' all-tenant view.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.outcomes.report import KpiService, period
from ombud.outcomes.schemas import KpiReport
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import MODEL_NAME_PATTERN
from ombud.registry.service import RegistryService

router = APIRouter(prefix="/v1/registry/models", tags=["registry"])

ACTION = "registry.read"
ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN)]


@router.get("/{name}/kpis", name=ACTION, summary="Model KPIs from outcomes",
            responses=PROBLEM_RESPONSES)  # fmt: skip
async def read_kpis(
    name: ModelName,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
    version: Annotated[int | None, Query(ge=1)] = None,
    window: Annotated[str | None, Query(max_length=8, examples=["1h", "24h", "7d"])] = None,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
) -> KpiReport:
    """AUC, precision, recall, F1, Brier, ECE and reliability bins per version (and per arm
    when a deployment served it), over a trailing ``window`` (default ``24h``) or
    ``[since, until)``, on the caller's tenant's predictions made in it."""
    container.authorizer.authorize(principal, ACTION, Resource(kind="registry"))
    when = period(container.clock.now(), window, since, until)
    await RegistryService(RegistryRepository(session), container.clock).model_row(name)
    await record_access(container, request, principal, ACTION, f"model:{name}:kpis")
    service = KpiService(session, container.settings.outcomes.kpi_max_rows)
    return await service.report(name, when, tenant_id=principal.tenant_id, version=version)
