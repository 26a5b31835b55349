"""``GET /v1/predictions/{id}/explanation``: why a model gave a prediction, within the tenant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from ombud.api.access import record_access
from ombud.api.deps import ContainerDep, PrincipalDep, SessionDep
from ombud.api.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, ProblemDetails
from ombud.authz import Resource
from ombud.core.errors import NotFound
from ombud.predictions.explanation_service import ExplanationRead, read_explanation
from ombud.predictions.repository import PredictionRepository

router = APIRouter(prefix="/v1/predictions", tags=["predictions"])

ACTION_EXPLAIN = "prediction.explain"
PredictionId = Annotated[str, Path(pattern=r"^pred_[0-9a-f]{32}$")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    410: {"model": ProblemDetails, "content": {PROBLEM_MEDIA_TYPE: {}},
          "description": "The prediction's subject was erased"},
}  # fmt: skip


@router.get(
    "/{prediction_id}/explanation", name=ACTION_EXPLAIN, summary="Explain a prediction",
    responses=RESPONSES,
)  # fmt: skip
async def explain_prediction(
    prediction_id: PredictionId,
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    container: ContainerDep,
) -> ExplanationRead:
    """Each input's contribution to the prediction's score, and a plain-language summary.

    Another tenant's prediction answers 404, like a missing one; so does a prediction whose
    model version does not explain its predictions. An erased subject's explanation answers 410.
    """
    # The action first, so a caller without the right cannot probe which ids exist.
    container.authorizer.authorize(principal, ACTION_EXPLAIN, Resource(kind="prediction"))
    record = await PredictionRepository(session).get(prediction_id)
    if record is None:
        raise NotFound(detail=f"no prediction {prediction_id!r}")
    resource = Resource(kind="prediction", id=prediction_id, tenant_id=record.tenant_id)
    container.authorizer.authorize(principal, ACTION_EXPLAIN, resource)
    await record_access(
        container, request, principal, ACTION_EXPLAIN, str(resource), subject=record.subject
    )
    return await read_explanation(session, container.keys, record)
