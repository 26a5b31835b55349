"""``/v1/predictions/{id}/outcome``: the ground truth of a prediction, within the tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, ProblemDetails
from ombud.authz import Resource
from ombud.container import Container
from ombud.core.errors import NotFound
from ombud.identity.principal import Principal
from ombud.outcomes.schemas import OutcomeCreate, OutcomeRead
from ombud.outcomes.service import ACTION, OutcomeService
from ombud.predictions.records import PredictionRecord
from ombud.predictions.repository import PredictionRepository

router = APIRouter(prefix="/v1/predictions", tags=["outcomes"])

PredictionId = Annotated[str, Path(pattern=r"^pred_[0-9a-f]{32}$")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    201: {"model": OutcomeRead, "description": "The outcome was recorded"},
    409: {"model": ProblemDetails, "content": {PROBLEM_MEDIA_TYPE: {}},
          "description": "A different label is recorded; send a correction with a reason"},
}  # fmt: skip


async def _prediction(
    container: Container, session: SessionDep, principal: Principal, prediction_id: str
) -> PredictionRecord:
    """The caller's tenant's prediction; another tenant's answers 404, like a missing one."""
    # The action first, so a caller without the right cannot probe which ids exist.
    container.authorizer.authorize(principal, ACTION, Resource(kind="prediction"))
    record = await PredictionRepository(session).get(prediction_id)
    if record is None:
        raise NotFound(detail=f"no prediction {prediction_id!r}")
    resource = Resource(kind="prediction", id=prediction_id, tenant_id=record.tenant_id)
    container.authorizer.authorize(principal, ACTION, resource)
    return record


@router.post(
    "/{prediction_id}/outcome", name=ACTION, summary="Record a prediction's outcome",
    responses=RESPONSES,
)  # fmt: skip
async def record_outcome(
    prediction_id: PredictionId,
    body: OutcomeCreate,
    request: Request,
    response: Response,
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
) -> OutcomeRead:
    """Record the observed label (201). The same label again changes nothing (200); a
    different one needs ``"correction": true`` and a ``reason`` (else 409) and keeps the
    replaced value in ``history`` (200)."""
    prediction = await _prediction(container, session, principal, prediction_id)
    service = OutcomeService(session, container.clock, container.records, container.metrics)
    recorded = await service.record(
        principal, prediction, body, request_id=request.state.request_id
    )
    response.status_code = 201 if recorded.created else 200
    return recorded.outcome


@router.get(
    "/{prediction_id}/outcome", name=ACTION, summary="Read a prediction's outcome",
    responses=PROBLEM_RESPONSES,
)  # fmt: skip
async def read_outcome(
    prediction_id: PredictionId,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
) -> OutcomeRead:
    """The recorded outcome with its corrections; 404 until one is recorded."""
    prediction = await _prediction(container, session, principal, prediction_id)
    service = OutcomeService(session, container.clock, container.records, container.metrics)
    outcome = await service.read(prediction)
    resource = f"prediction:{prediction_id}"
    await record_access(container, request, principal, ACTION, resource, subject=prediction.subject)
    return outcome
