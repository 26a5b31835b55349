"""``ombud inference-server``: the local models as a dedicated service (the hybrid pattern).

A gateway in ``remote`` mode keeps governance (authentication, policy, validation, records,
audit) and sends each scoring here. This app runs the very same :class:`ModelRuntime` as local
mode, so artifact verification, micro-batching with its latency bound, warm-up and the bound on
loaded models all apply. The gateway only *names* the version to run (its id and digest): the
version itself (input features and their order, serving config, artifact, status) is read from
this process's own registry, and only an approved version runs; the bytes are read and verified
here, from this process's own artifact store and trusted keys.

Every ``/v1/internal`` call carries the shared bearer token (``OMBUD_SERVING__INFERENCE_TOKEN``),
compared in constant time. Refusals are problem+json with the same kinds as the gateway's
(``overloaded``, ``model_unavailable``, ``validation_error``), so the gateway can pass them on.
Nothing here writes to the database except ``model.artifact_rejected`` audit events; the
registry's versions are read, never written.
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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
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
    Conflict,
    FieldError,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unauthenticated,
)
from ombud.observability.middleware import ObservabilityMiddleware
from ombud.observability.router import router as metrics_router
from ombud.registry._views import serving_view
from ombud.registry.repository import RegistryRepository
from ombud.registry.schemas import ModelVersion, VersionStatus
from ombud.serving.explain import NotExplainable
from ombud.serving.remote import NOT_EXPLAINABLE, VERSION_MISMATCH, VERSION_NOT_APPROVED
from ombud.serving.runtime import LoadedModel, ModelRuntime

log = logging.getLogger(__name__)

INTERNAL_PREFIX = "/v1/internal/"
MAX_ROWS = 1024
"""Most rows one score call may carry; the batcher's own bounds still apply to each row."""

VersionId = Annotated[str, Path(min_length=1, max_length=200)]
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class InferenceConfigError(ValueError):
    """The inference server may not start with this configuration."""


class NotExplainableProblem(Problem):
    kind = NOT_EXPLAINABLE
    status = 422
    title = "The model cannot be explained"


class VersionClaim(BaseModel):
    """The ``version`` object older gateways send: only its id and digest are read."""

    model_config = ConfigDict(extra="ignore")

    id: str
    sha256: str = Field(pattern=SHA256_PATTERN)


class _Named(BaseModel):
    """How a call names its version: the path's id plus the digest the gateway expects."""

    model_config = ConfigDict(extra="forbid")

    sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    """The artifact digest the gateway resolved; must be the registered one."""
    version: VersionClaim | None = None
    """Accepted for compatibility; everything in it but ``id`` and ``sha256`` is ignored."""

    def claimed_sha256(self, version_id: str) -> str:
        """The digest this call expects; the body must agree with itself and with the path."""
        if self.version is not None and self.version.id != version_id:
            problem = FieldError(("body", "version", "id"), "does not match the path", "mismatch")
            raise InvalidRequest(
                detail="the body's version is not the one in the path", errors=[problem]
            )
        claims = {c for c in (self.sha256, self.version and self.version.sha256) if c}
        if len(claims) != 1:
            why, code = ("is required", "missing") if not claims else ("differs", "mismatch")
            problem = FieldError(("body", "sha256"), why, code)
            raise InvalidRequest(detail=f"the artifact digest {why}", errors=[problem])
        return claims.pop()


class ScoreRequest(_Named):
    """The version's expected digest, and rows the gateway validated, to score with it."""

    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS)


class ScoreAnswer(BaseModel):
    scores: list[float]
    """One probability of the positive class per row, in order."""


class ExplainRequest(_Named):
    features: dict[str, Any]


class VersionMismatch(Conflict):
    kind = VERSION_MISMATCH
    title = "The version's digest is not the registered one"


class VersionNotApproved(Conflict):
    kind = VERSION_NOT_APPROVED
    title = "The version is not approved for serving"


