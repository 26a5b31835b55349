"""``/v1/predictions``: reading recorded predictions back, within the caller's tenant only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.authz import Resource
from ombud.container import Container
from ombud.core.errors import NotFound
from ombud.predictions.records import PredictionRecord
from ombud.predictions.repository import PredictionRepository
from ombud.predictions.schemas import PredictionDetail, PredictionExport, PredictionExportRequest
from ombud.predictions.sealing import unseal

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])

ACTION_READ = "prediction.read"
ACTION_EXPORT = "prediction.export"
PredictionId = Annotated[str, Path(pattern=r"^pred_[0-9a-f]{32}$")]


@router.get(
    "/{prediction_id}", name=ACTION_READ, summary="Read a recorded prediction",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def read_prediction(
    prediction_id: PredictionId,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
) -> PredictionDetail:
    """A prediction of the caller's tenant. Another tenant's id answers 404, like a missing one."""
    # The action first, so a caller without the right cannot probe which ids exist.
    container.authorizer.authorize(principal, ACTION_READ, Resource(kind="prediction"))
    record = await PredictionRepository(session).get(prediction_id)
    if record is None:
        raise NotFound(detail=f"no prediction {prediction_id!r}")
    resource = Resource(kind="prediction", id=prediction_id, tenant_id=record.tenant_id)
    container.authorizer.authorize(principal, ACTION_READ, resource)
    await record_access(
        container, request, principal, ACTION_READ, str(resource), subject=record.subject
    )
    return await _detail(container, record)


async def _detail(container: Container, record: PredictionRecord) -> PredictionDetail:
    inputs = await unseal(container.keys, record.inputs, prediction_id=record.id)
    return PredictionDetail(
        prediction_id=record.id,
        request_id=record.request_id,
        model=record.model_name,
        model_version=record.model_version,
        score=record.outputs["score"],
        decision=record.outputs["decision"],
        threshold=record.outputs["threshold"],
        inputs=inputs,
        subject=record.subject,
        purpose=record.purpose,
        latency_ms=record.latency_ms,
        created_at=record.created_at,
    )


@router.post(
    "/export", name=ACTION_EXPORT, summary="Export predictions with their inputs",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def export_predictions(
    body: PredictionExportRequest,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
) -> PredictionExport:
    """The caller's tenant's predictions in ``[since, until)``, inputs included.

    Bulk export is decided by policy: by default only a ``compliance_officer`` with a declared
    ``X-Ombud-Purpose`` may export. The export itself is audited with its purpose and size.
    """
    purpose = request.headers.get("x-ombud-purpose")
    resource = Resource(kind="prediction", tenant_id=principal.tenant_id)
    container.authorizer.authorize(principal, ACTION_EXPORT, resource, {"purpose": purpose})
    records = await PredictionRepository(session).between(
        principal.tenant_id, body.since, body.until, model=body.model, limit=body.limit + 1
    )
    truncated = len(records) > body.limit
    records = records[: body.limit]
    await record_access(
        container, request, principal, ACTION_EXPORT,
        f"predictions:{body.since.isoformat()}..{body.until.isoformat()}", purpose=purpose,
        detail={"count": len(records), "truncated": truncated, "model": body.model},
    )  # fmt: skip
    return PredictionExport(
        count=len(records),
        truncated=truncated,
        predictions=[await _detail(container, r) for r in records],
    )
