"""HTTP routes for own models. Every call runs through the gateway's ``model.predict`` chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from ombud.api.deps import ClientIpDep, ContainerDep, GatewayDep
from ombud.api.problems import PROBLEM_RESPONSES
from ombud.gateway.http import answer, call_from_request
from ombud.serving.schemas import PredictionRead, PredictRequest

router = APIRouter(prefix="/v1/models", tags=["models"])

ACTION_PREDICT = "model.predict"
ModelName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._\-]{0,99}$")]

_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    }
}


@router.post(
    "/{name}/predict",
    name=ACTION_PREDICT,
    summary="Score features with a registered model",
    response_model=PredictionRead,
    responses={
        **PROBLEM_RESPONSES,
        202: {"description": "Sent to human review; the body names the review"},
    },
    openapi_extra=_BODY,
)
async def predict(
    name: ModelName,
    request: Request,
    response: Response,
    gateway: GatewayDep,
    client_ip: ClientIpDep,
    container: ContainerDep,
) -> Any:
    """Run the approved version of model ``name``; the result is recorded and audited.

    The body is ``{"features": {name: value, ...}}`` as declared by the model version. The call
    passes the ``model.predict`` chain (by default: authenticate, rate limit, concurrency,
    context headers, authorize, resolve the model, validate features, invoke, record).
    """
    call = await call_from_request(
        request,
        route=ACTION_PREDICT,
        target=name,
        client_ip=client_ip,
        body_timeout_s=container.settings.server.body_timeout_s,
    )
    result = await gateway.chain(ACTION_PREDICT).run(call)
    return answer(call, result, response) or call.result