class RegisteredVersions:
    """Versions by id as this server's own registry has them, each cached for ``ttl_s``.

    What runs is decided here, not by the caller: input features and their order, serving
    config, artifact URI and status all come from the registry, so a caller holding the token
    can neither reorder a version's inputs (and so poison the loaded model, which is kept per
    id and digest) nor run a version that was never approved. The cache reads the injected
    clock; it spares a hot version one query per call, and a status change applies within
    ``ttl_s``. It holds at most one entry per registered version; unknown ids are not cached.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, ttl_s: float
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, ModelVersion]] = {}

    async def get(self, version_id: str) -> ModelVersion:
        """The registered version, whatever its status.

        Raises:
            ModelNotFound: no version has this id.
        """
        now = self._clock.monotonic()
        cached = self._cache.get(version_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self._sessions() as session:
            found = await RegistryRepository(session).version_by_id(version_id)
        if found is None:
            self._cache.pop(version_id, None)
            raise ModelNotFound(detail=f"no registered model version {version_id!r}")
        version = serving_view(*found)
        if self._ttl_s > 0:
            self._cache[version_id] = (now + self._ttl_s, version)
        return version

    async def servable(self, version_id: str, sha256: str) -> ModelVersion:
        """The registered version, if it has digest ``sha256`` and is approved.

        Raises:
            ModelNotFound: no version has this id.
            VersionMismatch: its registered digest is not ``sha256``.
            VersionNotApproved: it is not approved (draft, in review, rejected, deprecated).
        """
        version = await self.get(version_id)
        name = f"{version.model} v{version.version}"
        if version.sha256 != sha256:
            raise VersionMismatch(
                detail=f"{name}: the registered artifact digest is {version.sha256}, not {sha256}"
            )
        if version.status is not VersionStatus.APPROVED:
            raise VersionNotApproved(
                detail=f"{name} is {version.status.value}; only approved versions are served"
            )
        return version


class InferenceHealth(BaseModel):
    status: str
    loaded: list[str] = []
    """Versions in memory (``model vN``), least recently used first."""


router = APIRouter(prefix="/v1/internal/models", tags=["inference"])


@router.post("/{version_id}/score", name="inference.score")
async def score(
    version_id: VersionId, body: ScoreRequest, request: Request, container: ContainerDep
) -> ScoreAnswer:
    """Score rows with the named version, verified and loaded here on first use."""
    runtime = container.local_runtime
    loaded = await _loaded(request, runtime, version_id, body)
    rows = [loaded.validate(row) for row in body.rows]
    # Each row joins the version's micro-batches like a concurrent call; the first refusal
    # (``Overloaded``, say) answers for the whole call, as itself.
    scores = await asyncio.gather(*(runtime.score(loaded, row) for row in rows))
    return ScoreAnswer(scores=list(scores))


@router.post("/{version_id}/explain", name="inference.explain")
async def explain(
    version_id: VersionId, body: ExplainRequest, request: Request, container: ContainerDep
) -> Any:
    """The SHAP explanation of one row (the fields of ``Explanation``, as JSON)."""
    runtime = container.local_runtime
    loaded = await _loaded(request, runtime, version_id, body)
    features = loaded.validate(body.features)
    try:
        return await runtime.explain(loaded, features)
    except NotExplainable as exc:
        raise NotExplainableProblem(detail=str(exc)) from None


async def _loaded(
    request: Request, runtime: ModelRuntime, version_id: str, body: _Named
) -> LoadedModel:
    """The REGISTERED version named by the call, loaded; the body only says which digest."""
    sha256 = body.claimed_sha256(version_id)
    versions: RegisteredVersions = request.app.state.versions
    return await runtime.get(await versions.servable(version_id, sha256))


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
        app.state.versions = RegisteredVersions(
            container.sessions, container.clock, settings.serving.version_cache_ttl_s
        )
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
