"""``ombud inference-server``: the local models as a dedicated service (the hybrid pattern).

A gateway in ``remote`` mode keeps governance (authentication, policy, validation, records,
audit) and sends each scoring here. This app runs the very same :class:`ModelRuntime` as local
mode, so artifact verification, micro-batching with its latency bound, warm-up and the bound on
loaded models all apply. The gateway says *which* version to run (its id, digest and artifact);
the bytes are read and verified here, from this process's own artifact store and trusted keys.

Every ``/v1/internal`` call carries the shared bearer token (``OMBUD_SERVING__INFERENCE_TOKEN``),
compared in constant time. Refusals are problem+json with the same kinds as the gateway's
(``overloaded``, ``model_unavailable``, ``validation_error``), so the gateway can pass them on.
Nothing here writes to the database except ``model.artifact_rejected`` audit events.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from ombud import __version__
from ombud.api.deps import ContainerDep
from ombud.api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from ombud.api.problems import respond
from ombud.config import Settings
from ombud.container import Container
from ombud.core.clock import Clock
from ombud.core.errors import (
    BadRequest,
    FieldError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unauthenticated,
)
from ombud.observability.middleware import ObservabilityMiddleware
from ombud.observability.router import router as metrics_router
from ombud.registry.schemas import ModelVersion
from ombud.serving.explain import NotExplainable
from ombud.serving.remote import NOT_EXPLAINABLE
from ombud.serving.runtime import LoadedModel, ModelRuntime

log = logging.getLogger(__name__)

INTERNAL_PREFIX = "/v1/internal/"
MAX_ROWS = 1024
"""Most rows one score call may carry; the batcher's own bounds still apply to each row."""

VersionId = Annotated[str, Path(min_length=1, max_length=200)]


class InferenceConfigError(ValueError):
    """The inference server may not start with this configuration."""


class NotExplainableProblem(Problem):
    kind = NOT_EXPLAINABLE
    status = 422
    title = "The model cannot be explained"


class ScoreRequest(BaseModel):
    """The version the gateway resolved, and validated rows to score with it."""

    model_config = ConfigDict(extra="forbid")

    version: ModelVersion
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS)


class ScoreAnswer(BaseModel):
    scores: list[float]
    """One probability of the positive class per row, in order."""


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: ModelVersion
    features: dict[str, Any]


class InferenceHealth(BaseModel):
    status: str
    loaded: list[str] = []
    """Versions in memory (``model vN``), least recently used first."""


router = APIRouter(prefix="/v1/internal/models", tags=["inference"])


@router.post("/{version_id}/score", name="inference.score")
async def score(version_id: VersionId, body: ScoreRequest, container: ContainerDep) -> ScoreAnswer:
    """Score rows with the named version, verified and loaded here on first use."""
    runtime = container.local_runtime
    loaded = await _loaded(runtime, version_id, body.version)
    rows = [loaded.validate(row) for row in body.rows]
    # Each row joins the version's micro-batches like a concurrent call; the first refusal
    # (``Overloaded``, say) answers for the whole call, as itself.
    scores = await asyncio.gather(*(runtime.score(loaded, row) for row in rows))
    return ScoreAnswer(scores=list(scores))


@router.post("/{version_id}/explain", name="inference.explain")
async def explain(version_id: VersionId, body: ExplainRequest, container: ContainerDep) -> Any:
    """The SHAP explanation of one row (the fields of ``Explanation``, as JSON)."""
    runtime = container.local_runtime
    loaded = await _loaded(runtime, version_id, body.version)
    features = loaded.validate(body.features)
    try:
        return await runtime.explain(loaded, features)
    except NotExplainable as exc:
        raise NotExplainableProblem(detail=str(exc)) from None


async def _loaded(runtime: ModelRuntime, version_id: str, version: ModelVersion) -> LoadedModel:
    if version.id != version_id:
        raise InvalidRequest(
            detail="the body's version is not the one in the path",
            errors=[FieldError(("body", "version", "id"), "does not match the path", "mismatch")],
        )
    return await runtime.get(version)


def create_inference_app(
    settings: Settings | None = None, *, clock: Clock | None = None
) -> FastAPI:
    """The inference server's app; its models run in this process whatever the serving mode.

    Raises:
        InferenceConfigError: outside dev mode without ``OMBUD_SERVING__INFERENCE_TOKEN``.
    """
    settings = _local(settings or Settings())
    token = settings.serving.inference_token
    if token is None and not settings.is_dev:
        raise InferenceConfigError(
            "the inference server needs OMBUD_SERVING__INFERENCE_TOKEN outside dev mode"
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = Container.create(settings, clock=clock)
        app.state.container = container
        try:
            yield
        finally:
            await container.aclose()

    app = FastAPI(
        title="ombud inference server", version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None, openapi_url=None,
    )  # fmt: skip
    _install_problems(app)
    app.add_middleware(BearerTokenMiddleware, token=token)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    app.add_middleware(ObservabilityMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(router)
    app.include_router(metrics_router)
    app.add_api_route("/healthz", _healthz, methods=["GET"], name="inference.live")
    app.add_api_route("/readyz", _readyz, methods=["GET"], name="inference.ready")
    app.state.internal_app = None  # one listener: health and metrics are on it
    return app


def _local(settings: Settings) -> Settings:
    """``settings`` with models served in process: this process is where ``remote`` points."""
    if settings.serving.mode == "local":
        return settings
    serving = settings.serving.model_copy(update={"mode": "local"})
    return settings.model_copy(update={"serving": serving})


async def _healthz() -> InferenceHealth:
    return InferenceHealth(status="ok")


async def _readyz(container: ContainerDep) -> InferenceHealth:
    """Ready once the runtime exists; a version that cannot load answers on its own calls."""
    loaded = [f"{v.model} v{v.version}" for v in container.local_runtime.loaded]
    return InferenceHealth(status="ready", loaded=loaded)


class BearerTokenMiddleware:
    """Refuse every ``/v1/internal`` call without the shared token (none set: dev mode only)."""

    def __init__(self, app: ASGIApp, token: SecretStr | None) -> None:
        self.app = app
        self._expected = b"Bearer " + token.get_secret_value().encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or self._expected is None
            or not str(scope["path"]).startswith(INTERNAL_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        presented = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        if hmac.compare_digest(presented, self._expected):
            await self.app(scope, receive, send)
            return
        problem = Unauthenticated(detail="missing or wrong inference token")
        response = await respond(Request(scope), problem, audit=False)
        await response(scope, receive, send)


def _install_problems(app: FastAPI) -> None:
    """problem+json for every refusal, not audited: the gateway audits the call it serves."""
    app.add_exception_handler(Problem, _on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)


async def _on_problem(request: Request, exc: Problem) -> JSONResponse:
    return await respond(request, exc, audit=False)


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        FieldError(tuple(e.get("loc", ())), str(e.get("msg", "")), str(e.get("type")))
        for e in exc.errors()
    ]
    problem = InvalidRequest(detail="invalid inference request", errors=errors)
    return await respond(request, problem, audit=False)


async def _on_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    problem: Problem
    if exc.status_code == 404:
        problem = NotFound(detail=f"no route for {request.url.path}")
    elif exc.status_code == 405:
        problem = MethodNotAllowed(detail=f"{request.method} is not allowed here")
    elif exc.status_code == 413:
        problem = PayloadTooLarge(detail=str(exc.detail))
    else:
        problem = BadRequest(detail=str(exc.detail))
    return await respond(request, problem, audit=False)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(detail="unexpected error; see the inference server's log")
    return await respond(request, problem, audit=False)
