"""HTTP routes for own models."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from ombud.api.deps import CallContextDep, PredictionServiceDep, PrincipalDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.serving.schemas import PredictionRead, PredictRequest
from ombud.serving.service import ACTION_PREDICT

router = APIRouter(prefix="/v1/models", tags=["models"])

ModelName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._\-]{0,99}$")]


@router.post(
    "/{name}/predict",
    name=ACTION_PREDICT,
    summary="Score features with a registered model",
    responses=PROBLEM_RESPONSES,
)
async def predict(
    principal: PrincipalDep,
    context: CallContextDep,
    service: PredictionServiceDep,
    name: ModelName,
    body: PredictRequest,
) -> PredictionRead:
    """Run the approved version of model ``name``; the result is recorded and audited."""
    return await service.predict(principal, context, name, body.features)
